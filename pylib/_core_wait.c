/*
 * _core_wait.c - the completions of pympipool._core.Executor reaching
 * Python: wait() and wait_batch() (part of the Executor type of _core.c;
 * _core_executor.h has what the two files share).
 *
 * How a completion crosses over: the dispatcher thread calls wait_batch(),
 * which blocks in pmp_executor_wait_many() with the GIL released, in
 * slices of at most S_WAIT_SLICE_MS so that PyErr_CheckSignals() runs
 * between them (Ctrl-C works), and takes the first completion with those
 * already queued behind it (at most S_WAIT_BATCH) under one lock.  Each becomes a tuple
 * (kind, task_id, flags, frames, text, status) whose frames are Frame
 * objects over the received ZeroMQ messages, never copied.  The buffers
 * the frontend gave back are released (pmp_py_executor_drain) before the
 * caller sees a result, so that nothing of ours still refers to a call's
 * arguments once its future is done.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include "_core_executor.h"
#include "_pmp_py.h"

/* Longest time wait() stays in C without checking for signals. */
#define S_WAIT_SLICE_MS 100

/* Turns a completion into (kind, task_id, flags, frames, text, status);
 * consumes c. */
static PyObject *s_completion_tuple(pmp_py_executor_t *self, pmp_completion_t *c)
{
    pmp_py_state_t *st = (pmp_py_state_t *)PyType_GetModuleState(Py_TYPE(self));
    PyObject *frames = NULL, *text = NULL, *result = NULL;
    if (st == NULL)
        goto done;
    size_t n = pmp_completion_nframes(c);
    frames = PyList_New((Py_ssize_t)n);
    if (frames == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        PyObject *f = pmp_py_frame_new(st->frame_type, pmp_completion_take_frame(c, i));
        if (f == NULL)
            goto done;
        PyList_SET_ITEM(frames, (Py_ssize_t)i, f);
    }
    const char *t = pmp_completion_text(c);
    text =
        PyUnicode_DecodeUTF8(t != NULL ? t : "", t != NULL ? (Py_ssize_t)strlen(t) : 0, "replace");
    if (text == NULL)
        goto done;
    result = Py_BuildValue(
        "(iKIOOi)", pmp_completion_kind(c), (unsigned long long)pmp_completion_task_id(c),
        (unsigned int)pmp_completion_flags(c), frames, text, pmp_completion_status(c));
done:
    Py_XDECREF(frames);
    Py_XDECREF(text);
    pmp_completion_destroy(&c);
    return result;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char pmp_py_wait_doc[] =
    PyDoc_STR("wait($self, timeout=None)\n--\n\n"
              "Wait for the next completion: None after timeout seconds, otherwise\n"
              "(kind, task_id, flags, frames, text, status).  timeout None waits\n"
              "forever.  The GIL is released while waiting; signals are checked at\n"
              "least every 100 ms.  Raises RuntimeError once the CLOSED completion has\n"
              "been returned.");

/* At most this many completions are taken per wait_batch(). */
#define S_WAIT_BATCH 64

/* The completions of one batch as a list of tuples; every completion is
 * consumed, whatever happens. */
static PyObject *s_completion_list(pmp_py_executor_t *self, pmp_completion_t **batch, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; i < n; i++) {
        PyObject *t = list != NULL ? s_completion_tuple(self, batch[i]) : NULL;
        if (t == NULL) {
            if (list == NULL)
                pmp_completion_destroy(&batch[i]);
            Py_CLEAR(list);
            continue;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

/* wait() (batch 0: one tuple or None) and wait_batch() (a list, empty
 * after the timeout): blocks in slices with the GIL released, so that
 * signals are handled; after the first completion takes, still without
 * the GIL, those already queued (at most S_WAIT_BATCH). */
PyObject *pmp_py_executor_wait(PyObject *op, PyObject *args, PyObject *kwargs, int batch)
{
    static char *kwlist[] = {"timeout", NULL};
    pmp_py_executor_t *self = (pmp_py_executor_t *)op;
    PyObject *timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, batch ? "|O:wait_batch" : "|O:wait", kwlist,
                                     &timeout_obj))
        return NULL;
    double deadline = 0.0;
    int forever = timeout_obj == Py_None;
    if (!forever) {
        double timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(timeout >= 0.0)) {
            PyErr_SetString(pmp_py_invalid_argument(pmp_py_executor_state(self)),
                            "timeout must be a non-negative number or None");
            return NULL;
        }
        deadline = s_now() + timeout;
    }
    size_t limit = batch ? S_WAIT_BATCH : 1;
    for (;;) {
        pmp_py_executor_drain(self);
        if (pmp_py_executor_check_live(self) < 0)
            return NULL;
        int slice = S_WAIT_SLICE_MS;
        if (!forever) {
            double left = deadline - s_now();
            if (left <= 0.0)
                slice = 0;
            else if (left * 1000.0 < slice)
                slice = (int)(left * 1000.0) + 1;
        }
        pmp_completion_t *got[S_WAIT_BATCH];
        size_t n = 0;
        int errnum;
        self->busy++;
        PyThreadState *ts = PyEval_SaveThread();
        n = pmp_executor_wait_many(self->exe, got, limit, slice);
        errnum = errno;
        PyEval_RestoreThread(ts);
        self->busy--;
        if (n > 0) {
            /* The frontend released these tasks' buffers before it queued the
             * completions: let them go before the caller sees the results. */
            pmp_py_executor_drain(self);
            return batch ? s_completion_list(self, got, n) : s_completion_tuple(self, got[0]);
        }
        if (errnum != EAGAIN && errnum != ETIMEDOUT && errnum != EINTR) {
            if (errnum == ESHUTDOWN)
                return pmp_py_raise(pmp_py_executor_state(self), ESHUTDOWN,
                                    "the executor is closed: no completion follows");
            return pmp_py_raise(pmp_py_executor_state(self), errnum, NULL);
        }
        if (PyErr_CheckSignals() < 0)
            return NULL;
        if (!forever && (slice == 0 || s_now() >= deadline)) {
            if (batch)
                return PyList_New(0);
            Py_RETURN_NONE;
        }
    }
}

const char pmp_py_wait_batch_doc[] =
    PyDoc_STR("wait_batch($self, timeout=None)\n--\n\n"
              "As wait(), but returns a list: the next completion and those queued\n"
              "behind it (at most 64), or [] after timeout seconds.");
