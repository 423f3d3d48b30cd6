/*
 * _pmp_shm_py.h - the Python face of the shared-memory path (see
 * _pmp_shm_py.c), one source compiled into both Python modules that move
 * buffers: pympipool._core in the caller and _pympipool_runtime on every
 * rank.  Internal: nothing here is exported from either module's library.
 */
#ifndef PMP_SHM_PY_H
#define PMP_SHM_PY_H

#include <Python.h>

/* Adds to module: the functions shm_table, shm_refs, shm_count, shm_add,
 * shm_write, the type ShmView and the constants FLAG_SHM, SHM_DATA_OFFSET,
 * SHM_SERIAL_OFFSET, SHM_MAGIC.  Call from the module's exec slot, with the
 * GIL.  0, or -1 with an exception. */
int pmp_shm_py_add(PyObject *module);

#endif
