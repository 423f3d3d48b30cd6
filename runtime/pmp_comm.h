/*
 * pmp_comm.h - the communicator a user function receives as `comm`.
 *
 * Where mpi4py cannot be used with the runtime's MPI library (Debian's
 * mpi4py is built for Open MPI, the runtime for MPICH), a function that
 * takes a parameter named `comm` gets a _pympipool_runtime.Comm instead:
 * a CPython heap type written in C on the runtime's own MPI, with
 * mpi4py's names for the common subset (Get_rank, Get_size, rank, size,
 * Barrier/barrier, bcast, gather, scatter, allgather, reduce, allreduce,
 * send, recv, sendrecv, Split, Dup/Clone, Free, Abort, py2f, handle).
 * Objects travel as pickles (protocol 5, in band); reductions run in
 * Python on the gathered objects in rank order, like mpi4py's lowercase
 * methods.  Every wait releases the GIL and sleeps with a backoff
 * (pmp_mpiwait.h), so a rank blocked in a collective costs next to no CPU.
 *
 * The Python-visible part lives in the module that pmp_comm_module_init()
 * fills: the types Comm and Op, the reduction operators SUM, PROD, MAX,
 * MIN, LAND, LOR, BAND, BOR, LXOR, BXOR, MAXLOC, MINLOC, and ANY_SOURCE,
 * ANY_TAG, UNDEFINED.  Nothing is kept in C globals: the types are reached
 * through the module object.
 */
#ifndef PMP_COMM_H
#define PMP_COMM_H

#ifndef PY_SSIZE_T_CLEAN
#define PY_SSIZE_T_CLEAN
#endif
#include <Python.h>
#include <mpi.h>

/* Adds Comm, Op, the operator constants and ANY_SOURCE / ANY_TAG /
 * UNDEFINED to `module` (call from the module's Py_mod_exec slot, with the
 * GIL).  Returns 0, or -1 with a Python exception set. */
int pmp_comm_module_init(PyObject *module);

/* Wraps `comm` in a new Comm of `module` (which pmp_comm_module_init()
 * filled) and sets MPI_ERRORS_RETURN on it, so MPI errors become
 * RuntimeError instead of aborting the job.  With owned != 0 the wrapper
 * owns the handle: Free() and the deallocator call MPI_Comm_free.  With
 * owned == 0 (the group communicator the runtime keeps) Free() only
 * invalidates the wrapper; such a wrapper's private method _borrow()
 * returns another not-owned wrapper of the same handle, so the runtime can
 * keep one and give every task its own.  Needs the GIL.  Returns a new
 * reference, or NULL with a Python exception (and an owned handle is then
 * freed). */
PyObject *pmp_comm_wrap(PyObject *module, MPI_Comm comm, int owned);

/* A new owned Comm over the world ranks `ranks` (a sequence of distinct
 * ints, this rank among them, in the order of their ranks in the new
 * communicator), made with MPI_Comm_create_group on `parent` under tag
 * after the members met on `meet` (both duplicates of MPI_COMM_WORLD;
 * pmp_comm_group.c).  Only the members call it, each with the same ranks
 * and tag; the other ranks of the job are not involved.  Blocks until
 * every member has called it, with the GIL released and, while members
 * are missing, sleeping.  Needs the GIL.  Returns a new reference, or NULL
 * with ValueError (bad ranks or tag, checked before anything is sent) or
 * RuntimeError (MPI failed). */
PyObject *pmp_comm_create_group(PyObject *module, MPI_Comm meet, MPI_Comm parent, PyObject *ranks,
                                int tag);

#endif
