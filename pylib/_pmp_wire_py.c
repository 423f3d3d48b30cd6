/*
 * _pmp_wire_py.c - the wire's facts for Python (see _pmp_wire_py.h).
 *
 * Every number a Python side of the project needs from the protocol is
 * added here, from the macro that defines it, and nowhere else: the
 * caller's package and the runtime's worker both read them from their
 * native module, so a change to protocol/pmp_protocol.h reaches both.
 * The decoders wrap the C ones of pmp_protocol.c, which the frontend uses
 * and the fuzzer exercises, so Python never parses the wire by hand.
 */
#include "_pmp_wire_py.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_protocol.h"

static PyObject *s_rank_table(PyObject *module, PyObject *args)
{
    (void)module;
    Py_buffer table;
    unsigned int nframes;
    if (!PyArg_ParseTuple(args, "y*I:rank_table", &table, &nframes))
        return NULL;
    uint32_t nranks = 0, *counts = NULL;
    pmp_error_t err;
    int rc = pmp_rank_table_decode(table.buf, (size_t)table.len, nframes, &nranks, &counts, &err);
    PyBuffer_Release(&table);
    if (rc < 0)
        return errno == ENOMEM ? PyErr_NoMemory()
                               : PyErr_Format(PyExc_ValueError, "rank table: %s", err.text);
    PyObject *out = PyTuple_New((Py_ssize_t)nranks);
    for (uint32_t i = 0; out != NULL && i < nranks; i++) {
        PyObject *n = PyLong_FromUnsignedLong(counts[i]);
        if (n == NULL)
            Py_CLEAR(out);
        else
            PyTuple_SET_ITEM(out, (Py_ssize_t)i, n);
    }
    free(counts);
    return out;
}

/* d[key] = value, value's reference taken.  0, or -1. */
static int s_set(PyObject *d, const char *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItemString(d, key, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *s_decode_hello(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer text;
    if (PyObject_GetBuffer(arg, &text, PyBUF_SIMPLE) < 0)
        return NULL;
    pmp_hello_t h;
    pmp_hello_rank_t *ranks = NULL;
    size_t nranks = 0;
    pmp_error_t err;
    int rc = pmp_hello_decode(text.buf, (size_t)text.len, &h, &err);
    if (rc == 0)
        rc = pmp_hello_ranks_decode(text.buf, (size_t)text.len,
                                    h.group_size > 0 ? (size_t)h.group_size : 0, &ranks, &nranks,
                                    &err);
    PyBuffer_Release(&text);
    if (rc < 0)
        return errno == ENOMEM ? PyErr_NoMemory()
                               : PyErr_Format(PyExc_ValueError, "hello: %s", err.text);
    PyObject *d = PyDict_New();
    PyObject *list = PyList_New((Py_ssize_t)nranks);
    for (size_t i = 0; list != NULL && i < nranks; i++) {
        PyObject *r = Py_BuildValue("(iLs)", (int)ranks[i].world_rank, (long long)ranks[i].pid,
                                    ranks[i].host);
        if (r == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, r);
    }
    free(ranks);
    if (d == NULL || list == NULL || s_set(d, "group", PyLong_FromLong(h.group)) < 0 ||
        s_set(d, "ngroups", PyLong_FromLong(h.ngroups)) < 0 ||
        s_set(d, "group_size", PyLong_FromLong(h.group_size)) < 0 ||
        s_set(d, "world_size", PyLong_FromLong(h.world_size)) < 0 ||
        s_set(d, "world_rank", PyLong_FromLong(h.world_rank)) < 0 ||
        s_set(d, "pid", PyLong_FromLongLong((long long)h.pid)) < 0 ||
        s_set(d, "host", PyUnicode_DecodeUTF8(h.host, (Py_ssize_t)strlen(h.host), "replace")) < 0 ||
        s_set(d, "python",
              PyUnicode_DecodeUTF8(h.python_version, (Py_ssize_t)strlen(h.python_version),
                                   "replace")) < 0 ||
        s_set(d, "mpi",
              PyUnicode_DecodeUTF8(h.mpi_version, (Py_ssize_t)strlen(h.mpi_version), "replace")) <
            0 ||
        s_set(d, "runtime",
              PyUnicode_DecodeUTF8(h.runtime_version, (Py_ssize_t)strlen(h.runtime_version),
                                   "replace")) < 0 ||
        s_set(d, "batch", PyLong_FromLong(h.batch)) < 0 ||
        PyDict_SetItemString(d, "ranks", list) < 0) {
        Py_XDECREF(d);
        Py_XDECREF(list);
        return NULL;
    }
    Py_DECREF(list);
    return d;
}

static PyMethodDef s_functions[] = {
    {"rank_table", s_rank_table, METH_VARARGS,
     "rank_table(table, nframes) -> tuple: each rank's number of out-of-band\n"
     "buffers in a RESULT with FLAG_PER_RANK of nframes frames after the\n"
     "header (protocol/pmp_protocol.h); ValueError says what is wrong."},
    {"decode_hello", s_decode_hello, METH_O,
     "decode_hello(text) -> dict: a HELLO payload decoded by the C decoder\n"
     "(numbers as int; 'ranks': [(world_rank, pid, host), ...]); ValueError\n"
     "says what is wrong."},
    {NULL, NULL, 0, NULL},
};

int pmp_wire_py_add(PyObject *module)
{
    static const struct {
        const char *name;
        long value;
    } constants[] = {
        {"MSG_HELLO", PMP_MSG_HELLO},
        {"MSG_TASK", PMP_MSG_TASK},
        {"MSG_INIT", PMP_MSG_INIT},
        {"MSG_RESULT", PMP_MSG_RESULT},
        {"MSG_ERROR", PMP_MSG_ERROR},
        {"MSG_SHUTDOWN", PMP_MSG_SHUTDOWN},
        {"MSG_GOODBYE", PMP_MSG_GOODBYE},
        {"MSG_DEFINE", PMP_MSG_DEFINE},
        {"MSG_FORGET", PMP_MSG_FORGET},
        {"FLAG_ALL_RANKS", (long)PMP_FLAG_ALL_RANKS},
        {"FLAG_FN_KEY", (long)PMP_FLAG_FN_KEY},
        {"FLAG_CHUNK", (long)PMP_FLAG_CHUNK},
        {"FLAG_MAP", (long)PMP_FLAG_MAP},
        {"FLAG_STARMAP", (long)PMP_FLAG_STARMAP},
        {"FLAG_CALL_COMM", (long)PMP_FLAG_CALL_COMM},
        {"FLAG_PER_RANK", (long)PMP_FLAG_PER_RANK},
        {"PROTOCOL_VERSION", PMP_PROTOCOL_VERSION},
        {"OOB_THRESHOLD", PMP_OOB_THRESHOLD},
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0)
            return -1;
    return PyModule_AddFunctions(module, s_functions);
}
