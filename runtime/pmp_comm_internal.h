/*
 * pmp_comm_internal.h - what the three files of the communicator share:
 * pmp_comm.c (the Comm type and its methods), pmp_comm_move.c (how pickled
 * objects move between ranks: waits, broadcasts, gathers, receives, and
 * errors that reach every rank of a collective) and pmp_comm_op.c (the
 * reduction operators).  Private to the runtime; everything here needs the
 * GIL, and every function that waits releases it while it waits.
 */
#ifndef PMP_COMM_INTERNAL_H
#define PMP_COMM_INTERNAL_H

#include <stdint.h>

#include "pmp_comm.h"

/* A Comm object (the Python-visible type is made in pmp_comm.c). */
typedef struct {
    PyObject_HEAD MPI_Comm comm;
    int owned; /* Free()/dealloc call MPI_Comm_free */
    int busy;  /* calls of this wrapper currently waiting without the GIL */
} pmp_comm_t;

/* The header the root of bcast, scatter and allreduce broadcasts first:
 * {kind, length}.  OK: the data follows; EXC: the root's exception follows,
 * pickled; EXC_RAW: the root failed with an exception that cannot be
 * pickled, nothing follows. */
enum { PMP_COMM_HDR_OK = 0, PMP_COMM_HDR_EXC = 1, PMP_COMM_HDR_EXC_RAW = 2 };

/* ---- checks and waits (pmp_comm_move.c) ---------------------------------- */

/* Sets RuntimeError "<call> failed: <MPI's error string>"; returns NULL. */
PyObject *pmp_comm_mpi_error(int rc, const char *call);

/* 0 if the wrapper may be used, -1 with ValueError (MPI finalized, or the
 * communicator freed) otherwise. */
int pmp_comm_check(pmp_comm_t *self);

/* pmp_comm_check() plus this rank and the size.  0 or -1 with an
 * exception. */
int pmp_comm_rank_size(pmp_comm_t *self, int *rank, int *size);

/* 0 if root is a rank of a size-rank communicator, -1 with RuntimeError
 * otherwise.  Every rank checks before it communicates, so all agree. */
int pmp_comm_check_root(int root, int size);

/* Completes the n requests with the GIL released (pmp_mpi_waitall). */
void pmp_comm_wait(pmp_comm_t *self, int n, MPI_Request *reqs);

/* One non-blocking call already posted (its return code rc, its request
 * req): waits for it, or raises RuntimeError naming call.  0 or -1. */
int pmp_comm_finish(pmp_comm_t *self, int rc, MPI_Request *req, const char *call);

/* ---- pickles (pmp_comm_move.c) -------------------------------------------- */

/* A bytes object of n bytes for a receive whose size every rank agreed on.
 * Never NULL: running out of memory here is fatal (PMP_ASSERT). */
PyObject *pmp_comm_alloc_bytes(int64_t n);

/* pickle.dumps(obj, protocol 5): bytes, or NULL with an exception. */
PyObject *pmp_comm_dumps(PyObject *obj);

/* pickle.loads of n bytes at data (not kept): new reference or NULL. */
PyObject *pmp_comm_loads(const char *data, int64_t n);

/* ---- collectives and receives (pmp_comm_move.c) --------------------------- */

/* Broadcasts the two-int64 header hdr from root.  0 or -1 with an
 * exception. */
int pmp_comm_bcast_header(pmp_comm_t *self, int64_t hdr[2], int root);

/* On the root, with a Python exception set: broadcasts it in place of the
 * data and leaves it set.  Always -1. */
int pmp_comm_root_send_error(pmp_comm_t *self, int root);

/* On a non-root rank, after a header that is not PMP_COMM_HDR_OK: receives
 * the root's exception and raises it here (what names the collective).
 * Always -1. */
int pmp_comm_recv_error(pmp_comm_t *self, const int64_t hdr[2], int root, const char *what);

/* Broadcast of a Python object from root; obj == NULL on the root sends
 * the exception that is set.  Every rank gets a fresh copy: new reference,
 * or NULL with an exception on every rank. */
PyObject *pmp_comm_bcast(pmp_comm_t *self, PyObject *obj, int root, int rank, const char *what);

/* Gathers every rank's obj to root (root < 0: to every rank) as a new list
 * in *items (NULL on the others).  0, or -1 with an exception; *late tells
 * a failure after the exchange on a receiving rank (the others carry on). */
int pmp_comm_gather(pmp_comm_t *self, PyObject *obj, int root, int rank, int size, PyObject **items,
                    const char *what, int *late);

/* Probes (interruptible by signals) and receives one object from source
 * with tag: new reference, or NULL with an exception. */
PyObject *pmp_comm_recv(pmp_comm_t *self, int source, int tag);

/* ---- reduction operators (pmp_comm_op.c) ---------------------------------- */

/* What a reduction applies: a builtin operator's code, or a borrowed
 * callable f(a, b). */
typedef struct {
    int code;
    PyObject *callable;
} pmp_comm_opref_t;

/* Adds the type Op and the operators SUM ... MINLOC to module.  0, or -1
 * with an exception. */
int pmp_comm_op_module_init(PyObject *module);

/* Resolves an op argument: NULL/None (SUM), an Op, an operator's name
 * ("SUM", "MPI_SUM") or a callable.  0, or -1 with TypeError/ValueError. */
int pmp_comm_op_resolve(PyObject *op, pmp_comm_opref_t *out);

/* Folds items (a non-empty list, in rank order) with op: new reference,
 * or NULL with the exception op raised. */
PyObject *pmp_comm_op_fold(PyObject *items, const pmp_comm_opref_t *op);

#endif
