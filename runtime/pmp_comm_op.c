/*
 * pmp_comm_op.c - the reduction operators of the communicator: the type
 * _pympipool_runtime.Op, its twelve instances (mpi4py's names SUM ...
 * MINLOC) and the fold that reduce() and allreduce() apply to the gathered
 * objects (see pmp_comm_internal.h).
 *
 * Reductions are mpi4py's lowercase ones: they run in Python on whole
 * objects, in rank order, so SUM is a + b (lists concatenate, numpy arrays
 * add element-wise), MAX keeps the first of equals, and MAXLOC / MINLOC
 * take (value, index) pairs with ties going to the smaller index.  An Op
 * is callable (op(a, b)) and pickles by reference, so a task can pass it
 * around; an op argument may also be an operator's name or any callable
 * f(a, b).
 */
#include <string.h>

#include "pmp_comm_internal.h"

typedef enum {
    S_SUM,
    S_PROD,
    S_MAX,
    S_MIN,
    S_LAND,
    S_LOR,
    S_BAND,
    S_BOR,
    S_LXOR,
    S_BXOR,
    S_MAXLOC,
    S_MINLOC,
    S_NOPS
} s_opcode_t;

static const char *const s_op_names[S_NOPS] = {"SUM",  "PROD", "MAX",  "MIN",  "LAND",   "LOR",
                                               "BAND", "BOR",  "LXOR", "BXOR", "MAXLOC", "MINLOC"};

typedef struct {
    PyObject_HEAD int code;
} s_op_t;

/* MAXLOC / MINLOC on (value, index) pairs: the better value, ties go to
 * the smaller index (mpi4py's rule). */
static PyObject *s_op_loc(PyObject *a, PyObject *b, int better)
{
    PyObject *pa = PySequence_Tuple(a);
    PyObject *pb = pa ? PySequence_Tuple(b) : NULL;
    PyObject *result = NULL;
    if (!pb)
        goto done;
    if (PyTuple_GET_SIZE(pa) != 2 || PyTuple_GET_SIZE(pb) != 2) {
        PyErr_SetString(PyExc_TypeError, "MAXLOC and MINLOC need (value, index) pairs");
        goto done;
    }
    PyObject *u = PyTuple_GET_ITEM(pa, 0), *i = PyTuple_GET_ITEM(pa, 1);
    PyObject *v = PyTuple_GET_ITEM(pb, 0), *j = PyTuple_GET_ITEM(pb, 1);
    int c = PyObject_RichCompareBool(u, v, better);
    if (c < 0)
        goto done;
    if (c) {
        result = Py_NewRef(pa);
        goto done;
    }
    c = PyObject_RichCompareBool(v, u, better);
    if (c < 0)
        goto done;
    if (c) {
        result = Py_NewRef(pb);
        goto done;
    }
    c = PyObject_RichCompareBool(j, i, Py_LT);
    if (c >= 0)
        result = Py_NewRef(c ? pb : pa);
done:
    Py_XDECREF(pa);
    Py_XDECREF(pb);
    return result;
}

/* a OP b with Python semantics, as mpi4py's lowercase reductions.  New
 * reference or NULL with an exception. */
static PyObject *s_op_apply(int code, PyObject *a, PyObject *b)
{
    int c;
    switch (code) {
    case S_SUM:
        return PyNumber_Add(a, b);
    case S_PROD:
        return PyNumber_Multiply(a, b);
    case S_BAND:
        return PyNumber_And(a, b);
    case S_BOR:
        return PyNumber_Or(a, b);
    case S_BXOR:
        return PyNumber_Xor(a, b);
    case S_MAX: /* b if b > a else a */
    case S_MIN: /* b if b < a else a */
        c = PyObject_RichCompareBool(b, a, code == S_MAX ? Py_GT : Py_LT);
        return c < 0 ? NULL : Py_NewRef(c ? b : a);
    case S_LAND: /* a and b */
        c = PyObject_IsTrue(a);
        return c < 0 ? NULL : Py_NewRef(c ? b : a);
    case S_LOR: /* a or b */
        c = PyObject_IsTrue(a);
        return c < 0 ? NULL : Py_NewRef(c ? a : b);
    case S_LXOR: { /* (a or b) and not (a and b) */
        int ta = PyObject_IsTrue(a);
        if (ta < 0)
            return NULL;
        PyObject *either = ta ? a : b;
        c = PyObject_IsTrue(either);
        if (c < 0)
            return NULL;
        if (!c)
            return Py_NewRef(either);
        PyObject *both = ta ? b : a;
        c = PyObject_IsTrue(both);
        return c < 0 ? NULL : PyBool_FromLong(!c);
    }
    case S_MAXLOC:
        return s_op_loc(a, b, Py_GT);
    case S_MINLOC:
        return s_op_loc(a, b, Py_LT);
    default:
        PyErr_SetString(PyExc_SystemError, "unknown reduction operator");
        return NULL;
    }
}

static PyObject *s_op_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *a, *b;
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Op() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO:Op", &a, &b))
        return NULL;
    return s_op_apply(((s_op_t *)self)->code, a, b);
}

static PyObject *s_op_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<_pympipool_runtime.Op %s>", s_op_names[((s_op_t *)self)->code]);
}

/* Pickled by reference: _pympipool_runtime.SUM etc. */
static PyObject *s_op_reduce(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(s_op_names[((s_op_t *)self)->code]);
}

static PyObject *s_op_get_name(PyObject *self, void *closure)
{
    return PyUnicode_FromString(s_op_names[((s_op_t *)self)->code]);
}

static void s_op_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef s_op_methods[] = {
    {"__reduce__", s_op_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef s_op_getset[] = {
    {"name", s_op_get_name, NULL, "The operator's name, e.g. 'SUM'.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot s_op_slots[] = {
    {Py_tp_doc, "A reduction operator (mpi4py's names); op(a, b) applies it."},
    {Py_tp_call, s_op_call},
    {Py_tp_repr, s_op_repr},
    {Py_tp_methods, s_op_methods},
    {Py_tp_getset, s_op_getset},
    {Py_tp_dealloc, s_op_dealloc},
    {0, NULL},
};

static PyType_Spec s_op_spec = {
    .name = "_pympipool_runtime.Op",
    .basicsize = sizeof(s_op_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = s_op_slots,
};
/* Resolves an op argument: NULL/None (SUM), an Op, an operator name such
 * as "SUM", or a callable f(a, b).  0 or -1 with TypeError/ValueError. */
int pmp_comm_op_resolve(PyObject *op, pmp_comm_opref_t *out)
{
    out->code = S_SUM;
    out->callable = NULL;
    if (!op || op == Py_None)
        return 0;
    if (PyType_GetSlot(Py_TYPE(op), Py_tp_call) == (void *)s_op_call) {
        out->code = ((s_op_t *)op)->code;
        return 0;
    }
    if (PyUnicode_Check(op)) {
        const char *name = PyUnicode_AsUTF8(op);
        if (!name)
            return -1;
        if (strncmp(name, "MPI_", 4) == 0)
            name += 4;
        for (int i = 0; i < S_NOPS; i++) {
            if (strcmp(name, s_op_names[i]) == 0) {
                out->code = i;
                return 0;
            }
        }
        PyErr_Format(PyExc_ValueError,
                     "unknown reduction operator %R: use SUM, PROD, MAX, MIN, LAND, LOR, BAND, "
                     "BOR, LXOR, BXOR, MAXLOC or MINLOC, or a callable f(a, b)",
                     op);
        return -1;
    }
    if (PyCallable_Check(op)) {
        out->callable = op;
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "op must be a reduction operator (SUM, PROD, ..., or its name) or a callable "
                 "f(a, b), not %.100s",
                 Py_TYPE(op)->tp_name);
    return -1;
}

static PyObject *s_opref_apply(const pmp_comm_opref_t *op, PyObject *a, PyObject *b)
{
    if (op->callable)
        return PyObject_CallFunctionObjArgs(op->callable, a, b, NULL);
    return s_op_apply(op->code, a, b);
}

/* Folds items (a list, rank order) with op: new reference or NULL. */
PyObject *pmp_comm_op_fold(PyObject *items, const pmp_comm_opref_t *op)
{
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *acc = Py_NewRef(PyList_GET_ITEM(items, 0));
    for (Py_ssize_t i = 1; i < n && acc; i++) {
        PyObject *next = s_opref_apply(op, acc, PyList_GET_ITEM(items, i));
        Py_DECREF(acc);
        acc = next;
    }
    return acc;
}

int pmp_comm_op_module_init(PyObject *module)
{
    PyObject *op_type = PyType_FromModuleAndSpec(module, &s_op_spec, NULL);
    if (!op_type)
        return -1;
    int rc = PyModule_AddObjectRef(module, "Op", op_type);
    for (int i = 0; i < S_NOPS && rc == 0; i++) {
        s_op_t *op = (s_op_t *)((PyTypeObject *)op_type)->tp_alloc((PyTypeObject *)op_type, 0);
        if (!op) {
            rc = -1;
            break;
        }
        op->code = i;
        rc = PyModule_AddObjectRef(module, s_op_names[i], (PyObject *)op);
        Py_DECREF(op);
    }
    Py_DECREF(op_type);
    return rc < 0 ? -1 : 0;
}
