/*
 * _channel.c - pympipool._core.Channel, the thin binding over
 * frontend/pmp_channel.h that pympipool.SocketInterface (pylib/pympipool/
 * _socket.py) and the programs it boots are built on.  Pickling, the dict
 * conventions and the error objects live in Python; this file moves bytes,
 * waits without the GIL and maps errors.
 *
 * One heap type, created from its spec by pmp_py_channel_add_types() during
 * _core's multi-phase initialisation (no static PyObject globals):
 *
 *   Channel       owns one pmp_channel_t, server (Channel(...)) or client
 *                 (Channel.connect(...)).  send() waits until the peer can
 *                 take a message (and again if the peer left between the
 *                 wait and the send: pmp_channel_send() never blocks, it
 *                 refuses with EAGAIN), recv() until one arrives, both with the
 *                 GIL released in slices of at most 100 ms, calling
 *                 PyErr_CheckSignals() between slices (Ctrl-C works) and
 *                 raising ChildProcessError with the exit status and stderr
 *                 tail as soon as a booted program is gone.  Buffers of
 *                 64 KiB or more are sent without copying, held until the
 *                 frontend gives them back on the channel's release list,
 *                 which is drained with the GIL at the next call and after
 *                 destroy (the holds, the errno -> exception mapping and the
 *                 Frame type of received frames are shared with _core.c's
 *                 Executor: _pmp_py.c).
 *
 * Threads: a channel may be used by one thread at a time (its socket is a
 * ZeroMQ socket); a second thread entering while one waits gets
 * RuntimeError.  destroy() from another thread is allowed: it marks the
 * channel closing, the waiting call leaves within one slice with
 * RuntimeError, and only then is the C object freed.
 *
 * Fork: in a child made by fork() an inherited Channel is dead (`forked`
 * is True): its methods raise RuntimeError naming both processes, and
 * destroy() and deallocation return at once without waiting for `busy` or
 * taking the release list's lock (the parent's threads may have held it);
 * the parent's booted program is left alone.
 */
#define PY_SSIZE_T_CLEAN
#include "_channel.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "_pmp_py.h"
#include "pmp_channel.h"

#define S_SLICE_MS 100
#define S_DEFAULT_GRACE_MS PMP_DESTROY_GRACE_MS

typedef struct {
    PyObject ob_base;
    pmp_channel_t *ch;
    PyTypeObject *frame_type; /* strong reference to Frame */
    int closing;              /* destroy() has begun */
    int busy;                 /* a call is inside with the GIL released */
    uint64_t last_task_id;
    pid_t owner; /* the process that created it (for `forked` once ch is gone) */
    pmp_py_release_t released;
} s_channel_object;

/* Whether this process is a forked child of the channel's creator. */
static int s_forked(const s_channel_object *self)
{
    if (self->ch != NULL)
        return pmp_channel_forked(self->ch);
    return self->owner != 0 && getpid() != self->owner;
}

/* Releases what the frontend gave back; not in a forked child, where the
 * list's lock may have been held by a thread of the parent. */
static void s_drain(s_channel_object *self)
{
    if (!s_forked(self))
        pmp_py_release_drain(&self->released);
}

/* ---- Channel: construction ------------------------------------------------------ */

static s_channel_object *s_channel_alloc(PyTypeObject *type)
{
    pmp_py_state_t *st = (pmp_py_state_t *)PyType_GetModuleState(type);
    if (st == NULL)
        return NULL;
    if (st->frame_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pympipool._core is not initialised");
        return NULL;
    }
    s_channel_object *self = (s_channel_object *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->ch = NULL;
    self->frame_type = st->frame_type;
    Py_INCREF(self->frame_type);
    self->closing = 0;
    self->busy = 0;
    self->last_task_id = 0;
    self->owner = getpid();
    pmp_py_release_init(&self->released);
    return self;
}

static PyObject *s_channel_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"interface", "curve", NULL};
    const char *interface = "127.0.0.1";
    int curve = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|si:Channel", kwlist, &interface, &curve))
        return NULL;
    s_channel_object *self = s_channel_alloc(type);
    if (self == NULL)
        return NULL;
    pmp_error_t err;
    err.text[0] = '\0';
    self->ch = pmp_channel_new_server(interface, curve < 0 ? -1 : curve != 0, &err);
    if (self->ch == NULL) {
        int e = errno;
        Py_DECREF(self);
        return pmp_py_raise(PyType_GetModuleState(type), e, err.text);
    }
    return (PyObject *)self;
}

PyDoc_STRVAR(s_connect_doc,
             "connect($cls, host, port, server_key=None, public_key=None, secret_key=None)\n--\n\n"
             "The client side: a Channel connected to tcp://host:port, with CURVE when\n"
             "server_key is given (then public_key and secret_key are the client's).");

static PyObject *s_channel_connect(PyObject *cls, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"host", "port", "server_key", "public_key", "secret_key", NULL};
    const char *host;
    int port;
    const char *server_key = NULL, *public_key = NULL, *secret_key = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "si|zzz:connect", kwlist, &host, &port,
                                     &server_key, &public_key, &secret_key))
        return NULL;
    s_channel_object *self = s_channel_alloc((PyTypeObject *)cls);
    if (self == NULL)
        return NULL;
    pmp_error_t err;
    err.text[0] = '\0';
    self->ch = pmp_channel_new_client(host, port, server_key, public_key, secret_key, &err);
    if (self->ch == NULL) {
        int e = errno;
        Py_DECREF(self);
        return pmp_py_raise(PyType_GetModuleState((PyTypeObject *)cls), e, err.text);
    }
    return (PyObject *)self;
}

static void s_channel_destroy_now(s_channel_object *self, int grace_ms, int wait)
{
    if (s_forked(self)) { /* the parent's: nothing to wait for or stop */
        self->closing = 1;
        pmp_channel_destroy(&self->ch, 0, 0); /* returns at once, leaks */
        return;
    }
    self->closing = 1;
    while (self->busy > 0)
        pmp_py_sleep_without_gil();
    pmp_channel_t *ch = self->ch;
    self->ch = NULL;
    if (ch != NULL) {
        PyThreadState *ts = PyEval_SaveThread();
        pmp_channel_destroy(&ch, grace_ms, wait);
        PyEval_RestoreThread(ts);
    }
    s_drain(self);
}

static void s_channel_dealloc(PyObject *op)
{
    s_channel_object *self = (s_channel_object *)op;
    PyTypeObject *tp = Py_TYPE(op);
    /* Never block a garbage collection: the keeper stops the program in
     * the background. */
    s_channel_destroy_now(self, S_DEFAULT_GRACE_MS, 0);
    if (!s_forked(self)) /* in a child the lock may be held: leak the list */
        pmp_py_release_fini(&self->released);
    Py_CLEAR(self->frame_type);
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* ---- Channel: methods ---------------------------------------------------------- */

/* Enters a call: the channel must be open and not in use by another thread. */
static int s_enter(s_channel_object *self)
{
    if (s_forked(self)) {
        char text[200];
        snprintf(text, sizeof text,
                 "this socket interface belongs to process %ld; it cannot be used in a forked "
                 "child (pid %ld)",
                 (long)self->owner, (long)getpid());
        pmp_py_raise(pmp_py_state_of((PyObject *)self), PMP_EFORKED, text);
        return -1;
    }
    if (self->closing || self->ch == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the socket interface is closed");
        return -1;
    }
    if (self->busy > 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the socket interface is in use by another thread; a SocketInterface "
                        "may be used by one thread at a time");
        return -1;
    }
    return 0;
}

static PyObject *s_channel_bind(PyObject *op, PyObject *unused)
{
    s_channel_object *self = (s_channel_object *)op;
    if (s_enter(self) < 0)
        return NULL;
    pmp_error_t err;
    err.text[0] = '\0';
    int port = pmp_channel_bind_random_port(self->ch, &err);
    if (port < 0)
        return pmp_py_raise(pmp_py_state_of((PyObject *)self), errno, err.text);
    return PyLong_FromLong(port);
}

/* A sequence of str / bytes / PathLike as a NULL-terminated array of
 * pointers into *keep (a list of bytes the caller releases). */
static const char **s_fs_array(PyObject *seq, const char *name, PyObject **keep)
{
    PyObject *fast = PySequence_Fast(seq, "expected a list of strings");
    if (fast == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject *list = PyList_New(0);
    const char **out = PyMem_Calloc((size_t)n + 1, sizeof *out);
    if (list == NULL || out == NULL) {
        if (out == NULL)
            PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        PyObject *bytes = NULL;
        if (!PyUnicode_Check(item) && !PyBytes_Check(item) &&
            !PyObject_HasAttrString(item, "__fspath__")) {
            PyErr_Format(PyExc_TypeError, "%s must hold strings, not %.100s", name,
                         Py_TYPE(item)->tp_name);
            goto fail;
        }
        if (!PyUnicode_FSConverter(item, &bytes))
            goto fail;
        if (PyList_Append(list, bytes) < 0) {
            Py_DECREF(bytes);
            goto fail;
        }
        out[i] = PyBytes_AS_STRING(bytes);
        Py_DECREF(bytes); /* the list keeps it */
    }
    Py_DECREF(fast);
    *keep = list;
    return out;
fail:
    Py_DECREF(fast);
    Py_XDECREF(list);
    PyMem_Free(out);
    return NULL;
}

PyDoc_STRVAR(s_bootup_doc, "bootup($self, argv, cwd=None, env=None)\n--\n\n"
                           "Start argv (a list, no shell) and watch it.  env: the program's\n"
                           "whole environment as a list of 'KEY=value', or None for ours.");

static PyObject *s_channel_bootup(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"argv", "cwd", "env", NULL};
    s_channel_object *self = (s_channel_object *)op;
    PyObject *argv_obj, *cwd_obj = Py_None, *env_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO:bootup", kwlist, &argv_obj, &cwd_obj,
                                     &env_obj))
        return NULL;
    if (s_enter(self) < 0)
        return NULL;
    if (PyUnicode_Check(argv_obj) || PyBytes_Check(argv_obj)) {
        PyErr_SetString(PyExc_TypeError,
                        "command_lst must be a list of arguments, not a string (no shell is "
                        "used)");
        return NULL;
    }
    PyObject *keep_argv = NULL, *keep_env = NULL, *cwd_bytes = NULL, *result = NULL;
    const char **argv = NULL, **env = NULL;
    argv = s_fs_array(argv_obj, "command_lst", &keep_argv);
    if (argv == NULL)
        goto done;
    if (argv[0] == NULL) {
        PyErr_SetString(pmp_py_invalid_argument(pmp_py_state_of(op)), "command_lst is empty");
        goto done;
    }
    if (env_obj != Py_None && (env = s_fs_array(env_obj, "env", &keep_env)) == NULL)
        goto done;
    if (cwd_obj != Py_None && !PyUnicode_FSConverter(cwd_obj, &cwd_bytes))
        goto done;
    pmp_error_t err;
    err.text[0] = '\0';
    int rc, e;
    self->busy++;
    const char *cwd = cwd_bytes != NULL ? PyBytes_AS_STRING(cwd_bytes) : NULL;
    PyThreadState *ts = PyEval_SaveThread();
    rc = pmp_channel_bootup(self->ch, argv, cwd, env, &err);
    e = errno;
    PyEval_RestoreThread(ts);
    self->busy--;
    if (rc < 0) {
        pmp_py_raise(pmp_py_state_of((PyObject *)self), e, err.text);
        if (e == ENOENT && PyErr_ExceptionMatches(PyExc_FileNotFoundError)) {
            /* make .filename the program, as subprocess does */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            PyObject *name = PyUnicode_DecodeFSDefault(argv[0]);
            if (name != NULL) {
                PyObject_SetAttrString(value, "filename", name);
                Py_DECREF(name);
            }
            PyErr_Clear();
            PyErr_Restore(type, value, tb);
        }
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(argv);
    PyMem_Free(env);
    Py_XDECREF(keep_argv);
    Py_XDECREF(keep_env);
    Py_XDECREF(cwd_bytes);
    return result;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parses timeout (None or seconds >= 0).  Returns 0 and sets *deadline
 * (< 0: forever), or -1 with an exception. */
static int s_deadline(const pmp_py_state_t *st, PyObject *timeout_obj, double *deadline)
{
    *deadline = -1.0;
    if (timeout_obj == Py_None)
        return 0;
    double timeout = PyFloat_AsDouble(timeout_obj);
    if (timeout == -1.0 && PyErr_Occurred())
        return -1;
    if (!(timeout >= 0.0)) {
        PyErr_SetString(pmp_py_invalid_argument(st),
                        "timeout must be a non-negative number or None");
        return -1;
    }
    *deadline = s_now() + timeout;
    return 0;
}

static int s_slice(double deadline)
{
    if (deadline < 0)
        return S_SLICE_MS;
    double left = deadline - s_now();
    if (left <= 0)
        return 0;
    return left * 1000.0 < S_SLICE_MS ? (int)(left * 1000.0) + 1 : S_SLICE_MS;
}

/* Waits in slices until the peer takes a message.  Returns 1 when writable,
 * 0 on timeout, -1 with an exception. */
static int s_wait_writable(s_channel_object *self, double deadline)
{
    for (;;) {
        if (self->closing || self->ch == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "the socket interface was closed");
            return -1;
        }
        int slice = s_slice(deadline);
        pmp_error_t err;
        err.text[0] = '\0';
        int rc, e;
        self->busy++;
        PyThreadState *ts = PyEval_SaveThread();
        rc = pmp_channel_wait_writable(self->ch, slice, &err);
        e = errno;
        PyEval_RestoreThread(ts);
        self->busy--;
        if (rc == 0)
            return 1;
        if (e != EAGAIN) {
            pmp_py_raise(pmp_py_state_of((PyObject *)self), e, err.text);
            return -1;
        }
        if (PyErr_CheckSignals() < 0)
            return -1;
        if (deadline >= 0 && s_now() >= deadline)
            return 0;
    }
}

PyDoc_STRVAR(s_send_doc, "send($self, type, task_id, flags, payload, buffers, timeout=None)\n--\n\n"
                         "Wait until the peer can take a message (GIL released, signals checked\n"
                         "every 100 ms) and send it: header, payload, out-of-band buffers (64 KiB\n"
                         "or more: not copied).  A peer that leaves before the message is taken\n"
                         "is waited for again.  True once sent, False if timeout seconds passed\n"
                         "first.  Raises ChildProcessError when the booted program has exited,\n"
                         "ConnectionResetError if the peer left in the middle of the message.");

static PyObject *s_channel_send(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"type", "task_id", "flags", "payload", "buffers", "timeout", NULL};
    s_channel_object *self = (s_channel_object *)op;
    int type;
    unsigned long long task_id;
    unsigned int flags;
    PyObject *payload, *buffers_obj, *timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iKIOO|O:send", kwlist, &type, &task_id, &flags,
                                     &payload, &buffers_obj, &timeout_obj))
        return NULL;
    double deadline;
    if (s_deadline(pmp_py_state_of(op), timeout_obj, &deadline) < 0)
        return NULL;
    if (s_enter(self) < 0)
        return NULL;
    s_drain(self);
    pmp_py_message_t msg;
    PyObject *result = NULL;
    if (pmp_py_message_fill(&msg, &self->released, payload, buffers_obj) < 0)
        goto done;
    pmp_error_t err;
    int rc, e;
    for (;;) {
        int w = s_wait_writable(self, deadline);
        if (w < 0)
            goto done;
        if (w == 0) {
            result = Py_False;
            Py_INCREF(result);
            goto done;
        }
        err.text[0] = '\0';
        self->busy++;
        PyThreadState *ts = PyEval_SaveThread();
        rc = pmp_channel_send(self->ch, type, (uint64_t)task_id, (uint32_t)flags, msg.bufs,
                              (size_t)msg.n, &err);
        e = errno;
        PyEval_RestoreThread(ts);
        self->busy--;
        if (rc == 0 || e != EAGAIN)
            break;
        /* The peer left after it was writable; nothing was taken: wait again
         * (for the program's exit too), within the deadline. */
        if (PyErr_CheckSignals() < 0)
            goto done;
        if (deadline >= 0 && s_now() >= deadline) {
            result = Py_False;
            Py_INCREF(result);
            goto done;
        }
    }
    if (rc < 0 && (e == EINVAL || e == PMP_EFORKED)) {
        pmp_py_raise(pmp_py_state_of((PyObject *)self), e,
                     err.text); /* no free_fn was called: we still own the holds */
        goto done;
    }
    pmp_py_message_handed_over(&msg); /* every hold is given away (released via free_fn) */
    if (rc < 0) {
        pmp_py_raise(pmp_py_state_of((PyObject *)self), e, err.text);
        goto done;
    }
    result = Py_True;
    Py_INCREF(result);
done:
    pmp_py_message_clear(&msg);
    s_drain(self);
    return result;
}

PyDoc_STRVAR(s_recv_doc, "recv($self, timeout=None)\n--\n\n"
                         "Wait for the next message (GIL released, signals checked every\n"
                         "100 ms): (type, task_id, flags, frames), or None after timeout\n"
                         "seconds.  Raises ChildProcessError with the exit status and stderr\n"
                         "tail when the booted program has exited.");

static PyObject *s_channel_recv(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"timeout", NULL};
    s_channel_object *self = (s_channel_object *)op;
    PyObject *timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:recv", kwlist, &timeout_obj))
        return NULL;
    double deadline;
    if (s_deadline(pmp_py_state_of(op), timeout_obj, &deadline) < 0)
        return NULL;
    if (s_enter(self) < 0)
        return NULL;
    s_drain(self);
    for (;;) {
        if (self->closing || self->ch == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "the socket interface was closed");
            return NULL;
        }
        int slice = s_slice(deadline);
        pmp_error_t err;
        err.text[0] = '\0';
        pmp_channel_msg_t *m;
        int e;
        self->busy++;
        PyThreadState *ts = PyEval_SaveThread();
        m = pmp_channel_recv(self->ch, slice, &err);
        e = errno;
        PyEval_RestoreThread(ts);
        self->busy--;
        if (m != NULL) {
            PyObject *frames = PyList_New((Py_ssize_t)m->nframes);
            for (size_t i = 0; frames != NULL && i < m->nframes; i++) {
                PyObject *f = pmp_py_frame_new(self->frame_type, m->frames[i]);
                m->frames[i] = NULL;
                if (f == NULL) {
                    Py_CLEAR(frames);
                    break;
                }
                PyList_SET_ITEM(frames, (Py_ssize_t)i, f);
            }
            PyObject *result = NULL;
            if (frames != NULL)
                result = Py_BuildValue("(iKIN)", m->type, (unsigned long long)m->task_id,
                                       (unsigned int)m->flags, frames);
            if (result != NULL)
                self->last_task_id = m->task_id;
            pmp_channel_msg_destroy(&m);
            return result;
        }
        if (e != EAGAIN)
            return pmp_py_raise(pmp_py_state_of((PyObject *)self), e, err.text);
        if (PyErr_CheckSignals() < 0)
            return NULL;
        if (deadline >= 0 && s_now() >= deadline)
            Py_RETURN_NONE;
    }
}

PyDoc_STRVAR(s_destroy_doc,
             "destroy($self, grace_ms=3000, wait=True)\n--\n\n"
             "Close the socket and stop the booted program: wait up to grace_ms for it\n"
             "to exit, then SIGTERM, then SIGKILL; with wait=False that happens in the\n"
             "background.  Idempotent.");

static PyObject *s_channel_destroy(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"grace_ms", "wait", NULL};
    s_channel_object *self = (s_channel_object *)op;
    int grace_ms = S_DEFAULT_GRACE_MS, wait = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|ip:destroy", kwlist, &grace_ms, &wait))
        return NULL;
    if (grace_ms < 0) {
        PyErr_SetString(pmp_py_invalid_argument(pmp_py_state_of(op)), "grace_ms must be >= 0");
        return NULL;
    }
    s_channel_destroy_now(self, grace_ms, wait);
    Py_RETURN_NONE;
}

static PyObject *s_get_closed(PyObject *op, void *closure)
{
    s_channel_object *self = (s_channel_object *)op;
    return PyBool_FromLong(self->closing || self->ch == NULL);
}

static PyObject *s_get_endpoint(PyObject *op, void *closure)
{
    s_channel_object *self = (s_channel_object *)op;
    if (self->ch == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(pmp_channel_endpoint(self->ch));
}

static PyObject *s_get_curve(PyObject *op, void *closure)
{
    s_channel_object *self = (s_channel_object *)op;
    return PyBool_FromLong(self->ch != NULL && pmp_channel_curve(self->ch));
}

static PyObject *s_get_keys(PyObject *op, void *closure)
{
    s_channel_object *self = (s_channel_object *)op;
    if (self->ch == NULL || pmp_channel_server_public_key(self->ch) == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("(sss)", pmp_channel_server_public_key(self->ch),
                         pmp_channel_client_public_key(self->ch),
                         pmp_channel_client_secret_key(self->ch));
}

static PyObject *s_get_pid(PyObject *op, void *closure)
{
    s_channel_object *self = (s_channel_object *)op;
    if (self->ch == NULL || pmp_channel_pid(self->ch) < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong((long)pmp_channel_pid(self->ch));
}

static PyObject *s_get_exit_status(PyObject *op, void *closure)
{
    s_channel_object *self = (s_channel_object *)op;
    int status;
    /* unknown in a forked child: the parent's keeper knows */
    if (self->ch == NULL || pmp_channel_exited(self->ch, &status) != 1)
        Py_RETURN_NONE;
    return PyLong_FromLong(status);
}

static PyObject *s_get_exit_text(PyObject *op, void *closure)
{
    s_channel_object *self = (s_channel_object *)op;
    if (self->ch == NULL)
        Py_RETURN_NONE;
    char *text = pmp_channel_exit_text(self->ch);
    if (text == NULL)
        Py_RETURN_NONE;
    PyObject *s = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
    free(text);
    return s;
}

static PyObject *s_get_forked(PyObject *op, void *closure)
{
    return PyBool_FromLong(s_forked((s_channel_object *)op));
}

static PyObject *s_get_last_task_id(PyObject *op, void *closure)
{
    s_channel_object *self = (s_channel_object *)op;
    return PyLong_FromUnsignedLongLong(self->last_task_id);
}

static PyMethodDef s_channel_methods[] = {
    {"connect", (PyCFunction)(void (*)(void))s_channel_connect,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS, s_connect_doc},
    {"bind_random_port", s_channel_bind, METH_NOARGS,
     "bind_random_port() -> port: bind the server to a free TCP port of its interface."},
    {"bootup", (PyCFunction)(void (*)(void))s_channel_bootup, METH_VARARGS | METH_KEYWORDS,
     s_bootup_doc},
    {"send", (PyCFunction)(void (*)(void))s_channel_send, METH_VARARGS | METH_KEYWORDS, s_send_doc},
    {"recv", (PyCFunction)(void (*)(void))s_channel_recv, METH_VARARGS | METH_KEYWORDS, s_recv_doc},
    {"destroy", (PyCFunction)(void (*)(void))s_channel_destroy, METH_VARARGS | METH_KEYWORDS,
     s_destroy_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef s_channel_getset[] = {
    {"closed", s_get_closed, NULL, "Whether destroy() has run.", NULL},
    {"endpoint", s_get_endpoint, NULL, "The bound or connected endpoint.", NULL},
    {"curve", s_get_curve, NULL, "Whether the channel uses CURVE.", NULL},
    {"keys", s_get_keys, NULL,
     "Server with CURVE: (server public, client public, client secret) in Z85; else None.", NULL},
    {"pid", s_get_pid, NULL, "Process id of the booted program, or None.", NULL},
    {"exit_status", s_get_exit_status, NULL,
     "waitpid status of the booted program once it exited, else None.", NULL},
    {"exit_text", s_get_exit_text, NULL,
     "Sentence describing the booted program's exit (with its stderr tail), or None.", NULL},
    {"last_task_id", s_get_last_task_id, NULL, "Task id of the last message received.", NULL},
    {"forked", s_get_forked, NULL,
     "Whether this process is a forked child of the one that created the channel\n"
     "(it is then dead here: methods raise RuntimeError, destroy() returns at once).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot s_channel_slots[] = {
    {Py_tp_doc, "Channel(interface='127.0.0.1', curve=-1)\n\n"
                "One point-to-point channel (frontend/pmp_channel.h): the server side;\n"
                "Channel.connect(...) makes the client side."},
    {Py_tp_new, s_channel_new},
    {Py_tp_dealloc, s_channel_dealloc},
    {Py_tp_methods, s_channel_methods},
    {Py_tp_getset, s_channel_getset},
    {0, NULL},
};

static PyType_Spec s_channel_spec = {
    .name = "pympipool._core.Channel",
    .basicsize = sizeof(s_channel_object),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = s_channel_slots,
};

int pmp_py_channel_add_types(PyObject *module)
{
    PyTypeObject *channel_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &s_channel_spec, NULL);
    if (channel_type == NULL)
        return -1;
    int rc = PyModule_AddType(module, channel_type);
    Py_DECREF(channel_type);
    if (rc < 0)
        return -1;
    if (PyModule_AddIntConstant(module, "CHANNEL_HAS_CURVE", pmp_channel_has_curve()) < 0)
        return -1;
    return 0;
}
