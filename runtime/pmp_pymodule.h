/*
 * pmp_pymodule.h - _pympipool_runtime, the builtin module of the runtime's
 * embedded interpreter: its Buffer type over received frames, the Comm
 * type, the group's communicator.  Used by pmp_python.c only; every
 * function needs the GIL.
 */
#ifndef PMP_PYMODULE_H
#define PMP_PYMODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <mpi.h>

#include "pmp_rtmsg.h"

/* The module's init function, for PyImport_AppendInittab before the
 * interpreter starts. */
PyObject *pmp_pymodule_init(void);

/* The group's user communicator, which _group_comm() wraps (not owned). */
void pmp_pymodule_set_group_comm(PyObject *module, MPI_Comm comm);

/* The two duplicates of MPI_COMM_WORLD that _create_group() uses (not
 * owned; pmp_comm_create_group). */
void pmp_pymodule_set_world_comms(PyObject *module, MPI_Comm meet, MPI_Comm parent);

/* Wraps frame 0 of msg in a Buffer (*payload) and the other frames in a
 * list of Buffers (*buffers), taking the frames out of msg (never
 * copied).  Returns 0, or -1 with a Python exception and both NULL (msg
 * without a payload frame: ValueError). */
int pmp_pymodule_wrap_message(PyObject *module, pmp_rtmsg_t *msg, PyObject **payload,
                              PyObject **buffers);

#endif
