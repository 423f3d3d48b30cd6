/*
 * _pmp_wire_py.h - the wire's facts for Python: one function that puts the
 * message types, task flags and size limits of protocol/pmp_protocol.h
 * into a Python module, so that Python reads them from the C definitions
 * instead of copying them.  Compiled into the extension (pympipool._core)
 * and into the runtime (_pympipool_runtime); pylib/pympipool/_payload.py
 * takes them from whichever is there.
 */
#ifndef PMP_WIRE_PY_H
#define PMP_WIRE_PY_H

#include <Python.h>

/* Adds MSG_*, FLAG_*, PROTOCOL_VERSION and OOB_THRESHOLD to module.
 * Returns 0, or -1 with a Python exception set. */
int pmp_wire_py_add(PyObject *module);

#endif
