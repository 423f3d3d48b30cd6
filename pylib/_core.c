/*
 * _core.c - pympipool._core, the thin CPython binding over the C frontend
 * library (frontend/pmp_executor.h).  Everything with policy in it (futures,
 * pickling, validation, the dispatcher thread) lives in Python, in
 * pylib/pympipool/; this file only moves bytes and maps errors.
 *
 * This file holds the Executor type (its wait() and wait_batch() are in
 * _core_wait.c, what the two share in _core_executor.h); _core_module.c is
 * the module; _channel.c adds Channel, and _pmp_py.c what both types share
 * (errno -> exception, zero-copy holds, the Frame type).  The heap types
 * are created by multi-phase module initialisation and kept in the module
 * state (no static PyObject globals, as in CPython's
 * Modules/_queuemodule.c):
 *
 *   Executor  owns one pmp_executor_t.  submit() (tasks, init) and
 *             broadcast() (DEFINE / FORGET of a function kept by key) hand
 *             the payload and the out-of-band buffers to the frontend
 *             (s_executor_send, pmp_py_message_fill): buffers below 64 KiB
 *             are copied, larger ones are passed without copying, held until
 *             the frontend gives them back on the executor's release list.
 *             The list is drained, with the GIL, at the start of submit() and
 *             wait(), right after wait() obtained a completion and after
 *             destroy, so no Python code ever runs on a C thread, and once a
 *             call's completion reaches Python nothing of ours refers to its
 *             arguments any more (the frontend releases a task's buffers
 *             before it queues the completion).  wait() blocks with the GIL
 *             released, in slices of at most 100 ms, and calls
 *             PyErr_CheckSignals() between slices so that Ctrl-C works; its
 *             completions carry Frame objects.  interrupt() has the I/O
 *             thread send SIGINT to the ranks of the running calls.
 *
 * Concurrency: methods that release the GIL (wait, destroy) count themselves
 * in `busy`; destroy() first marks the object as going away (every method
 * then raises DestroyedError "executor is destroyed"), waits until no call is
 * inside the frontend any more (at most one wait slice), and only then frees
 * the frontend object.  Errors from the frontend become exceptions in one
 * place, pmp_py_raise().
 *
 * Fork: in a child made by fork() an inherited Executor is dead (`forked`
 * is True): every method raises RuntimeError ("this executor belongs to
 * process P; it cannot be used in a forked child (pid C)"), and destroy()
 * and deallocation return at once: they neither wait for `busy` (a count
 * of the parent's threads, which the child does not have) nor take the
 * release list's lock (a ZeroMQ thread of the parent may have held it),
 * and the frontend leaks the object rather than join or signal anything.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <structmember.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "_pmp_shm_py.h"
#include "_pmp_wire_py.h"
#include "pmp_executor.h"
#include "pmp_link.h"
#include "_channel.h"
#include "_core_executor.h"
#include "_pmp_py.h"

#if PY_VERSION_HEX < 0x03090000
#error "pympipool._core needs Python 3.9 or later (heap types with the buffer protocol)"
#endif

#define S_DEFAULT_GRACE_MS PMP_DESTROY_GRACE_MS

/* ---- errors and holds ------------------------------------------------------ */

pmp_py_state_t *pmp_py_executor_state(const pmp_py_executor_t *self)
{
    return pmp_py_state_of((PyObject *)self);
}

/* DestroyedError (a ValueError): the executor was destroyed. */
static PyObject *s_raise_destroyed(const pmp_py_executor_t *self)
{
    pmp_py_state_t *st = pmp_py_executor_state(self);
    PyErr_SetString(st->destroyed_error != NULL ? st->destroyed_error : PyExc_ValueError,
                    "executor is destroyed");
    return NULL;
}

/* Whether this process is a forked child of the executor's creator: one
 * integer compare while the frontend object exists. */
static int s_forked(const pmp_py_executor_t *self)
{
    if (self->exe != NULL)
        return pmp_executor_forked(self->exe);
    return self->owner != 0 && getpid() != self->owner;
}

static PyObject *s_raise_forked(const pmp_py_executor_t *self)
{
    char text[200];
    snprintf(text, sizeof text,
             "this executor belongs to process %ld; it cannot be used in a forked child (pid %ld)",
             (long)self->owner, (long)getpid());
    return pmp_py_raise(pmp_py_executor_state(self), PMP_EFORKED, text);
}

/* Releases every buffer the frontend has given back.  Needs the GIL.  Not
 * in a forked child: the list's lock may have been held by one of the
 * parent's threads, and the child's frontend releases nothing anyway. */
void pmp_py_executor_drain(pmp_py_executor_t *self)
{
    if (!s_forked(self))
        pmp_py_release_drain(&self->released);
}

/* ---- Executor: construction and destruction -------------------------------- */

/* Copies a sequence of str into a NULL-terminated array of UTF-8 pointers
 * that borrow from *keep (a new tuple the caller releases). */
static const char **s_string_array(const pmp_py_state_t *st, PyObject *seq, PyObject **keep,
                                   const char *name)
{
    PyObject *tuple = PySequence_Tuple(seq);
    if (tuple == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    const char **argv = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (argv == NULL) {
        Py_DECREF(tuple);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, i);
        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%s must be strings, not %.100s", name,
                         Py_TYPE(item)->tp_name);
            goto fail;
        }
        Py_ssize_t size;
        argv[i] = PyUnicode_AsUTF8AndSize(item, &size);
        if (argv[i] == NULL)
            goto fail;
        if (strlen(argv[i]) != (size_t)size) {
            PyErr_Format(pmp_py_invalid_argument(st), "%s contain a NUL character", name);
            goto fail;
        }
    }
    *keep = tuple;
    return argv;
fail:
    PyMem_Free(argv);
    Py_DECREF(tuple);
    return NULL;
}

/* UTF-8 of an optional str argument without embedded NULs; NULL for None. */
static int s_optional_string(const pmp_py_state_t *st, PyObject *obj, const char *name,
                             const char **out)
{
    *out = NULL;
    if (obj == NULL || obj == Py_None)
        return 0;
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str or None, not %.100s", name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_ssize_t size;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &size);
    if (s == NULL)
        return -1;
    if ((size_t)size != strlen(s)) {
        PyErr_Format(pmp_py_invalid_argument(st), "%s contains a NUL character", name);
        return -1;
    }
    *out = s;
    return 0;
}

static PyObject *s_executor_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"ranks",          "ranks_per_group",
                             "pipeline_depth", "launch",
                             "oversubscribe",  "flux",
                             "mpi_flavour",    "mpiexec",
                             "runtime",        "cwd",
                             "runtime_args",   "restart_limit",
                             "run_time_max",   "run_time_grace_ms",
                             "hostname",       "pipeline_depth_max",
                             "srun",           "srun_mpi",
                             "srun_exact",     "threads_per_core",
                             "launcher_args",  "hosts",
                             "hostfile",       NULL};
    int ranks, ranks_per_group, pipeline_depth, launch = 1, oversubscribe = 0, flux = 0;
    int restart_limit = 0, run_time_grace_ms = 0, srun = 0, srun_exact = 0, threads = 0;
    int pipeline_depth_max = 0;
    double run_time_max = 0.0;
    PyObject *flavour_obj = Py_None, *mpiexec_obj = Py_None, *runtime_obj = Py_None;
    PyObject *cwd_obj = Py_None, *args_obj = Py_None, *hostname_obj = Py_None;
    PyObject *srun_mpi_obj = Py_None, *largs_obj = Py_None, *hosts_obj = Py_None;
    PyObject *hostfile_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "iii|pppOOOOOidiOipOpiOOO:Executor", kwlist, &ranks, &ranks_per_group,
            &pipeline_depth, &launch, &oversubscribe, &flux, &flavour_obj, &mpiexec_obj,
            &runtime_obj, &cwd_obj, &args_obj, &restart_limit, &run_time_max, &run_time_grace_ms,
            &hostname_obj, &pipeline_depth_max, &srun, &srun_mpi_obj, &srun_exact, &threads,
            &largs_obj, &hosts_obj, &hostfile_obj))
        return NULL;
    const pmp_py_state_t *st = PyType_GetModuleState(type);
    if (!(run_time_max >= 0.0 && run_time_max <= 1e9)) {
        PyErr_SetString(pmp_py_invalid_argument(st),
                        "run_time_max must be between 0 (no limit) and 1e9 seconds");
        return NULL;
    }

    pmp_executor_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.ranks = ranks;
    cfg.ranks_per_group = ranks_per_group;
    cfg.pipeline_depth = pipeline_depth;
    cfg.pipeline_depth_max = pipeline_depth_max;
    cfg.launch = launch;
    cfg.oversubscribe = oversubscribe;
    cfg.flux = flux;
    cfg.srun = srun;
    cfg.srun_exact = srun_exact;
    cfg.threads_per_core = threads;
    cfg.restart_limit = restart_limit;
    cfg.run_time_max_ms = run_time_max > 0.0 ? (int64_t)(run_time_max * 1000.0 + 0.999) : 0;
    cfg.run_time_grace_ms = run_time_grace_ms;
    if (s_optional_string(st, flavour_obj, "mpi_flavour", &cfg.mpi_flavour) < 0 ||
        s_optional_string(st, mpiexec_obj, "mpiexec", &cfg.mpiexec) < 0 ||
        s_optional_string(st, runtime_obj, "runtime", &cfg.runtime) < 0 ||
        s_optional_string(st, cwd_obj, "cwd", &cfg.cwd) < 0 ||
        s_optional_string(st, hostname_obj, "hostname", &cfg.hostname) < 0 ||
        s_optional_string(st, srun_mpi_obj, "srun_mpi", &cfg.srun_mpi) < 0 ||
        s_optional_string(st, hostfile_obj, "hostfile", &cfg.hostfile) < 0)
        return NULL;

    /* the lists, as NULL-terminated arrays borrowing from kept tuples */
    PyObject *list_objs[3] = {args_obj, largs_obj, hosts_obj};
    static const char *const list_names[3] = {"runtime_args", "launcher_args", "hosts"};
    const char **lists[3] = {NULL, NULL, NULL};
    PyObject *keeps[3] = {NULL, NULL, NULL};
    for (int l = 0; l < 3; l++)
        if (list_objs[l] != Py_None) {
            lists[l] = s_string_array(st, list_objs[l], &keeps[l], list_names[l]);
            if (lists[l] == NULL) {
                for (int m = 0; m < l; m++) {
                    PyMem_Free(lists[m]);
                    Py_XDECREF(keeps[m]);
                }
                return NULL;
            }
        }
    cfg.runtime_args = lists[0];
    cfg.launcher_args = lists[1];
    cfg.hosts = lists[2];

    pmp_py_executor_t *self = (pmp_py_executor_t *)type->tp_alloc(type, 0);
    if (self == NULL) {
        for (int l = 0; l < 3; l++) {
            PyMem_Free(lists[l]);
            Py_XDECREF(keeps[l]);
        }
        return NULL;
    }
    self->exe = NULL;
    self->state = S_DESTROYED; /* until the frontend object exists */
    self->busy = 0;
    self->owner = getpid();
    self->weakreflist = NULL;
    pmp_py_release_init(&self->released);

    /* Creating the executor may launch the job: let other threads run.  The
     * strings stay valid: they belong to arguments we hold. */
    pmp_error_t err;
    err.text[0] = '\0';
    pmp_executor_t *exe;
    int errnum;
    PyThreadState *ts = PyEval_SaveThread();
    exe = pmp_executor_new(&cfg, &err);
    errnum = errno;
    PyEval_RestoreThread(ts);
    for (int l = 0; l < 3; l++) {
        PyMem_Free(lists[l]);
        Py_XDECREF(keeps[l]);
    }
    if (exe == NULL) {
        Py_DECREF(self);
        return pmp_py_raise(st, errnum, err.text);
    }
    self->exe = exe;
    self->state = S_LIVE;
    return (PyObject *)self;
}

/* Frees the frontend object.  Waits (GIL released) for calls still inside
 * the frontend and for a destroy running on another thread.  Idempotent. */
static void s_executor_destroy_now(pmp_py_executor_t *self, int grace_ms)
{
    if (s_forked(self)) {                    /* the parent's: nothing to wait for or stop */
        pmp_executor_destroy(&self->exe, 0); /* returns at once, leaks */
        self->state = S_DESTROYED;
        return;
    }
    if (self->state == S_LIVE) {
        self->state = S_DESTROYING;
        while (self->busy > 0)
            pmp_py_sleep_without_gil();
        pmp_executor_t *exe = self->exe;
        self->exe = NULL;
        PyThreadState *ts = PyEval_SaveThread();
        pmp_executor_destroy(&exe, grace_ms);
        PyEval_RestoreThread(ts);
        self->state = S_DESTROYED;
    } else {
        while (self->state == S_DESTROYING)
            pmp_py_sleep_without_gil();
    }
    pmp_py_executor_drain(self);
}

static void s_executor_dealloc(PyObject *op)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs(op);
    /* No other call can be running: it would hold a reference to self. */
    s_executor_destroy_now(self, S_DEFAULT_GRACE_MS);
    if (!s_forked(self)) /* in a child the lock may be held: leak the list */
        pmp_py_release_fini(&self->released);
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* ---- Executor: methods --------------------------------------------------- */

int pmp_py_executor_check_live(pmp_py_executor_t *self)
{
    if (s_forked(self)) {
        s_raise_forked(self);
        return -1;
    }
    if (self->state != S_LIVE || self->exe == NULL) {
        s_raise_destroyed(self);
        return -1;
    }
    return 0;
}

/* For the read-only attributes, which stay readable in a forked child
 * (they take no lock). */
static int s_check_exists(pmp_py_executor_t *self)
{
    if (self->exe == NULL || (self->state != S_LIVE && !s_forked(self))) {
        s_raise_destroyed(self);
        return -1;
    }
    return 0;
}

static PyObject *s_executor_get_endpoint(PyObject *op, void *closure)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    if (s_check_exists(self) < 0)
        return NULL;
    return PyUnicode_FromString(pmp_executor_endpoint(self->exe));
}

static PyObject *s_executor_get_command(PyObject *op, void *closure)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    if (s_check_exists(self) < 0)
        return NULL;
    const char *const *argv = pmp_executor_command(self->exe);
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++) {
        PyObject *s = PyUnicode_DecodeFSDefault(argv[i]);
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
    }
    return list;
}

static PyObject *s_executor_get_pid(PyObject *op, void *closure)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    if (s_check_exists(self) < 0)
        return NULL;
    pid_t pid = pmp_executor_pid(self->exe);
    if (pid < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong((long)pid);
}

static PyObject *s_executor_get_restarts(PyObject *op, void *closure)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    if (pmp_py_executor_check_live(self) < 0)
        return NULL;
    return PyLong_FromLong((long)pmp_executor_restarts(self->exe));
}

static PyObject *s_executor_get_destroyed(PyObject *op, void *closure)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    return PyBool_FromLong(self->state != S_LIVE);
}

static PyObject *s_executor_get_forked(PyObject *op, void *closure)
{
    return PyBool_FromLong(s_forked((pmp_py_executor_t *)op));
}

/* The groups and task ids of submit_to(). */
typedef struct {
    int *groups;
    uint64_t *ids;
    size_t n;
} s_pinned_t;

/* What submit() and broadcast() share once their arguments are checked:
 * converts payload (NULL: no payload frame) and buffers_obj (NULL: none)
 * and hands them to pmp_executor_broadcast() (broadcast: id is the key) or
 * pmp_executor_submit() (id is the task id).  The frontend owns the
 * zero-copy buffers only when the call succeeded; otherwise they are
 * released here.  Returns None, or NULL with an exception. */
static PyObject *s_executor_send(pmp_py_executor_t *self, int broadcast, int type, uint64_t id,
                                 uint32_t flags, PyObject *payload, PyObject *buffers_obj,
                                 unsigned int ncalls, const s_pinned_t *pinned)
{
    pmp_py_message_t msg;
    PyObject *result = NULL;
    if (pmp_py_message_fill(&msg, &self->released, payload, buffers_obj) == 0) {
        pmp_error_t err;
        err.text[0] = '\0';
        int rc = broadcast
                     ? pmp_executor_broadcast(self->exe, type, id, msg.bufs, (size_t)msg.n, &err)
                 : pinned ? pmp_executor_submit_to(self->exe, pinned->groups, pinned->ids,
                                                   pinned->n, flags, msg.bufs, (size_t)msg.n, &err)
                          : pmp_executor_submit_calls(self->exe, id, type, flags, msg.bufs,
                                                      (size_t)msg.n, ncalls, &err);
        if (rc < 0) {
            pmp_py_raise(pmp_py_executor_state(self), errno, err.text);
        } else {
            pmp_py_message_handed_over(&msg);
            Py_INCREF(Py_None);
            result = Py_None;
        }
    }
    pmp_py_message_clear(&msg);
    return result;
}

PyDoc_STRVAR(s_submit_doc, "submit($self, task_id, type, flags, payload, buffers, ncalls=1)\n--\n\n"
                           "Queue a TASK or INIT message.  payload and every buffer support the\n"
                           "buffer protocol; buffers of 64 KiB or more are sent without copying\n"
                           "and stay referenced until the frontend releases them.");

static PyObject *s_executor_submit(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"task_id", "type", "flags", "payload", "buffers", "ncalls", NULL};
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    unsigned long long task_id;
    int type;
    unsigned int flags, ncalls = 1;
    PyObject *payload, *buffers_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "KiIOO|I:submit", kwlist, &task_id, &type,
                                     &flags, &payload, &buffers_obj, &ncalls))
        return NULL;
    if (pmp_py_executor_check_live(self) < 0)
        return NULL;
    pmp_py_executor_drain(self);
    if (payload == Py_None) {
        PyErr_SetString(PyExc_TypeError, "submit() needs a payload");
        return NULL;
    }
    return s_executor_send(self, 0, type, (uint64_t)task_id, (uint32_t)flags, payload, buffers_obj,
                           ncalls, NULL);
}

PyDoc_STRVAR(s_submit_to_doc,
             "submit_to($self, task_ids, groups, flags, payload, buffers)\n--\n\n"
             "Queue one TASK per group, task_ids[i] for groups[i] (the runtime's group\n"
             "numbers), all with the same payload and buffers, all or none; each goes\n"
             "to its group once that group has room.  Buffers as for submit().");

static PyObject *s_executor_submit_to(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"task_ids", "groups", "flags", "payload", "buffers", NULL};
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    PyObject *ids_obj, *groups_obj, *payload, *buffers_obj, *result = NULL;
    unsigned int flags;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOIOO:submit_to", kwlist, &ids_obj, &groups_obj,
                                     &flags, &payload, &buffers_obj))
        return NULL;
    if (pmp_py_executor_check_live(self) < 0)
        return NULL;
    pmp_py_executor_drain(self);
    if (payload == Py_None) {
        PyErr_SetString(PyExc_TypeError, "submit_to() needs a payload");
        return NULL;
    }
    PyObject *ids = PySequence_Fast(ids_obj, "submit_to(): task_ids must be a sequence");
    PyObject *groups =
        ids ? PySequence_Fast(groups_obj, "submit_to(): groups must be a sequence") : NULL;
    s_pinned_t pinned = {NULL, NULL, 0};
    if (!groups)
        goto done;
    pinned.n = (size_t)PySequence_Fast_GET_SIZE(ids);
    if (pinned.n != (size_t)PySequence_Fast_GET_SIZE(groups)) {
        PyErr_SetString(PyExc_ValueError, "submit_to(): one task id per group");
        goto done;
    }
    pinned.ids = PyMem_Calloc(pinned.n + 1, sizeof *pinned.ids);
    pinned.groups = PyMem_Calloc(pinned.n + 1, sizeof *pinned.groups);
    if (!pinned.ids || !pinned.groups) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < pinned.n; i++) {
        pinned.ids[i] = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(ids, (Py_ssize_t)i));
        long g = PyLong_AsLong(PySequence_Fast_GET_ITEM(groups, (Py_ssize_t)i));
        pinned.groups[i] = g < -1 || g > INT_MAX ? -1 : (int)g;
        if (PyErr_Occurred())
            goto done;
    }
    result = s_executor_send(self, 0, PMP_MSG_TASK, 0, (uint32_t)flags, payload, buffers_obj, 1,
                             &pinned);
done:
    PyMem_Free(pinned.ids);
    PyMem_Free(pinned.groups);
    Py_XDECREF(ids);
    Py_XDECREF(groups);
    return result;
}

PyDoc_STRVAR(
    s_broadcast_doc,
    "broadcast(type, key, payload=None, buffers=())\n--\n\n"
    "Send a DEFINE (payload: a pickled callable kept under key by every group)\n"
    "or a FORGET (no payload) to every group, in order with the tasks.  No\n"
    "completion.  Buffers are handled as by submit(); InvalidArgumentError for an unknown\n"
    "type, a zero key, a DEFINE of a key already defined or a FORGET of an\n"
    "unknown key.");

static PyObject *s_executor_broadcast(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"type", "key", "payload", "buffers", NULL};
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    int type;
    PyObject *key_obj, *payload = Py_None, *buffers_obj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO|OO:broadcast", kwlist, &type, &key_obj,
                                     &payload, &buffers_obj))
        return NULL;
    /* Strict: a negative key is an OverflowError, not a wrapped number. */
    unsigned long long key = PyLong_AsUnsignedLongLong(key_obj);
    if (key == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (pmp_py_executor_check_live(self) < 0)
        return NULL;
    pmp_py_executor_drain(self);
    return s_executor_send(self, 1, type, (uint64_t)key, 0, payload == Py_None ? NULL : payload,
                           buffers_obj, 1, NULL);
}

static PyObject *s_executor_cancel(PyObject *op, PyObject *arg)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    unsigned long long task_id = PyLong_AsUnsignedLongLong(arg);
    if (task_id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (pmp_py_executor_check_live(self) < 0)
        return NULL;
    int removed = pmp_executor_cancel(self->exe, (uint64_t)task_id);
    if (removed < 0)
        return pmp_py_raise(pmp_py_executor_state(self), errno, NULL);
    return PyBool_FromLong(removed);
}

static PyObject *s_executor_cancel_all(PyObject *op, PyObject *unused)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    if (pmp_py_executor_check_live(self) < 0)
        return NULL;
    uint64_t *ids = NULL;
    size_t n = 0;
    if (pmp_executor_cancel_all(self->exe, &ids, &n) < 0)
        return pmp_py_raise(pmp_py_executor_state(self), errno,
                            "cannot cancel the queued tasks: out of memory");
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *id = PyLong_FromUnsignedLongLong(ids[i]);
        if (id == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, id);
    }
    free(ids);
    return list;
}

static PyObject *s_executor_pending(PyObject *op, PyObject *unused)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    if (pmp_py_executor_check_live(self) < 0)
        return NULL;
    return PyLong_FromSize_t(pmp_executor_pending(self->exe));
}

static PyObject *s_executor_close(PyObject *op, PyObject *unused)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    if (pmp_py_executor_check_live(self) < 0)
        return NULL;
    if (pmp_executor_close(self->exe) < 0)
        return pmp_py_raise(pmp_py_executor_state(self), errno, NULL);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(s_interrupt_doc,
             "interrupt($self, /)\n--\n\n"
             "Send SIGINT to every rank on this host of every group that holds a task\n"
             "(the calls running now).  Returns how many ranks were signalled: 0 when\n"
             "nothing runs, the job has exited, or no rank could be reached (ranks on\n"
             "other hosts never are).");

static PyObject *s_executor_interrupt(PyObject *op, PyObject *unused)
{
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    if (pmp_py_executor_check_live(self) < 0)
        return NULL;
    int n, errnum;
    /* The I/O thread sends the signals; wait for it without the GIL. */
    self->busy++;
    PyThreadState *ts = PyEval_SaveThread();
    n = pmp_executor_interrupt(self->exe);
    errnum = errno;
    PyEval_RestoreThread(ts);
    self->busy--;
    if (n < 0)
        return pmp_py_raise(pmp_py_executor_state(self), errnum, NULL);
    return PyLong_FromLong(n);
}

static PyObject *s_executor_wait(PyObject *op, PyObject *args, PyObject *kwargs)
{
    return pmp_py_executor_wait(op, args, kwargs, 0);
}

static PyObject *s_executor_wait_batch(PyObject *op, PyObject *args, PyObject *kwargs)
{
    return pmp_py_executor_wait(op, args, kwargs, 1);
}

PyDoc_STRVAR(s_destroy_doc,
             "destroy($self, grace_ms=3000)\n--\n\n"
             "Stop the job (SHUTDOWN, then SIGTERM/SIGKILL after grace_ms) and free\n"
             "the frontend.  Idempotent; afterwards every method raises DestroyedError\n"
             "(a ValueError).");

static PyObject *s_executor_destroy(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"grace_ms", NULL};
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    int grace_ms = S_DEFAULT_GRACE_MS;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|i:destroy", kwlist, &grace_ms))
        return NULL;
    if (grace_ms < 0) {
        PyErr_SetString(pmp_py_invalid_argument(pmp_py_executor_state(self)),
                        "grace_ms must be >= 0");
        return NULL;
    }
    s_executor_destroy_now(self, grace_ms);
    Py_RETURN_NONE;
}

static PyMethodDef s_executor_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))s_executor_submit, METH_VARARGS | METH_KEYWORDS,
     s_submit_doc},
    {"submit_to", (PyCFunction)(void (*)(void))s_executor_submit_to, METH_VARARGS | METH_KEYWORDS,
     s_submit_to_doc},
    {"broadcast", (PyCFunction)(void (*)(void))s_executor_broadcast, METH_VARARGS | METH_KEYWORDS,
     s_broadcast_doc},
    {"cancel", s_executor_cancel, METH_O,
     "cancel(task_id) -> bool: remove a task that was not sent yet."},
    {"cancel_all", s_executor_cancel_all, METH_NOARGS,
     "cancel_all() -> list of the ids of every task removed before being sent."},
    {"pending", s_executor_pending, METH_NOARGS,
     "pending() -> number of tasks submitted but not yet sent."},
    {"close", s_executor_close, METH_NOARGS,
     "close(): no more submits; queued tasks still run, then CLOSED completes."},
    {"interrupt", s_executor_interrupt, METH_NOARGS, s_interrupt_doc},
    {"wait", (PyCFunction)(void (*)(void))s_executor_wait, METH_VARARGS | METH_KEYWORDS,
     pmp_py_wait_doc},
    {"wait_batch", (PyCFunction)(void (*)(void))s_executor_wait_batch, METH_VARARGS | METH_KEYWORDS,
     pmp_py_wait_batch_doc},
    {"destroy", (PyCFunction)(void (*)(void))s_executor_destroy, METH_VARARGS | METH_KEYWORDS,
     s_destroy_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef s_executor_getset[] = {
    {"endpoint", s_executor_get_endpoint, NULL, "ZeroMQ endpoint the runtime connects to.", NULL},
    {"command", s_executor_get_command, NULL, "Launch command, a list of str.", NULL},
    {"pid", s_executor_get_pid, NULL, "Process id of the launched job, or None.", NULL},
    {"destroyed", s_executor_get_destroyed, NULL, "Whether destroy() has run.", NULL},
    {"restarts", s_executor_get_restarts, NULL,
     "How many times the job was relaunched (after deaths and time limits).", NULL},
    {"forked", s_executor_get_forked, NULL,
     "Whether this process is a forked child of the one that created the executor\n"
     "(it is then dead here: methods raise RuntimeError, destroy() returns at once).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef s_executor_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(pmp_py_executor_t, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot s_executor_slots[] = {
    {Py_tp_doc, "Executor(ranks, ranks_per_group, pipeline_depth, launch=True,\n"
                "         oversubscribe=False, flux=False, mpi_flavour=None, mpiexec=None,\n"
                "         runtime=None, cwd=None, runtime_args=None, restart_limit=0,\n"
                "         run_time_max=0.0, run_time_grace_ms=0, hostname=None,\n"
                "         pipeline_depth_max=0, srun=False,\n"
                "         srun_mpi=None, srun_exact=False, threads_per_core=0,\n"
                "         launcher_args=None, hosts=None, hostfile=None)\n\n"
                "One frontend executor (see frontend/pmp_executor.h)."},
    {Py_tp_new, s_executor_new},
    {Py_tp_dealloc, s_executor_dealloc},
    {Py_tp_methods, s_executor_methods},
    {Py_tp_getset, s_executor_getset},
    {Py_tp_members, s_executor_members},
    {0, NULL},
};

PyType_Spec pmp_py_executor_spec = {
    .name = "pympipool._core.Executor",
    .basicsize = sizeof(pmp_py_executor_t),
    .flags = Py_TPFLAGS_DEFAULT
#ifdef Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_IMMUTABLETYPE
#endif
    ,
    .slots = s_executor_slots,
};
