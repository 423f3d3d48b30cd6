/*
 * _core_executor.h - what the two files of pympipool._core.Executor share:
 * _core.c (construction, destruction, submit and the other methods, the
 * type and the module) and _core_wait.c (wait and wait_batch).  Private to
 * the extension; the object's rules are in _core.c's essay.
 */
#ifndef PMP_CORE_EXECUTOR_H
#define PMP_CORE_EXECUTOR_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/types.h>

#include "_pmp_py.h"
#include "pmp_executor.h"

enum { S_LIVE = 0, S_DESTROYING = 1, S_DESTROYED = 2 };

typedef struct {
    PyObject ob_base;
    pmp_executor_t *exe;
    int state;   /* S_LIVE, S_DESTROYING, S_DESTROYED; changed with the GIL */
    int busy;    /* calls inside the frontend with the GIL released */
    pid_t owner; /* the process that created it (for `forked` once exe is gone) */
    pmp_py_release_t released;
    PyObject *weakreflist;
} pmp_py_executor_t;

/* The Executor type's spec (_core.c), for the module (_core_module.c). */
extern PyType_Spec pmp_py_executor_spec;

/* The module state of the executor's type. */
pmp_py_state_t *pmp_py_executor_state(const pmp_py_executor_t *self);

/* Releases every buffer the frontend has given back.  Needs the GIL; does
 * nothing in a forked child. */
void pmp_py_executor_drain(pmp_py_executor_t *self);

/* 0 for a live executor; -1 with RuntimeError (a forked child) or
 * DestroyedError set. */
int pmp_py_executor_check_live(pmp_py_executor_t *self);

/* wait() (batch 0: one tuple or None) and wait_batch() (a list, [] after
 * the timeout), with their docstrings. */
PyObject *pmp_py_executor_wait(PyObject *op, PyObject *args, PyObject *kwargs, int batch);
extern const char pmp_py_wait_doc[];
extern const char pmp_py_wait_batch_doc[];

#endif
