/*
 * _core_values.h - pympipool._core.MapValues (_core_values.c): the iterator
 * of Executor.map and PoolExecutor.map over the lists of values their
 * tasks bring back.  Private to the extension.
 *
 * MapValues(chunks) takes an iterable of lists (a TypeError names a chunk
 * of another type when it is reached) and hands out their values in order,
 * taking each out of its list (the slot becomes None), so the caller's
 * reference is the only one left.  An exception of chunks is raised once,
 * then the iteration ends.  close() closes chunks (when it has close()).
 * Needs the GIL, as every Python object; one thread at a time.
 */
#ifndef PMP_CORE_VALUES_H
#define PMP_CORE_VALUES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The type's spec, for the module (_core_module.c). */
extern PyType_Spec pmp_py_map_values_spec;

#endif
