/*
 * pmp_comm.c - _pympipool_runtime.Comm and _pympipool_runtime.Op (see
 * pmp_comm.h).
 *
 * What it is for: a user function running on a group of ranks needs to talk
 * to the other ranks of its group, and the usual way (mpi4py) only works when
 * mpi4py is built for the runtime's MPI library.  This file gives such code
 * the same method names as mpi4py's lowercase, pickle-based API, built on
 * the runtime's own MPI, so that the same function runs unchanged under
 * either.
 *
 * How it works: every object is pickled (protocol 5, buffers in band) and
 * moved as bytes with non-blocking MPI calls that are completed by
 * pmp_mpi_waitall() with the GIL released, so other Python threads keep
 * running and a waiting rank sleeps instead of spinning.  Receivers get a
 * copy, the root of a broadcast included, as with mpi4py.  Sizes travel
 * first (bcast: a header, gather/allgather: an allgather of the lengths),
 * so every rank knows what follows.  Reductions gather the objects on the
 * root and fold them in rank order with the operator (Python semantics:
 * SUM is a + b, so lists concatenate and numpy arrays add element-wise);
 * allreduce then broadcasts the result.
 *
 * What it guarantees: errors that one rank detects in a collective reach
 * every rank of it, so no rank is left waiting: a root that cannot pickle
 * its object (or whose scatter list has the wrong length, or whose
 * reduction raised) broadcasts its exception in place of the data and
 * every rank raises it; a rank that cannot pickle its contribution to a
 * gather shows up as a negative length and every rank raises.  MPI errors
 * (a root or destination out of range, a broken communicator) come back as
 * RuntimeError with MPI's error string, because wrapped communicators use
 * MPI_ERRORS_RETURN.  A freed communicator raises ValueError.  The limits:
 * one pickle sent by send() and the total of a gather, allgather or
 * scatter must stay below 2 GiB (MPI's int counts) - every rank raises
 * OverflowError otherwise; a broadcast has no such limit (it moves in
 * chunks).  Running out of memory for a receive buffer after the sizes are
 * agreed is fatal (PMP_ASSERT, which ends the job) rather than a hang.
 *
 * Where it lives: this file holds the Comm type and its methods, each a
 * few lines over pmp_comm_move.c (pickles, waits, broadcasts, gathers and
 * receives, with the errors that reach every rank) and pmp_comm_op.c (the
 * reduction operators); pmp_comm_internal.h is what they share.
 */
#include "pmp_comm.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "pmp_comm_internal.h"
#include "pmp_error.h"

/* ---- Comm: methods --------------------------------------------------- */

static PyObject *s_comm_get_rank(PyObject *op, PyObject *unused)
{
    int rank, size;
    if (pmp_comm_rank_size((pmp_comm_t *)op, &rank, &size) < 0)
        return NULL;
    return PyLong_FromLong(rank);
}

static PyObject *s_comm_get_size(PyObject *op, PyObject *unused)
{
    int rank, size;
    if (pmp_comm_rank_size((pmp_comm_t *)op, &rank, &size) < 0)
        return NULL;
    return PyLong_FromLong(size);
}

static PyObject *s_comm_rank_prop(PyObject *op, void *closure)
{
    return s_comm_get_rank(op, NULL);
}

static PyObject *s_comm_size_prop(PyObject *op, void *closure)
{
    return s_comm_get_size(op, NULL);
}

static PyObject *s_comm_barrier(PyObject *op, PyObject *unused)
{
    pmp_comm_t *self = (pmp_comm_t *)op;
    if (pmp_comm_check(self) < 0)
        return NULL;
    MPI_Request req;
    int rc = MPI_Ibarrier(self->comm, &req);
    if (pmp_comm_finish(self, rc, &req, "MPI_Ibarrier") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *s_comm_bcast(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"obj", "root", NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    PyObject *obj = Py_None;
    int root = 0, rank, size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Oi:bcast", kwlist, &obj, &root))
        return NULL;
    if (pmp_comm_rank_size(self, &rank, &size) < 0 || pmp_comm_check_root(root, size) < 0)
        return NULL;
    return pmp_comm_bcast(self, obj, root, rank, "bcast");
}

static PyObject *s_comm_gather(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sendobj", "root", NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    PyObject *obj = Py_None, *items;
    int root = 0, rank, size, late;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Oi:gather", kwlist, &obj, &root))
        return NULL;
    if (pmp_comm_rank_size(self, &rank, &size) < 0 || pmp_comm_check_root(root, size) < 0)
        return NULL;
    if (pmp_comm_gather(self, obj, root, rank, size, &items, "gather", &late) < 0)
        return NULL;
    return items ? items : Py_NewRef(Py_None);
}

static PyObject *s_comm_allgather(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sendobj", NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    PyObject *obj = Py_None, *items;
    int rank, size, late;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:allgather", kwlist, &obj))
        return NULL;
    if (pmp_comm_rank_size(self, &rank, &size) < 0)
        return NULL;
    if (pmp_comm_gather(self, obj, -1, rank, size, &items, "allgather", &late) < 0)
        return NULL;
    return items;
}

/* The root's half of scatter before anything is sent: the pickles of the
 * items concatenated in *buf, their lengths in counts.  0 or -1 with an
 * exception (which the caller broadcasts). */
static int s_scatter_prepare(PyObject *sendobj, int size, PyObject **buf, int *counts, int *displs)
{
    *buf = NULL;
    PyObject *seq = PySequence_Fast(sendobj, "scatter: sendobj must be a sequence on the root");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *pickles = NULL;
    int ret = -1;
    if (n != size) {
        PyErr_Format(PyExc_ValueError,
                     "scatter: sendobj has %zd items on the root, expected %d (one per rank)", n,
                     size);
        goto done;
    }
    pickles = PyList_New(n);
    if (!pickles)
        goto done;
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *data = pmp_comm_dumps(PySequence_Fast_GET_ITEM(seq, i));
        if (!data)
            goto done;
        PyList_SET_ITEM(pickles, i, data);
        displs[i] = (int)(total < INT_MAX ? total : 0);
        counts[i] = (int)PyBytes_GET_SIZE(data);
        total += PyBytes_GET_SIZE(data);
        if (total > INT_MAX) {
            PyErr_Format(PyExc_OverflowError,
                         "scatter: the pickled items exceed 2 GiB; one scatter moves at most "
                         "2 GiB in total");
            goto done;
        }
    }
    *buf = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!*buf)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++)
        memcpy(PyBytes_AS_STRING(*buf) + displs[i], PyBytes_AS_STRING(PyList_GET_ITEM(pickles, i)),
               (size_t)counts[i]);
    ret = 0;
done:
    Py_XDECREF(pickles);
    Py_DECREF(seq);
    return ret;
}

static PyObject *s_comm_scatter(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sendobj", "root", NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    PyObject *obj = Py_None, *buf = NULL, *recv = NULL, *result = NULL;
    int root = 0, rank, size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Oi:scatter", kwlist, &obj, &root))
        return NULL;
    if (pmp_comm_rank_size(self, &rank, &size) < 0 || pmp_comm_check_root(root, size) < 0)
        return NULL;
    int *counts = PyMem_Calloc((size_t)size, sizeof(int));
    int *displs = PyMem_Calloc((size_t)size, sizeof(int));
    PMP_ASSERT(counts && displs);
    int64_t hdr[2] = {PMP_COMM_HDR_OK, 0};
    if (rank == root && s_scatter_prepare(obj, size, &buf, counts, displs) < 0) {
        pmp_comm_root_send_error(self, root);
        goto done;
    }
    if (pmp_comm_bcast_header(self, hdr, root) < 0)
        goto done;
    if (hdr[0] != PMP_COMM_HDR_OK) {
        pmp_comm_recv_error(self, hdr, root, "scatter");
        goto done;
    }
    int mine = 0;
    MPI_Request req;
    int rc = MPI_Iscatter(counts, 1, MPI_INT, &mine, 1, MPI_INT, root, self->comm, &req);
    if (pmp_comm_finish(self, rc, &req, "MPI_Iscatter") < 0)
        goto done;
    recv = pmp_comm_alloc_bytes(mine);
    rc = MPI_Iscatterv(buf ? PyBytes_AS_STRING(buf) : NULL, counts, displs, MPI_BYTE,
                       PyBytes_AS_STRING(recv), mine, MPI_BYTE, root, self->comm, &req);
    if (pmp_comm_finish(self, rc, &req, "MPI_Iscatterv") < 0)
        goto done;
    result = pmp_comm_loads(PyBytes_AS_STRING(recv), mine);
done:
    Py_XDECREF(buf);
    Py_XDECREF(recv);
    PyMem_Free(counts);
    PyMem_Free(displs);
    return result;
}

static PyObject *s_comm_reduce(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sendobj", "op", "root", NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    PyObject *obj = Py_None, *opobj = NULL, *items;
    int root = 0, rank, size, late;
    pmp_comm_opref_t ref;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOi:reduce", kwlist, &obj, &opobj, &root))
        return NULL;
    if (pmp_comm_op_resolve(opobj, &ref) < 0)
        return NULL;
    if (pmp_comm_rank_size(self, &rank, &size) < 0 || pmp_comm_check_root(root, size) < 0)
        return NULL;
    if (pmp_comm_gather(self, obj, root, rank, size, &items, "reduce", &late) < 0)
        return NULL;
    if (!items)
        Py_RETURN_NONE;
    PyObject *result = pmp_comm_op_fold(items, &ref);
    Py_DECREF(items);
    return result;
}

static PyObject *s_comm_allreduce(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sendobj", "op", NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    PyObject *obj = Py_None, *opobj = NULL, *items, *result = NULL;
    int rank, size, late;
    pmp_comm_opref_t ref;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:allreduce", kwlist, &obj, &opobj))
        return NULL;
    if (pmp_comm_op_resolve(opobj, &ref) < 0)
        return NULL;
    if (pmp_comm_rank_size(self, &rank, &size) < 0)
        return NULL;
    /* A root that cannot unpickle a contribution (late) still owes the
     * others the broadcast: its exception goes out in place of the result. */
    if (pmp_comm_gather(self, obj, 0, rank, size, &items, "allreduce", &late) < 0 && !late)
        return NULL;
    if (items) {
        result = pmp_comm_op_fold(items, &ref); /* NULL: the exception goes to every rank */
        Py_DECREF(items);
    }
    PyObject *shared = pmp_comm_bcast(self, result, 0, rank, "allreduce");
    Py_XDECREF(result);
    return shared;
}

/* obj pickled for one point-to-point message, whose count is an int: a
 * new reference, or NULL with the pickling error or OverflowError (what:
 * the method, for the message). */
static PyObject *s_dumps_one_message(const char *what, PyObject *obj)
{
    PyObject *data = pmp_comm_dumps(obj);
    if (data && PyBytes_GET_SIZE(data) > INT_MAX) {
        Py_DECREF(data);
        PyErr_Format(PyExc_OverflowError, "%s: the pickled object exceeds 2 GiB", what);
        return NULL;
    }
    return data;
}

static PyObject *s_comm_send(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"obj", "dest", "tag", NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    PyObject *obj;
    int dest, tag = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oi|i:send", kwlist, &obj, &dest, &tag))
        return NULL;
    if (pmp_comm_check(self) < 0)
        return NULL;
    PyObject *data = s_dumps_one_message("send", obj);
    if (!data)
        return NULL;
    MPI_Request req;
    int rc = MPI_Isend(PyBytes_AS_STRING(data), (int)PyBytes_GET_SIZE(data), MPI_BYTE, dest, tag,
                       self->comm, &req);
    rc = pmp_comm_finish(self, rc, &req, "MPI_Isend");
    Py_DECREF(data);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int s_no_status(PyObject *status)
{
    if (status == Py_None)
        return 0;
    PyErr_SetString(PyExc_TypeError, "status objects are not supported by pympipool's Comm; "
                                     "pass status=None");
    return -1;
}

static PyObject *s_comm_recv(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"buf", "source", "tag", "status", NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    PyObject *buf = Py_None, *status = Py_None;
    int source = MPI_ANY_SOURCE, tag = MPI_ANY_TAG;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OiiO:recv", kwlist, &buf, &source, &tag,
                                     &status))
        return NULL;
    if (s_no_status(status) < 0 || pmp_comm_check(self) < 0)
        return NULL;
    return pmp_comm_recv(self, source, tag);
}

static PyObject *s_comm_sendrecv(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sendobj", "dest",    "sendtag", "recvbuf",
                             "source",  "recvtag", "status",  NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    PyObject *obj, *recvbuf = Py_None, *status = Py_None;
    int dest, sendtag = 0, source = MPI_ANY_SOURCE, recvtag = MPI_ANY_TAG;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oi|iOiiO:sendrecv", kwlist, &obj, &dest,
                                     &sendtag, &recvbuf, &source, &recvtag, &status))
        return NULL;
    if (s_no_status(status) < 0 || pmp_comm_check(self) < 0)
        return NULL;
    PyObject *data = s_dumps_one_message("sendrecv", obj);
    if (!data)
        return NULL;
    MPI_Request req;
    int rc = MPI_Isend(PyBytes_AS_STRING(data), (int)PyBytes_GET_SIZE(data), MPI_BYTE, dest,
                       sendtag, self->comm, &req);
    if (rc != MPI_SUCCESS) {
        Py_DECREF(data);
        return pmp_comm_mpi_error(rc, "MPI_Isend");
    }
    PyObject *result = pmp_comm_recv(self, source, recvtag);
    pmp_comm_wait(self, 1, &req); /* the send is posted: it must complete either way */
    Py_DECREF(data);
    return result;
}

static PyObject *s_comm_split(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"color", "key", NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    int color = 0, key = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|ii:Split", kwlist, &color, &key))
        return NULL;
    if (pmp_comm_check(self) < 0)
        return NULL;
    /* There is no non-blocking split: meet in a sleeping barrier first, so
     * that the blocking MPI_Comm_split below only waits for stragglers. */
    MPI_Request req;
    int rc = MPI_Ibarrier(self->comm, &req);
    if (pmp_comm_finish(self, rc, &req, "MPI_Ibarrier") < 0)
        return NULL;
    MPI_Comm newcomm = MPI_COMM_NULL;
    self->busy++;
    PyThreadState *ts = PyEval_SaveThread();
    rc = MPI_Comm_split(self->comm, color, key, &newcomm);
    PyEval_RestoreThread(ts);
    self->busy--;
    if (rc != MPI_SUCCESS)
        return pmp_comm_mpi_error(rc, "MPI_Comm_split");
    if (newcomm == MPI_COMM_NULL) /* color == UNDEFINED */
        Py_RETURN_NONE;
    return pmp_comm_wrap(PyType_GetModule(Py_TYPE(op)), newcomm, 1);
}

static PyObject *s_comm_dup(PyObject *op, PyObject *unused)
{
    pmp_comm_t *self = (pmp_comm_t *)op;
    if (pmp_comm_check(self) < 0)
        return NULL;
    MPI_Comm newcomm = MPI_COMM_NULL;
    MPI_Request req;
    int rc = MPI_Comm_idup(self->comm, &newcomm, &req);
    if (pmp_comm_finish(self, rc, &req, "MPI_Comm_idup") < 0)
        return NULL;
    return pmp_comm_wrap(PyType_GetModule(Py_TYPE(op)), newcomm, 1);
}

static PyObject *s_comm_free(PyObject *op, PyObject *unused)
{
    pmp_comm_t *self = (pmp_comm_t *)op;
    if (pmp_comm_check(self) < 0)
        return NULL;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Free: another thread is communicating on this communicator");
        return NULL;
    }
    if (self->owned) {
        int rc = MPI_Comm_free(&self->comm);
        if (rc != MPI_SUCCESS)
            return pmp_comm_mpi_error(rc, "MPI_Comm_free");
    }
    self->comm = MPI_COMM_NULL;
    Py_RETURN_NONE;
}

/* A new not-owned wrapper of the same handle, for the runtime: it keeps one
 * wrapper of the group communicator and hands every task its own borrowed
 * one, so that a task calling comm.Free() cannot break the next task.  Only
 * not-owned wrappers lend their handle: theirs lives until MPI_Finalize,
 * while an owned one could be freed under the borrower. */
static PyObject *s_comm_borrow(PyObject *op, PyObject *unused)
{
    pmp_comm_t *self = (pmp_comm_t *)op;
    if (pmp_comm_check(self) < 0)
        return NULL;
    if (self->owned) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_borrow: only the runtime's group communicator can be borrowed");
        return NULL;
    }
    return pmp_comm_wrap(PyType_GetModule(Py_TYPE(op)), self->comm, 0);
}

static PyObject *s_comm_abort(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"errorcode", NULL};
    pmp_comm_t *self = (pmp_comm_t *)op;
    int code = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|i:Abort", kwlist, &code))
        return NULL;
    if (pmp_comm_check(self) < 0)
        return NULL;
    fflush(NULL);
    MPI_Abort(self->comm, code);
    Py_RETURN_NONE;
}

static PyObject *s_comm_py2f(PyObject *op, PyObject *unused)
{
    pmp_comm_t *self = (pmp_comm_t *)op;
    if (pmp_comm_check(self) < 0)
        return NULL;
    return PyLong_FromLong((long)MPI_Comm_c2f(self->comm));
}

static PyObject *s_comm_handle(PyObject *op, void *closure)
{
    pmp_comm_t *self = (pmp_comm_t *)op;
    /* MPICH: an int; Open MPI: a pointer.  Either converts to intptr_t. */
    return PyLong_FromSsize_t((Py_ssize_t)(intptr_t)self->comm);
}

static PyObject *s_comm_repr(PyObject *op)
{
    pmp_comm_t *self = (pmp_comm_t *)op;
    int rank, size;
    if (pmp_comm_rank_size(self, &rank, &size) < 0) { /* freed, or MPI finalized */
        PyErr_Clear();
        return PyUnicode_FromString("<_pympipool_runtime.Comm (freed)>");
    }
    return PyUnicode_FromFormat("<_pympipool_runtime.Comm rank %d of %d>", rank, size);
}

static void s_comm_dealloc(PyObject *op)
{
    pmp_comm_t *self = (pmp_comm_t *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->owned && self->comm != MPI_COMM_NULL) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized)
            MPI_Comm_free(&self->comm);
    }
    tp->tp_free(op);
    Py_DECREF(tp);
}

#define S_KW (METH_VARARGS | METH_KEYWORDS)
#define S_FN(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef s_comm_methods[] = {
    {"Get_rank", s_comm_get_rank, METH_NOARGS, "This rank's number in the communicator."},
    {"Get_size", s_comm_get_size, METH_NOARGS, "The number of ranks in the communicator."},
    {"Barrier", s_comm_barrier, METH_NOARGS, "Wait until every rank has called Barrier()."},
    {"barrier", s_comm_barrier, METH_NOARGS, "Same as Barrier()."},
    {"bcast", S_FN(s_comm_bcast), S_KW, "bcast(obj, root=0): root's obj on every rank."},
    {"gather", S_FN(s_comm_gather), S_KW,
     "gather(sendobj, root=0): list of every rank's object on root, None elsewhere."},
    {"scatter", S_FN(s_comm_scatter), S_KW,
     "scatter(sendobj, root=0): item r of root's sequence on rank r."},
    {"allgather", S_FN(s_comm_allgather), S_KW,
     "allgather(sendobj): list of every rank's object on every rank."},
    {"reduce", S_FN(s_comm_reduce), S_KW,
     "reduce(sendobj, op=SUM, root=0): objects folded with op in rank order on root, None "
     "elsewhere; op is an Op, its name or a callable f(a, b)."},
    {"allreduce", S_FN(s_comm_allreduce), S_KW,
     "allreduce(sendobj, op=SUM): reduce() whose result every rank gets."},
    {"send", S_FN(s_comm_send), S_KW, "send(obj, dest, tag=0): send a pickled object."},
    {"recv", S_FN(s_comm_recv), S_KW,
     "recv(buf=None, source=ANY_SOURCE, tag=ANY_TAG, status=None): receive an object."},
    {"sendrecv", S_FN(s_comm_sendrecv), S_KW,
     "sendrecv(sendobj, dest, sendtag=0, recvbuf=None, source=ANY_SOURCE, recvtag=ANY_TAG): "
     "send and receive without deadlock."},
    {"Split", S_FN(s_comm_split), S_KW,
     "Split(color=0, key=0): new Comm of the ranks with the same color, ordered by key; None "
     "for color UNDEFINED."},
    {"Dup", s_comm_dup, METH_NOARGS, "A new Comm with the same ranks."},
    {"Clone", s_comm_dup, METH_NOARGS, "Same as Dup()."},
    {"Free", s_comm_free, METH_NOARGS, "Release the communicator; later use raises ValueError."},
    {"Abort", S_FN(s_comm_abort), S_KW, "Abort(errorcode=0): end the whole MPI job."},
    {"_borrow", s_comm_borrow, METH_NOARGS,
     "Private (runtime): a new wrapper of the group communicator; its Free() affects only it."},
    {"py2f", s_comm_py2f, METH_NOARGS, "The Fortran handle (an int), for MPI.Comm.f2py()."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef s_comm_getset[] = {
    {"rank", s_comm_rank_prop, NULL, "This rank's number in the communicator.", NULL},
    {"size", s_comm_size_prop, NULL, "The number of ranks in the communicator.", NULL},
    {"handle", s_comm_handle, NULL, "The C MPI_Comm handle as an int.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot s_comm_slots[] = {
    {Py_tp_doc, "An MPI communicator of the pympipool runtime, with mpi4py's method names."},
    {Py_tp_methods, s_comm_methods},
    {Py_tp_getset, s_comm_getset},
    {Py_tp_repr, s_comm_repr},
    {Py_tp_dealloc, s_comm_dealloc},
    {0, NULL},
};

static PyType_Spec s_comm_spec = {
    .name = "_pympipool_runtime.Comm",
    .basicsize = sizeof(pmp_comm_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = s_comm_slots,
};

/* ---- public ---------------------------------------------------------- */

int pmp_comm_module_init(PyObject *module)
{
    PyObject *comm_type = PyType_FromModuleAndSpec(module, &s_comm_spec, NULL);
    if (!comm_type)
        return -1;
    int rc = PyModule_AddObjectRef(module, "Comm", comm_type);
    if (rc == 0)
        rc = PyModule_AddObjectRef(module, "Intracomm", comm_type);
    Py_DECREF(comm_type);
    if (rc < 0)
        return -1;

    if (pmp_comm_op_module_init(module) < 0)
        return -1;
    if (PyModule_AddIntConstant(module, "ANY_SOURCE", MPI_ANY_SOURCE) < 0 ||
        PyModule_AddIntConstant(module, "ANY_TAG", MPI_ANY_TAG) < 0 ||
        PyModule_AddIntConstant(module, "UNDEFINED", MPI_UNDEFINED) < 0)
        return -1;
    return 0;
}

PyObject *pmp_comm_wrap(PyObject *module, MPI_Comm comm, int owned)
{
    PyObject *type = module ? PyObject_GetAttrString(module, "Comm") : NULL;
    pmp_comm_t *self = NULL;
    if (!module)
        PyErr_SetString(PyExc_SystemError, "pmp_comm_wrap: no module");
    else if (type && (!PyType_Check(type) || PyType_GetSlot((PyTypeObject *)type, Py_tp_dealloc) !=
                                                 (void *)s_comm_dealloc))
        PyErr_SetString(PyExc_SystemError, "pmp_comm_wrap: the module's Comm is not pympipool's");
    else if (type && comm == MPI_COMM_NULL)
        PyErr_SetString(PyExc_ValueError, "pmp_comm_wrap: MPI_COMM_NULL");
    else if (type) {
        int rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
        if (rc != MPI_SUCCESS)
            pmp_comm_mpi_error(rc, "MPI_Comm_set_errhandler");
        else
            self = (pmp_comm_t *)((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, 0);
    }
    Py_XDECREF(type);
    if (!self) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (owned && comm != MPI_COMM_NULL && !finalized)
            MPI_Comm_free(&comm);
        return NULL;
    }
    self->comm = comm;
    self->owned = owned != 0;
    self->busy = 0;
    return (PyObject *)self;
}