/*
 * _core_values.c - pympipool._core.MapValues: the iterator that
 * Executor.map and PoolExecutor.map return, over the values of the chunks
 * a map's tasks bring back.
 *
 * Why in C: a map's results arrive as one list per task (a chunk of up to
 * chunksize values).  Handing them out through a Python generator resumed
 * per value cost about as much as everything else a map does per value,
 * and made PoolExecutor.map a third slower than Pool.map, which returns a
 * list.  itertools.chain over the lists would be as fast, but it keeps
 * every value of a chunk alive until the chunk's last one is taken, and a
 * map promises that a value the caller drops is freed at once (large
 * arrays).  So this iterator takes each value out of its list (the slot
 * becomes None) as it hands it out: the cost of a list iterator, the
 * memory behaviour of popping.
 *
 * How: it pulls the next list from a Python iterator of chunks (the
 * generator _executor._map_chunks, which waits for the tasks, raises a
 * task's exception or the timeout, and stops the feed when closed) only
 * when the current list is used up, so Python runs once per chunk.  An
 * exception from that iterator ends the iteration after it is raised, as
 * a generator's would.  close() closes the chunk iterator; dropping the
 * MapValues drops it, which closes a generator too.  One thread at a time
 * (as a generator); no state outside the object.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_core_values.h"

typedef struct {
    PyObject ob_base;
    PyObject *chunks; /* iterator of lists; NULL once it ended or raised */
    PyObject *list;   /* the chunk being handed out, or NULL */
    Py_ssize_t next;  /* its next index */
} s_values_t;

static PyObject *s_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *chunks;
    static char *kwlist[] = {"chunks", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:MapValues", kwlist, &chunks))
        return NULL;
    PyObject *it = PyObject_GetIter(chunks);
    if (it == NULL)
        return NULL;
    s_values_t *self = (s_values_t *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(it);
        return NULL;
    }
    self->chunks = it;
    return (PyObject *)self;
}

static int s_traverse(PyObject *op, visitproc visit, void *arg)
{
    s_values_t *self = (s_values_t *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->chunks);
    Py_VISIT(self->list);
    return 0;
}

static int s_clear(PyObject *op)
{
    s_values_t *self = (s_values_t *)op;
    Py_CLEAR(self->chunks);
    Py_CLEAR(self->list);
    return 0;
}

static void s_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    (void)s_clear(op);
    type->tp_free(op);
    Py_DECREF(type);
}

static PyObject *s_iternext(PyObject *op)
{
    s_values_t *self = (s_values_t *)op;
    for (;;) {
        PyObject *list = self->list;
        if (list != NULL && self->next < PyList_GET_SIZE(list)) {
            /* the list's reference becomes the caller's; None takes its slot */
            PyObject *value = PyList_GET_ITEM(list, self->next);
            PyList_SET_ITEM(list, self->next, Py_NewRef(Py_None));
            self->next++;
            return value;
        }
        Py_CLEAR(self->list);
        if (self->chunks == NULL)
            return NULL;
        PyObject *chunk = PyIter_Next(self->chunks);
        if (chunk == NULL) { /* the end, or an exception: raised once, then the end */
            Py_CLEAR(self->chunks);
            return NULL;
        }
        if (!PyList_CheckExact(chunk)) {
            PyErr_Format(PyExc_TypeError, "MapValues: a chunk must be a list, not %.100s",
                         Py_TYPE(chunk)->tp_name);
            Py_DECREF(chunk);
            return NULL;
        }
        self->list = chunk;
        self->next = 0;
    }
}

PyDoc_STRVAR(s_close_doc, "close()\n--\n\n"
                          "Stops the map: closes the iterator of chunks (the calls not yet\n"
                          "sent are cancelled) and drops the values not taken.");

static PyObject *s_close(PyObject *op, PyObject *unused)
{
    (void)unused;
    s_values_t *self = (s_values_t *)op;
    Py_CLEAR(self->list);
    PyObject *chunks = self->chunks;
    if (chunks == NULL)
        Py_RETURN_NONE;
    self->chunks = NULL;
    PyObject *r = PyObject_HasAttrString(chunks, "close")
                      ? PyObject_CallMethod(chunks, "close", NULL)
                      : Py_NewRef(Py_None);
    Py_DECREF(chunks);
    return r;
}

static PyMethodDef s_methods[] = {
    {"close", s_close, METH_NOARGS, s_close_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(s_doc, "MapValues(chunks)\n--\n\n"
                    "An iterator over the values of the lists that the iterator\n"
                    "chunks yields, each value taken out of its list (its slot\n"
                    "becomes None) as it is handed out.");

static PyType_Slot s_slots[] = {
    {Py_tp_doc, (void *)s_doc},   {Py_tp_new, s_new},         {Py_tp_dealloc, s_dealloc},
    {Py_tp_traverse, s_traverse}, {Py_tp_clear, s_clear},     {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, s_iternext}, {Py_tp_methods, s_methods}, {0, NULL},
};

PyType_Spec pmp_py_map_values_spec = {
    .name = "pympipool._core.MapValues",
    .basicsize = sizeof(s_values_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = s_slots,
};
