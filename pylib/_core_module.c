/*
 * _core_module.c - the module pympipool._core itself: its state, its
 * types (Frame, Executor from _core.c, MapValues from _core_values.c,
 * Channel from _channel.c), its
 * exceptions, the constants that the Python package shares with the C
 * side (completion kinds, the local link's framing, the zero-copy
 * threshold, the destroy grace; the protocol's flags and limits come from
 * _pmp_wire_py.c), and name_thread().  Multi-phase initialisation, the
 * types kept in the module state (no static PyObject globals).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <sys/prctl.h>

#include "_channel.h"
#include "_core_executor.h"
#include "_core_values.h"
#include "_pmp_py.h"
#include "_pmp_shm_py.h"
#include "_pmp_wire_py.h"
#include "pmp_executor.h"
#include "pmp_link.h"

static pmp_py_state_t *s_get_state(PyObject *module)
{
    return (pmp_py_state_t *)PyModule_GetState(module);
}

/* ---- module -------------------------------------------------------------- */

static int s_add_int(PyObject *module, const char *name, long value)
{
    return PyModule_AddIntConstant(module, name, value);
}

static int s_module_exec(PyObject *module)
{
    pmp_py_state_t *st = s_get_state(module);
    st->frame_type = pmp_py_frame_type_new(module);
    if (st->frame_type == NULL)
        return -1;
    if (PyModule_AddType(module, st->frame_type) < 0)
        return -1;
    st->executor_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &pmp_py_executor_spec, NULL);
    if (st->executor_type == NULL)
        return -1;
    if (PyModule_AddType(module, st->executor_type) < 0)
        return -1;
    PyObject *values = PyType_FromModuleAndSpec(module, &pmp_py_map_values_spec, NULL);
    if (values == NULL)
        return -1;
    int added = PyModule_AddType(module, (PyTypeObject *)values);
    Py_DECREF(values);
    if (added < 0)
        return -1;
    st->invalid_argument_error = PyErr_NewExceptionWithDoc(
        "pympipool._core.InvalidArgumentError", "An argument the frontend refuses (a ValueError).",
        PyExc_ValueError, NULL);
    if (st->invalid_argument_error == NULL ||
        PyModule_AddObjectRef(module, "InvalidArgumentError", st->invalid_argument_error) < 0)
        return -1;
    st->destroyed_error = PyErr_NewExceptionWithDoc(
        "pympipool._core.DestroyedError",
        "The executor was destroyed: nothing can be done with it any more (a ValueError).",
        PyExc_ValueError, NULL);
    if (st->destroyed_error == NULL ||
        PyModule_AddObjectRef(module, "DestroyedError", st->destroyed_error) < 0)
        return -1;
    if (pmp_py_channel_add_types(module) < 0)
        return -1;
    if (pmp_shm_py_add(module) < 0)
        return -1;
    if (pmp_wire_py_add(module) < 0)
        return -1;
    if (s_add_int(module, "DONE_RESULT", PMP_DONE_RESULT) < 0 ||
        s_add_int(module, "DONE_ERROR", PMP_DONE_ERROR) < 0 ||
        s_add_int(module, "DONE_BROKEN", PMP_DONE_BROKEN) < 0 ||
        s_add_int(module, "EVENT_HELLO", PMP_EVENT_HELLO) < 0 ||
        s_add_int(module, "EVENT_EXIT", PMP_EVENT_EXIT) < 0 ||
        s_add_int(module, "EVENT_CLOSED", PMP_EVENT_CLOSED) < 0 ||
        s_add_int(module, "EVENT_RESTART", PMP_EVENT_RESTART) < 0 ||
        s_add_int(module, "DONE_LOST", PMP_DONE_LOST) < 0 ||
        s_add_int(module, "DONE_TIMEOUT", PMP_DONE_TIMEOUT) < 0 ||
        s_add_int(module, "LINK_VERSION", PMP_LINK_VERSION) < 0 ||
        s_add_int(module, "LINK_MORE_BIT", PMP_LINK_MORE_BIT) < 0 ||
        PyModule_AddStringConstant(module, "LINK_MAGIC", PMP_LINK_MAGIC) < 0 ||
        s_add_int(module, "ZERO_COPY_THRESHOLD", PMP_PY_ZERO_COPY_THRESHOLD) < 0 ||
        s_add_int(module, "DESTROY_GRACE_MS", PMP_DESTROY_GRACE_MS) < 0)
        return -1;
    return 0;
}

static int s_module_traverse(PyObject *module, visitproc visit, void *arg)
{
    pmp_py_state_t *st = s_get_state(module);
    Py_VISIT(st->executor_type);
    Py_VISIT(st->frame_type);
    Py_VISIT(st->invalid_argument_error);
    Py_VISIT(st->destroyed_error);
    return 0;
}

static int s_module_clear(PyObject *module)
{
    pmp_py_state_t *st = s_get_state(module);
    Py_CLEAR(st->executor_type);
    Py_CLEAR(st->frame_type);
    Py_CLEAR(st->invalid_argument_error);
    Py_CLEAR(st->destroyed_error);
    return 0;
}

static void s_module_free(void *module)
{
    (void)s_module_clear((PyObject *)module);
}

PyDoc_STRVAR(s_name_thread_doc, "name_thread(name)\n--\n\n"
                                "Name the calling OS thread (at most 15 bytes are kept), as\n"
                                "top, perf and gdb show it.");

static PyObject *s_name_thread(PyObject *module, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
    char buf[16];
    snprintf(buf, sizeof buf, "%s", name);
    prctl(PR_SET_NAME, buf, 0, 0, 0);
    Py_RETURN_NONE;
}

static PyMethodDef s_module_methods[] = {
    {"name_thread", s_name_thread, METH_O, s_name_thread_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot s_module_slots[] = {
    {Py_mod_exec, s_module_exec},
    {0, NULL},
};

static struct PyModuleDef s_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pympipool._core",
    .m_doc = "Thin binding over the pympipool C frontend (frontend/pmp_executor.h).",
    .m_size = sizeof(pmp_py_state_t),
    .m_methods = s_module_methods,
    .m_slots = s_module_slots,
    .m_traverse = s_module_traverse,
    .m_clear = s_module_clear,
    .m_free = s_module_free,
};

PyMODINIT_FUNC PyInit__core(void);

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&s_module_def);
}
