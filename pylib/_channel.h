/*
 * _channel.h - the SocketInterface part of pympipool._core (see
 * _channel.c).  _core.c calls pmp_py_channel_add_types() from its module
 * exec slot, after the Frame type exists; what else the two files share is
 * in _pmp_py.h.
 */
#ifndef PMP_PY_CHANNEL_H
#define PMP_PY_CHANNEL_H

#include <Python.h>

/* Creates the heap type Channel from its spec and adds it to module (whose
 * state must already hold the Frame type).  Returns 0, or -1 with an
 * exception set. */
int pmp_py_channel_add_types(PyObject *module);

#endif
