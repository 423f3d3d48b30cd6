/*
 * _pmp_wire_py.h - the wire's facts for Python: one function that puts the
 * message types, task flags and size limits of protocol/pmp_protocol.h
 * into a Python module, so that Python reads them from the C definitions
 * instead of copying them, and the decoders Python needs, which are the C
 * ones (the fuzzed ones): rank_table() and decode_hello().  Compiled into
 * the extension (pympipool._core) and into the runtime
 * (_pympipool_runtime); pylib/pympipool/_payload.py takes the constants
 * from whichever is there.
 */
#ifndef PMP_WIRE_PY_H
#define PMP_WIRE_PY_H

#include <Python.h>

/* Adds MSG_*, FLAG_*, PROTOCOL_VERSION and OOB_THRESHOLD to module, and
 * the functions rank_table(table, nframes) -> tuple of each rank's number
 * of out-of-band buffers, and decode_hello(text) -> dict (the keys of
 * docs/protocol.md, numbers as int, "ranks" a list of (world_rank, pid,
 * host) tuples, empty when the hello has no ranks line); both raise
 * ValueError with the decoder's reason for malformed input.  Returns 0, or
 * -1 with a Python exception set. */
int pmp_wire_py_add(PyObject *module);

#endif
