/*
 * _channel.h - the SocketInterface part of pympipool._core (see
 * _channel.c).  _core.c calls pmp_py_channel_add_types() from its module
 * exec slot; nothing else is shared between the two files.
 */
#ifndef PMP_PY_CHANNEL_H
#define PMP_PY_CHANNEL_H

#include <Python.h>

/* Creates the heap types Channel and ChannelFrame from their specs and adds
 * them to module.  Returns 0, or -1 with an exception set. */
int pmp_py_channel_add_types(PyObject *module);

#endif
