/*
 * pmp_comm_group.c - per-call communicators: the `comm` of a call that
 * runs on ranks of several groups (FlexExecutor), made by the call's own
 * ranks while the other ranks of the job keep working.
 *
 * Place in the design.  A FlexExecutor job is N groups of one rank; the
 * caller picks the free ranks of each call and sends every one of them
 * the call (a TASK with PMP_FLAG_CALL_COMM naming the members and a tag,
 * docs/protocol.md).  Each member calls _pympipool_runtime._create_group
 * (the worker, runtime/pmp_worker.py), which lands here:
 * MPI_Comm_create_group, which only the members call, unlike
 * MPI_Comm_create or MPI_Comm_split, collective over the whole parent.
 * The result is an owned Comm (pmp_comm.h); the worker frees it when the
 * call returns, and wraps its handle for mpi4py where `comm` is mpi4py's,
 * so there is one way to make it whatever the build.
 *
 * Waiting politely.  The members start the call at about the same time,
 * but one may be late (a large pickle to read, a busy host), and
 * MPI_Comm_create_group has no non-blocking form: MPICH spins in it.  So
 * the members meet first with non-blocking point-to-point messages that
 * pmp_mpi_waitall() waits for with its sleeping backoff (the first member
 * hears from every other, then answers each); the blocking call after it
 * only waits for stragglers.  Both happen with the GIL released.
 *
 * Communicators.  Neither step touches MPI_COMM_WORLD: the runtime makes
 * two duplicates of it at start-up (pmp_runtime.c), `meet` for the
 * messages above and `parent` for MPI_Comm_create_group, so that nothing
 * else in the job (start-up, user code with mpi4py's COMM_WORLD) can match
 * their messages.  The tag keeps concurrent calls apart: two calls with
 * different tags never match each other's messages, even when they share
 * no member and run at the same moment; the caller gives each call a tag
 * no other call uses while it is being made.
 */
#include <stdlib.h>

#include "pmp_comm_internal.h"
#include "pmp_mpiwait.h"

/* The members as C ints, checked: a non-empty sequence of distinct world
 * ranks in range, this rank among them.  Returns a PyMem array (caller
 * frees) and stores the count and this rank's index, or NULL with an
 * exception. */
static int *s_members(PyObject *ranks, int wsize, int wrank, int *n, int *mine)
{
    PyObject *seq = PySequence_Fast(ranks, "_create_group: ranks must be a sequence of ints");
    if (!seq)
        return NULL;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    int *out = len > 0 && len <= wsize ? PyMem_Calloc((size_t)len, sizeof *out) : NULL;
    char *seen = out ? PyMem_Calloc((size_t)wsize, 1) : NULL;
    *mine = -1;
    if (!out || !seen) {
        if (len > 0 && len <= wsize)
            PyErr_NoMemory();
        else
            PyErr_Format(PyExc_ValueError, "_create_group: %zd ranks; 1 to %d are possible", len,
                         wsize);
        goto fail;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        long r = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (r == -1 && PyErr_Occurred())
            goto fail;
        if (r < 0 || r >= wsize || seen[r]) {
            PyErr_Format(PyExc_ValueError,
                         "_create_group: rank %ld is %s (the job has ranks 0 to %d)", r,
                         r < 0 || r >= wsize ? "out of range" : "listed twice", wsize - 1);
            goto fail;
        }
        seen[r] = 1;
        out[i] = (int)r;
        if (r == wrank)
            *mine = (int)i;
    }
    if (*mine < 0) {
        PyErr_Format(PyExc_ValueError, "_create_group: this rank (%d) is not among the ranks",
                     wrank);
        goto fail;
    }
    *n = (int)len;
    PyMem_Free(seen);
    Py_DECREF(seq);
    return out;
fail:
    PyMem_Free(seen);
    PyMem_Free(out);
    Py_DECREF(seq);
    return NULL;
}

/* pmp_mpi_waitall with the GIL released. */
static void s_wait(int n, MPI_Request *reqs)
{
    PyThreadState *ts = PyEval_SaveThread();
    pmp_mpi_waitall(n, reqs);
    PyEval_RestoreThread(ts);
}

/* The members meet: the first receives a word from every other, then
 * sends one to each.  Waits with the GIL released.  0 or -1 with an
 * exception. */
static int s_meet(MPI_Comm meet, const int *members, int n, int mine, int tag)
{
    MPI_Request *reqs = PyMem_Calloc((size_t)(2 * n), sizeof *reqs);
    int *words = PyMem_Calloc((size_t)(2 * n), sizeof *words);
    if (!reqs || !words) {
        PyMem_Free(reqs);
        PyMem_Free(words);
        PyErr_NoMemory();
        return -1;
    }
    int rc = MPI_SUCCESS, nreq = 0;
    const char *call = "MPI_Irecv";
    if (mine == 0) {
        for (int i = 1; i < n && rc == MPI_SUCCESS; i++)
            rc = MPI_Irecv(&words[i], 1, MPI_INT, members[i], tag, meet, &reqs[nreq++]);
        if (rc == MPI_SUCCESS) {
            s_wait(nreq, reqs);
            nreq = 0;
            call = "MPI_Isend";
            for (int i = 1; i < n && rc == MPI_SUCCESS; i++)
                rc = MPI_Isend(&words[0], 1, MPI_INT, members[i], tag, meet, &reqs[nreq++]);
        }
    } else {
        rc = MPI_Isend(&words[0], 1, MPI_INT, members[0], tag, meet, &reqs[nreq++]);
        if (rc == MPI_SUCCESS)
            rc = MPI_Irecv(&words[1], 1, MPI_INT, members[0], tag, meet, &reqs[nreq++]);
    }
    if (rc != MPI_SUCCESS)
        nreq--; /* that request was not made */
    s_wait(nreq, reqs);
    PyMem_Free(reqs);
    PyMem_Free(words);
    if (rc != MPI_SUCCESS) {
        pmp_comm_mpi_error(rc, call);
        return -1;
    }
    return 0;
}

PyObject *pmp_comm_create_group(PyObject *module, MPI_Comm meet, MPI_Comm parent, PyObject *ranks,
                                int tag)
{
    if (meet == MPI_COMM_NULL || parent == MPI_COMM_NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_create_group: the runtime has no world communicator");
        return NULL;
    }
    int wrank = 0, wsize = 1, flag = 0, *ub = NULL;
    MPI_Comm_rank(parent, &wrank);
    MPI_Comm_size(parent, &wsize);
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &flag);
    int tag_ub = flag && ub ? *ub : 32767;
    if (tag < 0 || tag > tag_ub)
        return PyErr_Format(PyExc_ValueError, "_create_group: tag %d is not in 0..%d", tag, tag_ub);
    int n = 0, mine = -1;
    int *members = s_members(ranks, wsize, wrank, &n, &mine);
    if (!members)
        return NULL;
    MPI_Group world = MPI_GROUP_NULL, sub = MPI_GROUP_NULL;
    MPI_Comm comm = MPI_COMM_NULL;
    int rc = MPI_SUCCESS;
    const char *call = "MPI_Comm_group";
    if (n > 1 && s_meet(meet, members, n, mine, tag) < 0)
        goto done;
    rc = MPI_Comm_group(parent, &world);
    if (rc == MPI_SUCCESS) {
        call = "MPI_Group_incl";
        rc = MPI_Group_incl(world, n, members, &sub);
    }
    if (rc == MPI_SUCCESS) {
        call = "MPI_Comm_create_group";
        PyThreadState *ts = PyEval_SaveThread();
        rc = MPI_Comm_create_group(parent, sub, tag, &comm);
        PyEval_RestoreThread(ts);
    }
    if (rc != MPI_SUCCESS)
        pmp_comm_mpi_error(rc, call);
done:
    if (sub != MPI_GROUP_NULL)
        MPI_Group_free(&sub);
    if (world != MPI_GROUP_NULL)
        MPI_Group_free(&world);
    PyMem_Free(members);
    if (PyErr_Occurred())
        return NULL;
    return pmp_comm_wrap(module, comm, 1);
}
