/*
 * _pmp_py.c - the pieces the two binding files of pympipool._core share:
 * _core.c (Executor, over frontend/pmp_executor.h) and _channel.c (Channel,
 * over frontend/pmp_channel.h) move the same kind of bytes in the same way,
 * so the conventions live here once:
 *
 *   errors   pmp_py_raise() is the one errno -> exception mapping; the
 *            frontend's sentence becomes the message.  Bad arguments raise
 *            the module's InvalidArgumentError, a ValueError.
 *   holds    outgoing buffers of PMP_PY_ZERO_COPY_THRESHOLD bytes or more
 *            are passed without copying: the Py_buffer (and so its
 *            exporter) stays alive in a small malloc'ed hold whose free_fn,
 *            called later from a ZeroMQ thread without the GIL, only pushes
 *            it onto a mutex-protected release list.  The owner drains the
 *            list with the GIL (pmp_py_release_drain), so no Python code ever
 *            runs on a C thread.  Smaller buffers are copied by the frontend
 *            during the send call and released right after it.
 *   messages pmp_py_message_fill() turns a payload plus a sequence of
 *            buffers into the pmp_buffer_t array both frontends take, with
 *            holds; the caller says whether the frontend took it
 *            (pmp_py_message_handed_over) and then clears it.
 *   Frame    the one type for received frames (pympipool._core.Frame): owns
 *            a pmp_frame_t and exports it as a writable buffer, so that
 *            memoryview(frame) and numpy arrays unpickled from it are
 *            writable and zero-copy.
 *
 * Everything here needs the GIL except the holds' free callback.
 */
#define PY_SSIZE_T_CLEAN
#include "_pmp_py.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* ---- errors ---------------------------------------------------------------- */

PyObject *pmp_py_invalid_argument(const pmp_py_state_t *st)
{
    return st != NULL && st->invalid_argument_error != NULL ? st->invalid_argument_error
                                                            : PyExc_ValueError;
}

PyObject *pmp_py_raise(const pmp_py_state_t *st, int errnum, const char *text)
{
    if (text == NULL || text[0] == '\0')
        text = strerror(errnum);
    /* The text may carry a job's stderr tail: never fail on bad UTF-8. */
    PyObject *msg = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
    if (msg == NULL)
        return NULL;
    PyObject *type = NULL;
    switch (errnum) {
    case EINVAL:
        type = pmp_py_invalid_argument(st);
        break;
    case ENOMEM:
        type = PyExc_MemoryError;
        break;
    case ESHUTDOWN:   /* the executor is closed */
    case ENOTCONN:    /* the channel's peer is not there */
    case EALREADY:    /* the channel is already bound / booted */
    case ENOTSUP:     /* CURVE without libzmq support */
    case PMP_EFORKED: /* an executor or channel inherited by a forked child */
        type = PyExc_RuntimeError;
        break;
    default:
        break;
    }
    if (type != NULL) {
        PyErr_SetObject(type, msg);
        Py_DECREF(msg);
        return NULL;
    }
    /* OSError(errno, text) picks FileNotFoundError, ChildProcessError, ...
     * as PyErr_SetFromErrnoWithFilename does. */
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "iN", errnum, msg);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

void pmp_py_sleep_without_gil(void)
{
    struct timespec pause = {0, 1000000};
    PyThreadState *ts = PyEval_SaveThread();
    nanosleep(&pause, NULL);
    PyEval_RestoreThread(ts);
}

/* ---- zero-copy holds ----------------------------------------------------------- */

struct pmp_py_hold {
    pmp_py_hold_t *next;
    pmp_py_release_t *list;
    Py_buffer view;
};

/* free_fn for zero-copy buffers.  Runs on an arbitrary thread without the
 * GIL: it only queues the hold for release. */
static void s_hold_free(void *data, void *hint)
{
    pmp_py_hold_t *hold = (pmp_py_hold_t *)hint;
    pmp_py_release_t *list = hold->list;
    (void)data;
    pthread_mutex_lock(&list->mutex);
    hold->next = list->head;
    list->head = hold;
    pthread_mutex_unlock(&list->mutex);
}

static void s_hold_release(pmp_py_hold_t *hold)
{
    PyBuffer_Release(&hold->view);
    PyMem_RawFree(hold);
}

void pmp_py_release_init(pmp_py_release_t *list)
{
    list->head = NULL;
    pthread_mutex_init(&list->mutex, NULL);
}

void pmp_py_release_drain(pmp_py_release_t *list)
{
    pthread_mutex_lock(&list->mutex);
    pmp_py_hold_t *hold = list->head;
    list->head = NULL;
    pthread_mutex_unlock(&list->mutex);
    while (hold != NULL) {
        pmp_py_hold_t *next = hold->next;
        s_hold_release(hold);
        hold = next;
    }
}

void pmp_py_release_fini(pmp_py_release_t *list)
{
    pmp_py_release_drain(list);
    pthread_mutex_destroy(&list->mutex);
}

/* ---- messages ------------------------------------------------------------------ */

/* Fills one pmp_buffer_t from a buffer-protocol object: copied below the
 * threshold (the view is kept in *small_view until the message is cleared),
 * otherwise held.  Returns 0 or -1 with an exception. */
static int s_fill_buffer(pmp_py_release_t *released, PyObject *obj, pmp_buffer_t *buf,
                         pmp_py_hold_t **hold_out, Py_buffer *small_view, int *small_used)
{
    *hold_out = NULL;
    *small_used = 0;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_ANY_CONTIGUOUS) < 0)
        return -1;
    buf->data = view.buf;
    buf->size = (size_t)view.len;
    buf->free_fn = NULL;
    buf->hint = NULL;
    if (view.len < PMP_PY_ZERO_COPY_THRESHOLD) {
        /* The frontend copies it during the call; keep the view until then. */
        *small_view = view;
        *small_used = 1;
        return 0;
    }
    pmp_py_hold_t *hold = PyMem_RawMalloc(sizeof *hold);
    if (hold == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    hold->next = NULL;
    hold->list = released;
    hold->view = view; /* the hold owns the view now */
    buf->free_fn = s_hold_free;
    buf->hint = hold;
    *hold_out = hold;
    return 0;
}

int pmp_py_message_fill(pmp_py_message_t *msg, pmp_py_release_t *released, PyObject *payload,
                        PyObject *buffers_obj)
{
    memset(msg, 0, sizeof *msg);
    Py_ssize_t first = payload != NULL ? 1 : 0;
    msg->n = first;
    if (buffers_obj != NULL) {
        msg->seq = PySequence_Fast(buffers_obj, "buffers must be a sequence");
        if (msg->seq == NULL)
            return -1;
        msg->n += PySequence_Fast_GET_SIZE(msg->seq);
    }
    if (msg->n == 0)
        return 0;
    msg->bufs = PyMem_Calloc((size_t)msg->n, sizeof *msg->bufs);
    msg->holds = PyMem_Calloc((size_t)msg->n, sizeof *msg->holds);
    msg->views = PyMem_Calloc((size_t)msg->n, sizeof *msg->views);
    msg->used = PyMem_Calloc((size_t)msg->n, sizeof *msg->used);
    if (msg->bufs == NULL || msg->holds == NULL || msg->views == NULL || msg->used == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < msg->n; i++) {
        PyObject *obj = (first && i == 0) ? payload : PySequence_Fast_GET_ITEM(msg->seq, i - first);
        if (s_fill_buffer(released, obj, &msg->bufs[i], &msg->holds[i], &msg->views[i],
                          &msg->used[i]) < 0)
            return -1;
        msg->filled = i + 1;
    }
    return 0;
}

void pmp_py_message_handed_over(pmp_py_message_t *msg)
{
    for (Py_ssize_t i = 0; i < msg->filled; i++)
        msg->holds[i] = NULL;
}

void pmp_py_message_clear(pmp_py_message_t *msg)
{
    for (Py_ssize_t i = 0; i < msg->filled; i++) {
        if (msg->used[i])
            PyBuffer_Release(&msg->views[i]);
        if (msg->holds[i] != NULL)
            s_hold_release(msg->holds[i]);
    }
    PyMem_Free(msg->bufs);
    PyMem_Free(msg->holds);
    PyMem_Free(msg->views);
    PyMem_Free(msg->used);
    Py_XDECREF(msg->seq);
    memset(msg, 0, sizeof *msg);
}

/* ---- Frame --------------------------------------------------------------------- */

typedef struct {
    PyObject ob_base;
    pmp_frame_t *frame;
} s_frame_object;

static int s_frame_getbuffer(PyObject *op, Py_buffer *view, int flags)
{
    s_frame_object *self = (s_frame_object *)op;
    if (self->frame == NULL) {
        PyErr_SetString(PyExc_ValueError, "frame is empty");
        view->obj = NULL;
        return -1;
    }
    return PyBuffer_FillInfo(view, op, pmp_frame_data(self->frame),
                             (Py_ssize_t)pmp_frame_size(self->frame), 0, flags);
}

static Py_ssize_t s_frame_length(PyObject *op)
{
    s_frame_object *self = (s_frame_object *)op;
    return self->frame != NULL ? (Py_ssize_t)pmp_frame_size(self->frame) : 0;
}

static PyObject *s_frame_repr(PyObject *op)
{
    return PyUnicode_FromFormat("<pympipool._core.Frame of %zd bytes>", s_frame_length(op));
}

static void s_frame_dealloc(PyObject *op)
{
    s_frame_object *self = (s_frame_object *)op;
    PyTypeObject *tp = Py_TYPE(op);
    pmp_frame_destroy(&self->frame);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyType_Slot s_frame_slots[] = {
    {Py_tp_doc, "One received message frame.  Supports the buffer protocol (writable,\n"
                "zero-copy): use memoryview(frame) or bytes(frame)."},
    {Py_tp_dealloc, s_frame_dealloc},
    {Py_tp_repr, s_frame_repr},
    {Py_bf_getbuffer, s_frame_getbuffer},
    {Py_sq_length, s_frame_length},
    {0, NULL},
};

static PyType_Spec s_frame_spec = {
    .name = "pympipool._core.Frame",
    .basicsize = sizeof(s_frame_object),
    .flags = Py_TPFLAGS_DEFAULT
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
             | Py_TPFLAGS_DISALLOW_INSTANTIATION
#endif
#ifdef Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_IMMUTABLETYPE
#endif
    ,
    .slots = s_frame_slots,
};

PyTypeObject *pmp_py_frame_type_new(PyObject *module)
{
    return (PyTypeObject *)PyType_FromModuleAndSpec(module, &s_frame_spec, NULL);
}

PyObject *pmp_py_frame_new(PyTypeObject *frame_type, pmp_frame_t *frame)
{
    s_frame_object *f = PyObject_New(s_frame_object, frame_type);
    if (f == NULL) {
        pmp_frame_destroy(&frame);
        return NULL;
    }
    f->frame = frame;
    return (PyObject *)f;
}
