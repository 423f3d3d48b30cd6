/*
 * _pmp_py.h - what the two halves of pympipool._core share (see _pmp_py.c):
 * _core.c (Executor) and _channel.c (Channel) both turn frontend errors into
 * exceptions, hand Python buffers to the frontend without copying, and
 * return received frames as Frame objects.  Internal to the extension: no
 * symbol here is exported from the module (hidden visibility).
 */
#ifndef PMP_PY_H
#define PMP_PY_H

#include <Python.h>

#include <pthread.h>

#include "pmp_frame.h"    /* pmp_buffer_t, pmp_frame_t, PMP_EFORKED */
#include "pmp_protocol.h" /* PMP_OOB_THRESHOLD */

/* The state of module pympipool._core (PyModule_GetState), set up by
 * _core.c's exec slot; types created by PyType_FromModuleAndSpec reach it
 * through PyType_GetModuleState(). */
typedef struct {
    PyTypeObject *executor_type;
    PyTypeObject *frame_type;
    PyObject *invalid_argument_error; /* InvalidArgumentError(ValueError) */
    PyObject *destroyed_error;        /* DestroyedError(ValueError) */
} pmp_py_state_t;

/* The module state of an object of one of the module's types. */
static inline pmp_py_state_t *pmp_py_state_of(PyObject *obj)
{
    return (pmp_py_state_t *)PyType_GetModuleState(Py_TYPE(obj));
}

/* Buffers at least this large are passed to the frontend without copying:
 * the out-of-band buffers of a pickle (pmp_protocol.h). */
#define PMP_PY_ZERO_COPY_THRESHOLD PMP_OOB_THRESHOLD

/* ---- errors ---------------------------------------------------------------- */

/* The class of "invalid argument" errors: st's InvalidArgumentError (a
 * ValueError), or ValueError itself while the module is torn down (st NULL
 * or cleared).  Borrowed. */
PyObject *pmp_py_invalid_argument(const pmp_py_state_t *st);

/* Sets the exception for a frontend failure and returns NULL: errnum picks
 * the class (EINVAL: InvalidArgumentError, see above; ENOMEM: MemoryError; ESHUTDOWN, ENOTCONN,
 * EALREADY, ENOTSUP and PMP_EFORKED (an object inherited by a forked
 * child): RuntimeError; anything else OSError(errnum, text),
 * which selects FileNotFoundError, BrokenPipeError, ChildProcessError, ...),
 * text (or strerror(errnum) when NULL or empty) is the message, decoded as
 * UTF-8 with replacement. */
PyObject *pmp_py_raise(const pmp_py_state_t *st, int errnum, const char *text);

/* Sleeps about 1 ms with the GIL released (used to wait for a call on
 * another thread to leave the frontend).  Needs the GIL. */
void pmp_py_sleep_without_gil(void);

/* ---- zero-copy holds ----------------------------------------------------------- */

/* A Python buffer the frontend holds without copying (opaque). */
typedef struct pmp_py_hold pmp_py_hold_t;

/* Holds the frontend has finished with.  The frontend's free callback, run
 * on a ZeroMQ thread without the GIL, only pushes the hold onto this
 * mutex-protected list; pmp_py_release_drain() releases them with the GIL.
 * One list per binding object. */
typedef struct {
    pthread_mutex_t mutex;
    pmp_py_hold_t *head;
} pmp_py_release_t;

void pmp_py_release_init(pmp_py_release_t *list);
/* Releases every buffer the frontend has given back.  Needs the GIL. */
void pmp_py_release_drain(pmp_py_release_t *list);
/* Drains the list and destroys its mutex: call only once nothing can queue
 * onto it any more (the frontend object is destroyed). */
void pmp_py_release_fini(pmp_py_release_t *list);

/* ---- messages ------------------------------------------------------------------ */

/* The pmp_buffer_t array of one outgoing message: the payload (if any) and
 * every out-of-band buffer, with what must be released afterwards.  Buffers
 * below PMP_PY_ZERO_COPY_THRESHOLD keep their Py_buffer until
 * pmp_py_message_clear() (the frontend copies them during the call); larger
 * ones get a hold whose free_fn queues it on the release list. */
typedef struct {
    Py_ssize_t n;      /* entries in bufs */
    Py_ssize_t filled; /* entries set up so far (to undo on failure) */
    pmp_buffer_t *bufs;
    pmp_py_hold_t **holds; /* zero-copy holds, NULL once the frontend owns them */
    Py_buffer *views;      /* small buffers, released after the frontend copied them */
    int *used;
    PyObject *seq;
} pmp_py_message_t;

/* Fills *msg from payload (NULL: no payload frame) and buffers_obj (a
 * sequence of buffer-protocol objects; NULL: none), with holds that queue
 * onto released.  Returns 0, or -1 with an exception (TypeError "buffers
 * must be a sequence", the buffer protocol's own errors, MemoryError).
 * pmp_py_message_clear() must be called in both cases. */
int pmp_py_message_fill(pmp_py_message_t *msg, pmp_py_release_t *released, PyObject *payload,
                        PyObject *buffers_obj);
/* After the frontend took the message: it owns the zero-copy buffers now
 * and will release them through their free_fn. */
void pmp_py_message_handed_over(pmp_py_message_t *msg);
/* Releases the small views and every hold the frontend did not take. */
void pmp_py_message_clear(pmp_py_message_t *msg);

/* ---- Frame --------------------------------------------------------------------- */

/* Creates the heap type pympipool._core.Frame for module (new reference, or
 * NULL with an exception).  A Frame owns one received pmp_frame_t and
 * exports it as a writable buffer; it cannot be instantiated from Python. */
PyTypeObject *pmp_py_frame_type_new(PyObject *module);

/* A new Frame of frame_type owning frame (which may be NULL: an empty
 * frame).  Takes frame in every case: on failure (NULL with an exception)
 * it is destroyed. */
PyObject *pmp_py_frame_new(PyTypeObject *frame_type, pmp_frame_t *frame);

#endif
