/*
 * pmp_python.c - the embedded interpreter and the calls into the worker
 * (see pmp_python.h).
 *
 * Start-up: an isolated PyConfig (no environment variables, no user site,
 * no site import, no signal handlers, no argv parsing) whose executable is
 * the frontend's interpreter and whose sys.path is exactly the frontend's,
 * so that a rank imports the same packages as the caller without depending
 * on how the runtime was installed.  stdio is unbuffered so that print()
 * output of a task reaches mpiexec's stdout before the task's result
 * reaches the caller.
 *
 * _pympipool_runtime, the builtin module with the Buffer type that wraps
 * the received frames without copying them and the group's communicator,
 * is pmp_pymodule.c.  Before the worker runs any user code,
 * worker.setup_mpi() gets what the build found out about mpi4py (PMP_MPI4PY_MODE and the two MPI
 * names, compile definitions from cmake/PympipoolMPI4py.cmake) and the path of the MPI library this
 * process really loaded (dladdr of MPI_Init), and checks again on this rank whether mpi4py.MPI
 * links that library.
 *
 * Results: worker.run_task returns (ok, payload, [buffers]), with a fourth
 * item PMP_FLAG_SHM when the last buffer is a segment table (the leader's
 * large buffers already copied into shared segments, pylib/pympipool/_shm.py,
 * only when --shm-host named this host); each object is
 * held through a Py_buffer in an s_view_t, which is what travels with the
 * frame until ZeroMQ (or MPI) is done with it.  ZeroMQ's free callback
 * runs on its I/O thread, so it only links the s_view_t into the release
 * list; pmp_python_drain() releases them later with the GIL.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* dladdr */
#endif
#include "pmp_python.h"

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include <mpi.h>
#include "pmp_mpi4py_guard_source.h"
#include "pmp_protocol.h"
#include "pmp_pymodule.h"
#include "pmp_worker_source.h"

#define S_WORKER_MODULE "_pympipool_worker"
#define S_WORKER_FILE "<pympipool-runtime>/pmp_worker.py"
#define S_GUARD_MODULE "_pympipool_mpi4py_guard"
#define S_GUARD_FILE "<pympipool-runtime>/pmp_mpi4py_guard.py"

/* What the build found out about mpi4py (cmake/PympipoolMPI4py.cmake). */
#ifndef PMP_MPI4PY_MODE
#define PMP_MPI4PY_MODE "absent"
#endif
#ifndef PMP_MPI4PY_MPI
#define PMP_MPI4PY_MPI "unknown"
#endif
#ifndef PMP_RUNTIME_MPI
#define PMP_RUNTIME_MPI "the runtime's MPI"
#endif

typedef struct s_view {
    Py_buffer view;
    pmp_python_t *owner;
    struct s_view *next;
} s_view_t;

struct pmp_python {
    PyThreadState *tstate; /* saved while C runs without the GIL */
    PyObject *runtime_module;
    PyObject *worker;
    PyObject *run_init;
    PyObject *run_task;
    PyObject *run_define;
    PyObject *run_forget;
    PyObject *error_payload;
    pthread_mutex_t lock; /* protects released */
    s_view_t *released;
    size_t pending; /* handed to ZeroMQ, not yet drained (main thread only) */
};

/* ---- start-up -------------------------------------------------------- */

const char *pmp_python_version(void)
{
    static char version[32];
    if (!version[0]) {
        const char *v = Py_GetVersion();
        size_t n = strcspn(v, " ");
        if (n >= sizeof version)
            n = sizeof version - 1;
        memcpy(version, v, n);
        version[n] = '\0';
    }
    return version;
}

/* Writes "<what>: Type: message" for the pending Python exception into
 * err and clears the exception. */
static void s_exception_text(pmp_error_t *err, const char *what)
{
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    const char *tname = type ? ((PyTypeObject *)type)->tp_name : "unknown error";
    PyObject *str = value ? PyObject_Str(value) : NULL;
    const char *text = str ? PyUnicode_AsUTF8(str) : NULL;
    if (!text) {
        PyErr_Clear();
        text = "<no message>";
    }
    pmp_error_set(err, "%s: %s: %s", what, tname, text);
    Py_XDECREF(str);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* repr(sys.path) into buf, for error messages. */
static void s_sys_path_text(char *buf, size_t size)
{
    snprintf(buf, size, "?");
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *r = path ? PyObject_Repr(path) : NULL;
    const char *t = r ? PyUnicode_AsUTF8(r) : NULL;
    if (t)
        snprintf(buf, size, "%s", t);
    PyErr_Clear();
    Py_XDECREF(r);
}

static int s_status_failed(PyStatus status, PyConfig *config, pmp_error_t *err, const char *what)
{
    if (!PyStatus_Exception(status))
        return 0;
    pmp_error_set(err, "%s: %s%s%s", what, status.func ? status.func : "", status.func ? ": " : "",
                  status.err_msg ? status.err_msg : "failed");
    PyConfig_Clear(config);
    return -1;
}

static void s_release_objects(pmp_python_t *self)
{
    Py_CLEAR(self->run_init);
    Py_CLEAR(self->run_task);
    Py_CLEAR(self->run_define);
    Py_CLEAR(self->run_forget);
    Py_CLEAR(self->error_payload);
    Py_CLEAR(self->worker);
    Py_CLEAR(self->runtime_module);
}

/* Compiles and imports an embedded module source as name.  New reference
 * or NULL with a Python exception. */
static PyObject *s_import_source(const unsigned char *source, size_t len, const char *modname,
                                 const char *filename)
{
    PMP_ASSERT(strlen((const char *)source) == len);
    PyObject *code =
        Py_CompileStringExFlags((const char *)source, filename, Py_file_input, NULL, 0);
    if (!code)
        return NULL;
    PyObject *module = NULL;
    PyObject *name = PyUnicode_FromString(modname);
    PyObject *file = PyUnicode_FromString(filename);
    if (name && file)
        module = PyImport_ExecCodeModuleObject(name, code, file, NULL);
    Py_XDECREF(name);
    Py_XDECREF(file);
    Py_DECREF(code);
    return module;
}

/* Path of the MPI library this process loaded (the file that defines
 * MPI_Init), "" if unknown. */
static const char *s_libmpi_path(void)
{
    Dl_info info;
    memset(&info, 0, sizeof info);
    if (dladdr((void *)(uintptr_t)&MPI_Init, &info) && info.dli_fname)
        return info.dli_fname;
    return "";
}

pmp_python_t *pmp_python_new(const pmp_python_config_t *cfg, pmp_error_t *err)
{
    if (access(cfg->python_executable, X_OK) != 0) {
        pmp_error_set(err, "the Python executable '%s' %s (--python-executable)",
                      cfg->python_executable,
                      errno == ENOENT ? "does not exist" : "cannot be executed");
        errno = ENOENT;
        return NULL;
    }
    pmp_python_t *self = calloc(1, sizeof *self);
    if (!self) {
        pmp_error_set(err, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);

    if (PyImport_AppendInittab("_pympipool_runtime", pmp_pymodule_init) != 0) {
        pmp_error_set(err, "cannot register the _pympipool_runtime module");
        goto fail_early;
    }
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.install_signal_handlers = 0;
    config.user_site_directory = 0;
    config.parse_argv = 0;
    config.buffered_stdio = 0;
    config.module_search_paths_set = 1;
    if (s_status_failed(
            PyConfig_SetBytesString(&config, &config.program_name, cfg->python_executable), &config,
            err, "cannot configure Python") ||
        s_status_failed(
            PyConfig_SetBytesString(&config, &config.executable, cfg->python_executable), &config,
            err, "cannot configure Python"))
        goto fail_early;
    for (size_t i = 0; i < cfg->nsys_path; i++) {
        wchar_t *w = Py_DecodeLocale(cfg->sys_path[i], NULL);
        if (!w) {
            pmp_error_set(err, "cannot decode --sys-path '%s'", cfg->sys_path[i]);
            PyConfig_Clear(&config);
            goto fail_early;
        }
        PyStatus st = PyWideStringList_Append(&config.module_search_paths, w);
        PyMem_RawFree(w);
        if (s_status_failed(st, &config, err, "cannot configure Python"))
            goto fail_early;
    }
    PyStatus st = Py_InitializeFromConfig(&config);
    if (s_status_failed(st, &config, err, "Python cannot start"))
        goto fail_early;
    PyConfig_Clear(&config);

    /* The interpreter runs from here on: failures finalize it again. */
    char pathtext[1024];
    PyObject *cp = PyImport_ImportModule("cloudpickle");
    if (!cp) {
        PyObject *type = NULL, *value = NULL, *tb = NULL;
        PyErr_Fetch(&type, &value, &tb);
        s_sys_path_text(pathtext, sizeof pathtext);
        PyErr_Restore(type, value, tb);
        char what[1200];
        snprintf(what, sizeof what, "cannot import cloudpickle with sys.path %s", pathtext);
        s_exception_text(err, what);
        goto fail_started;
    }
    Py_DECREF(cp);
    self->runtime_module = PyImport_ImportModule("_pympipool_runtime");
    if (!self->runtime_module) {
        s_exception_text(err, "cannot import _pympipool_runtime");
        goto fail_started;
    }
    pmp_pymodule_set_group_comm(self->runtime_module, cfg->comm);
    pmp_pymodule_set_world_comms(self->runtime_module, cfg->meet, cfg->parent);
    PyObject *guard = s_import_source(pmp_mpi4py_guard_source, pmp_mpi4py_guard_source_len,
                                      S_GUARD_MODULE, S_GUARD_FILE);
    if (!guard) {
        s_exception_text(err, "cannot import the mpi4py guard module");
        goto fail_started;
    }
    Py_DECREF(guard);
    self->worker =
        s_import_source(pmp_worker_source, pmp_worker_source_len, S_WORKER_MODULE, S_WORKER_FILE);
    if (!self->worker) {
        s_exception_text(err, "cannot import the worker module");
        goto fail_started;
    }
    self->run_init = PyObject_GetAttrString(self->worker, "run_init");
    self->run_task = PyObject_GetAttrString(self->worker, "run_task");
    self->run_define = PyObject_GetAttrString(self->worker, "run_define");
    self->run_forget = PyObject_GetAttrString(self->worker, "run_forget");
    self->error_payload = PyObject_GetAttrString(self->worker, "_error_payload");
    if (!self->run_init || !self->run_task || !self->run_define || !self->run_forget ||
        !self->error_payload) {
        s_exception_text(err, "the worker module is incomplete");
        goto fail_started;
    }
    PyObject *r = PyObject_CallMethod(self->worker, "setup", "iisi", cfg->rank, cfg->size,
                                      cfg->host, cfg->world_rank);
    if (!r) {
        s_exception_text(err, "cannot set up the worker module");
        goto fail_started;
    }
    Py_DECREF(r);
    r = PyObject_CallMethod(self->worker, "setup_mpi", "ssss", PMP_MPI4PY_MODE, PMP_RUNTIME_MPI,
                            PMP_MPI4PY_MPI, s_libmpi_path());
    if (!r) {
        s_exception_text(err, "cannot set up the communicator");
        goto fail_started;
    }
    Py_DECREF(r);
    if (cfg->shm_host != NULL) {
        r = PyObject_CallMethod(self->worker, "setup_shm", "s", cfg->shm_host);
        if (!r) {
            s_exception_text(err, "cannot set up shared memory");
            goto fail_started;
        }
        Py_DECREF(r);
    }
    if (cfg->run_time_max > 0.0) {
        r = PyObject_CallMethod(self->worker, "set_time_limit", "d", cfg->run_time_max);
        if (!r) {
            s_exception_text(err, "cannot set the per-call time limit");
            goto fail_started;
        }
        Py_DECREF(r);
    }
    self->tstate = PyEval_SaveThread();
    return self;

fail_started:
    s_release_objects(self);
    Py_FinalizeEx();
fail_early:
    pthread_mutex_destroy(&self->lock);
    free(self);
    errno = EINVAL;
    return NULL;
}

void pmp_python_destroy(pmp_python_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_python_t *self = *self_p;
    pmp_python_drain(self);
    PyEval_RestoreThread(self->tstate);
    s_release_objects(self);
    if (Py_FinalizeEx() != 0)
        pmp_log(PMP_LOG_WARNING, "Python finalization reported an error");
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- release list ---------------------------------------------------- */

void pmp_python_zmq_free(void *data, void *hint)
{
    (void)data;
    s_view_t *v = hint;
    pmp_python_t *owner = v->owner;
    pthread_mutex_lock(&owner->lock);
    v->next = owner->released;
    owner->released = v;
    pthread_mutex_unlock(&owner->lock);
}

void *pmp_python_result_handoff(pmp_python_t *self, pmp_result_t *res, uint32_t i)
{
    void *hint = res->views[i];
    PMP_ASSERT(hint != NULL);
    res->views[i] = NULL;
    self->pending++;
    return hint;
}

size_t pmp_python_pending(const pmp_python_t *self)
{
    return self->pending;
}

/* With the GIL held. */
static void s_view_release(s_view_t *v)
{
    PyBuffer_Release(&v->view);
    free(v);
}

void pmp_python_drain(pmp_python_t *self)
{
    pthread_mutex_lock(&self->lock);
    s_view_t *list = self->released;
    self->released = NULL;
    pthread_mutex_unlock(&self->lock);
    if (!list)
        return;
    PyEval_RestoreThread(self->tstate);
    while (list) {
        s_view_t *next = list->next;
        s_view_release(list);
        PMP_ASSERT(self->pending > 0);
        self->pending--;
        list = next;
    }
    self->tstate = PyEval_SaveThread();
}

/* ---- calls ----------------------------------------------------------- */

void pmp_python_run_init(pmp_python_t *self, pmp_rtmsg_t *msg)
{
    PyEval_RestoreThread(self->tstate);
    PyObject *payload = NULL, *buffers = NULL;
    PyObject *r = NULL;
    if (pmp_pymodule_wrap_message(self->runtime_module, msg, &payload, &buffers) == 0)
        r = PyObject_CallFunctionObjArgs(self->run_init, payload, buffers, NULL);
    if (!r) {
        /* run_init catches everything; this is a bug or an out-of-memory. */
        PyErr_Print();
        pmp_log(PMP_LOG_ERROR, "the worker's run_init raised (see above)");
    }
    Py_XDECREF(r);
    Py_XDECREF(payload);
    Py_XDECREF(buffers);
    self->tstate = PyEval_SaveThread();
}

void pmp_python_run_define(pmp_python_t *self, pmp_rtmsg_t *msg)
{
    PyEval_RestoreThread(self->tstate);
    PyObject *payload = NULL, *buffers = NULL, *r = NULL;
    PyObject *key = PyLong_FromUnsignedLongLong(msg->task_id);
    if (key && pmp_pymodule_wrap_message(self->runtime_module, msg, &payload, &buffers) == 0)
        r = PyObject_CallFunctionObjArgs(self->run_define, key, payload, buffers, NULL);
    if (!r) {
        /* run_define catches everything; this is a bug or an out-of-memory. */
        PyErr_Print();
        pmp_log(PMP_LOG_ERROR, "the worker's run_define raised (see above)");
    }
    Py_XDECREF(r);
    Py_XDECREF(key);
    Py_XDECREF(payload);
    Py_XDECREF(buffers);
    self->tstate = PyEval_SaveThread();
}

void pmp_python_run_forget(pmp_python_t *self, const pmp_rtmsg_t *msg)
{
    PyEval_RestoreThread(self->tstate);
    PyObject *r = PyObject_CallFunction(self->run_forget, "K", (unsigned long long)msg->task_id);
    if (!r) {
        PyErr_Print();
        pmp_log(PMP_LOG_ERROR, "the worker's run_forget raised (see above)");
    }
    Py_XDECREF(r);
    self->tstate = PyEval_SaveThread();
}

static void s_result_alloc(pmp_result_t *res, uint32_t n)
{
    size_t k = n ? n : 1;
    res->nframes = n;
    res->data = calloc(k, sizeof *res->data);
    res->size = calloc(k, sizeof *res->size);
    res->views = calloc(k, sizeof *res->views);
    PMP_ASSERT(res->data && res->size && res->views);
}

/* Adds obj as frame i of res.  0 or -1 with a Python exception. */
static int s_result_set(pmp_python_t *self, pmp_result_t *res, uint32_t i, PyObject *obj)
{
    s_view_t *v = calloc(1, sizeof *v);
    if (!v) {
        PyErr_NoMemory();
        return -1;
    }
    if (PyObject_GetBuffer(obj, &v->view, PyBUF_SIMPLE) != 0) {
        free(v);
        return -1;
    }
    v->owner = self;
    res->views[i] = v;
    res->data[i] = v->view.buf;
    res->size[i] = (size_t)v->view.len;
    return 0;
}

static void s_result_clear_locked(pmp_result_t *res)
{
    for (uint32_t i = 0; i < res->nframes; i++)
        if (res->views && res->views[i])
            s_view_release(res->views[i]);
    free(res->data);
    free(res->size);
    free(res->views);
    memset(res, 0, sizeof *res);
}

/* Turns the pending exception into an error result (one frame) using the
 * worker's own error encoder.  Fatal if even that fails. */
static void s_error_result(pmp_python_t *self, pmp_result_t *res)
{
    s_result_clear_locked(res);
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb)
        PyException_SetTraceback(value, tb);
    PyObject *payload =
        value ? PyObject_CallFunctionObjArgs(self->error_payload, value, NULL) : NULL;
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (!payload)
        PyErr_Print();
    PMP_ASSERT(payload != NULL);
    res->ok = 0;
    s_result_alloc(res, 1);
    int rc = s_result_set(self, res, 0, payload);
    Py_DECREF(payload);
    PMP_ASSERT(rc == 0);
}

void pmp_python_run_task(pmp_python_t *self, pmp_rtmsg_t *msg, pmp_result_t *res)
{
    memset(res, 0, sizeof *res);
    PyEval_RestoreThread(self->tstate);
    PyObject *payload = NULL, *buffers = NULL, *r = NULL;
    PyObject *flags = PyLong_FromUnsignedLong(msg->flags);
    if (flags && pmp_pymodule_wrap_message(self->runtime_module, msg, &payload, &buffers) == 0)
        r = PyObject_CallFunctionObjArgs(self->run_task, payload, buffers, flags, NULL);
    Py_XDECREF(flags);
    Py_XDECREF(payload);
    Py_XDECREF(buffers);
    if (!r) {
        s_error_result(self, res);
        goto out;
    }
    PyObject *ok = NULL, *data = NULL, *oob = NULL;
    unsigned int reply_flags = 0;
    if (!PyTuple_Check(r) || !PyArg_ParseTuple(r, "OOO|I", &ok, &data, &oob, &reply_flags) ||
        !PyList_Check(oob) || (reply_flags & ~PMP_FLAG_SHM) != 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError,
                            "run_task must return (ok, payload, [buffers][, FLAG_SHM or 0])");
        s_error_result(self, res);
        goto out;
    }
    res->ok = PyObject_IsTrue(ok) == 1;
    res->flags = res->ok ? reply_flags : 0;
    Py_ssize_t nb = PyList_GET_SIZE(oob);
    if (nb >= (Py_ssize_t)PMP_MAX_FRAMES) {
        PyErr_Format(PyExc_ValueError,
                     "the result has %zd out-of-band buffers; a message carries at most %d", nb,
                     PMP_MAX_FRAMES - 1);
        s_error_result(self, res);
        goto out;
    }
    s_result_alloc(res, (uint32_t)nb + 1);
    if (s_result_set(self, res, 0, data) != 0) {
        s_error_result(self, res);
        goto out;
    }
    for (Py_ssize_t i = 0; i < nb; i++) {
        if (s_result_set(self, res, (uint32_t)i + 1, PyList_GET_ITEM(oob, i)) != 0) {
            s_error_result(self, res);
            goto out;
        }
    }
out:
    Py_XDECREF(r);
    self->tstate = PyEval_SaveThread();
}

void pmp_python_result_clear(pmp_python_t *self, pmp_result_t *res)
{
    int any = 0;
    for (uint32_t i = 0; i < res->nframes; i++)
        if (res->views && res->views[i])
            any = 1;
    if (!any) {
        free(res->data);
        free(res->size);
        free(res->views);
        memset(res, 0, sizeof *res);
        return;
    }
    PyEval_RestoreThread(self->tstate);
    if ((res->flags & PMP_FLAG_SHM) && res->nframes >= 2 && res->views[0] &&
        res->views[res->nframes - 1]) {
        /* Not sent (the payload was never handed over): the leader's
         * segments that the table names are its own again. */
        PyObject *r = PyObject_CallMethod(self->worker, "shm_unsent", "O",
                                          ((s_view_t *)res->views[res->nframes - 1])->view.obj);
        if (!r) {
            PyErr_Print();
            pmp_log(PMP_LOG_ERROR, "the worker's shm_unsent raised (see above)");
        }
        Py_XDECREF(r);
    }
    s_result_clear_locked(res);
    self->tstate = PyEval_SaveThread();
}
