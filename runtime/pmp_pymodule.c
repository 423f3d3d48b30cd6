/*
 * pmp_pymodule.c - _pympipool_runtime, the builtin module the runtime
 * gives its embedded interpreter (see pmp_pymodule.h; pmp_python.c starts
 * the interpreter and calls the worker).
 *
 * Multi-phase initialisation, its types in module state (no static
 * PyObject globals).  Its Buffer type owns either a zmq_msg_t (moved out of
 * the received message: the leader's frames are never copied) or malloc'ed
 * memory (the frames the other ranks received by broadcast), and exports it
 * as a WRITABLE buffer: pickle.loads(..., buffers=) then builds writable
 * numpy arrays on top of it, as a local caller would get.  The module also
 * carries the Comm type (pmp_comm.c), the shared-memory and wire helpers of
 * the extension (pylib/_pmp_shm_py.c, pylib/_pmp_wire_py.c), and the
 * group's user communicator, which _group_comm() wraps on demand, so only
 * functions that take `comm` pay for it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <zmq.h>

#include "_pmp_shm_py.h"
#include "_pmp_wire_py.h"
#include "pmp_comm.h"
#include "pmp_pymodule.h"

/* ---- _pympipool_runtime.Buffer --------------------------------------- */

typedef struct {
    PyObject *buffer_type;
    MPI_Comm group_comm;   /* for _group_comm(); MPI_COMM_NULL until set */
    MPI_Comm meet, parent; /* for _create_group(); MPI_COMM_NULL until set */
} s_module_state;

enum { S_KIND_NONE = 0, S_KIND_ZMQ = 1, S_KIND_HEAP = 2 };

typedef struct {
    PyObject_HEAD int kind;
    zmq_msg_t msg;
    void *heap;
    void *data;
    Py_ssize_t size;
} s_buffer_t;

static int s_buffer_getbuffer(PyObject *obj, Py_buffer *view, int flags)
{
    s_buffer_t *self = (s_buffer_t *)obj;
    return PyBuffer_FillInfo(view, obj, self->data, self->size, 0, flags);
}

static void s_buffer_dealloc(PyObject *obj)
{
    s_buffer_t *self = (s_buffer_t *)obj;
    PyTypeObject *tp = Py_TYPE(obj);
    if (self->kind == S_KIND_ZMQ)
        zmq_msg_close(&self->msg);
    free(self->heap);
    tp->tp_free(obj);
    Py_DECREF(tp);
}

static Py_ssize_t s_buffer_length(PyObject *obj)
{
    return ((s_buffer_t *)obj)->size;
}

static PyObject *s_buffer_repr(PyObject *obj)
{
    s_buffer_t *self = (s_buffer_t *)obj;
    return PyUnicode_FromFormat("<_pympipool_runtime.Buffer %zd bytes (%s)>", self->size,
                                self->kind == S_KIND_ZMQ ? "zmq" : "heap");
}

/* Buffer(n): n zero bytes on the heap (for tests and for Python callers). */
static PyObject *s_buffer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Py_ssize_t n = 0;
    static char *kwlist[] = {"size", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n:Buffer", kwlist, &n))
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "Buffer size must not be negative");
        return NULL;
    }
    s_buffer_t *self = (s_buffer_t *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->heap = calloc(1, n ? (size_t)n : 1);
    if (!self->heap) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->kind = S_KIND_HEAP;
    self->data = self->heap;
    self->size = n;
    return (PyObject *)self;
}

static PyType_Slot s_buffer_slots[] = {
    {Py_tp_doc, "A writable block of bytes received by the runtime: a ZeroMQ message or "
                "malloc'ed memory, exported through the buffer protocol without a copy."},
    {Py_tp_new, s_buffer_new},
    {Py_tp_dealloc, s_buffer_dealloc},
    {Py_tp_repr, s_buffer_repr},
    {Py_mp_length, s_buffer_length},
    {Py_bf_getbuffer, s_buffer_getbuffer},
    {0, NULL},
};

static PyType_Spec s_buffer_spec = {
    .name = "_pympipool_runtime.Buffer",
    .basicsize = sizeof(s_buffer_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = s_buffer_slots,
};

static int s_module_exec(PyObject *module)
{
    s_module_state *state = PyModule_GetState(module);
    state->group_comm = MPI_COMM_NULL;
    state->meet = state->parent = MPI_COMM_NULL;
    state->buffer_type = PyType_FromModuleAndSpec(module, &s_buffer_spec, NULL);
    if (!state->buffer_type)
        return -1;
    if (PyModule_AddObjectRef(module, "Buffer", state->buffer_type) < 0)
        return -1;
    if (pmp_comm_module_init(module) < 0)
        return -1;
    if (pmp_shm_py_add(module) < 0) /* the shared-memory path (pylib/_pmp_shm_py.c) */
        return -1;
    if (pmp_wire_py_add(module) < 0) /* flags and limits (pylib/_pmp_wire_py.c) */
        return -1;
    return 0;
}

/* _group_comm(): a new not-owned Comm on the group's user communicator;
 * the worker keeps one and hands every call its own _borrow(). */
static PyObject *s_group_comm(PyObject *module, PyObject *unused)
{
    (void)unused;
    s_module_state *state = PyModule_GetState(module);
    if (state->group_comm == MPI_COMM_NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the runtime has no group communicator");
        return NULL;
    }
    return pmp_comm_wrap(module, state->group_comm, 0);
}

/* _create_group(ranks, tag): a call's communicator over those world
 * ranks (pmp_comm_create_group), owned: the worker frees it. */
static PyObject *s_create_group(PyObject *module, PyObject *args)
{
    PyObject *ranks;
    int tag;
    if (!PyArg_ParseTuple(args, "Oi:_create_group", &ranks, &tag))
        return NULL;
    s_module_state *state = PyModule_GetState(module);
    return pmp_comm_create_group(module, state->meet, state->parent, ranks, tag);
}

static PyMethodDef s_module_methods[] = {
    {"_create_group", s_create_group, METH_VARARGS,
     "_create_group(ranks, tag): a new Comm over these world ranks (MPI_Comm_create_group); "
     "only they call it."},
    {"_group_comm", s_group_comm, METH_NOARGS,
     "The group's communicator as a Comm that does not own its handle."},
    {NULL, NULL, 0, NULL},
};

static int s_module_traverse(PyObject *module, visitproc visit, void *arg)
{
    s_module_state *state = PyModule_GetState(module);
    Py_VISIT(state->buffer_type);
    return 0;
}

static int s_module_clear(PyObject *module)
{
    s_module_state *state = PyModule_GetState(module);
    Py_CLEAR(state->buffer_type);
    return 0;
}

static void s_module_free(void *module)
{
    s_module_clear((PyObject *)module);
}

static PyModuleDef_Slot s_module_slots[] = {
    {Py_mod_exec, s_module_exec},
    {0, NULL},
};

static struct PyModuleDef s_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_pympipool_runtime",
    .m_doc = "Types the pympipool runtime gives its embedded interpreter.",
    .m_size = sizeof(s_module_state),
    .m_methods = s_module_methods,
    .m_slots = s_module_slots,
    .m_traverse = s_module_traverse,
    .m_clear = s_module_clear,
    .m_free = s_module_free,
};

PyObject *pmp_pymodule_init(void)
{
    return PyModuleDef_Init(&s_module_def);
}

/* Wraps frame i of msg in a Buffer, taking ownership.  New reference or
 * NULL with a Python exception. */
static PyObject *s_wrap_frame(PyObject *module, pmp_rtmsg_t *msg, uint32_t i)
{
    s_module_state *state = PyModule_GetState(module);
    PyTypeObject *type = (PyTypeObject *)state->buffer_type;
    s_buffer_t *buf = (s_buffer_t *)type->tp_alloc(type, 0);
    if (!buf)
        return NULL;
    if (msg->zmsgs) {
        zmq_msg_init(&buf->msg);
        zmq_msg_move(&buf->msg, &msg->zmsgs[i]);
        buf->kind = S_KIND_ZMQ;
        buf->data = zmq_msg_data(&buf->msg);
        buf->size = (Py_ssize_t)zmq_msg_size(&buf->msg);
    } else {
        buf->kind = S_KIND_HEAP;
        buf->heap = msg->heap[i];
        msg->heap[i] = NULL;
        buf->data = buf->heap;
        buf->size = (Py_ssize_t)msg->size[i];
    }
    msg->data[i] = NULL;
    return (PyObject *)buf;
}

int pmp_pymodule_wrap_message(PyObject *module, pmp_rtmsg_t *msg, PyObject **payload,
                              PyObject **buffers)
{
    *payload = NULL;
    *buffers = NULL;
    if (msg->nframes < 1) {
        PyErr_SetString(PyExc_ValueError, "message without a payload frame");
        return -1;
    }
    *payload = s_wrap_frame(module, msg, 0);
    *buffers = PyList_New((Py_ssize_t)msg->nframes - 1);
    if (!*payload || !*buffers)
        goto fail;
    for (uint32_t i = 1; i < msg->nframes; i++) {
        PyObject *b = s_wrap_frame(module, msg, i);
        if (!b)
            goto fail;
        PyList_SET_ITEM(*buffers, (Py_ssize_t)i - 1, b);
    }
    return 0;
fail:
    Py_CLEAR(*payload);
    Py_CLEAR(*buffers);
    return -1;
}

void pmp_pymodule_set_world_comms(PyObject *module, MPI_Comm meet, MPI_Comm parent)
{
    s_module_state *state = PyModule_GetState(module);
    state->meet = meet;
    state->parent = parent;
}

void pmp_pymodule_set_group_comm(PyObject *module, MPI_Comm comm)
{
    ((s_module_state *)PyModule_GetState(module))->group_comm = comm;
}
