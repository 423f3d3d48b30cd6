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
 */
#include "pmp_comm.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "pmp_error.h"
#include "pmp_mpiwait.h"

#define S_PICKLE_PROTOCOL 5
#define S_CHUNK (64L * 1024 * 1024) /* bytes per MPI_Ibcast of one broadcast */

#define S_SIGNAL_CHECK_NS 10000000L /* s_probe runs signal handlers every 10 ms */

/* Header broadcast by the root of bcast, scatter and allreduce. */
enum { S_HDR_OK = 0, S_HDR_EXC = 1, S_HDR_EXC_RAW = 2 };

/* ---- operators ------------------------------------------------------- */

typedef enum {
    S_SUM,
    S_PROD,
    S_MAX,
    S_MIN,
    S_LAND,
    S_LOR,
    S_BAND,
    S_BOR,
    S_LXOR,
    S_BXOR,
    S_MAXLOC,
    S_MINLOC,
    S_NOPS
} s_opcode_t;

static const char *const s_op_names[S_NOPS] = {"SUM",  "PROD", "MAX",  "MIN",  "LAND",   "LOR",
                                               "BAND", "BOR",  "LXOR", "BXOR", "MAXLOC", "MINLOC"};

typedef struct {
    PyObject_HEAD int code;
} s_op_t;

/* MAXLOC / MINLOC on (value, index) pairs: the better value, ties go to
 * the smaller index (mpi4py's rule). */
static PyObject *s_op_loc(PyObject *a, PyObject *b, int better)
{
    PyObject *pa = PySequence_Tuple(a);
    PyObject *pb = pa ? PySequence_Tuple(b) : NULL;
    PyObject *result = NULL;
    if (!pb)
        goto done;
    if (PyTuple_GET_SIZE(pa) != 2 || PyTuple_GET_SIZE(pb) != 2) {
        PyErr_SetString(PyExc_TypeError, "MAXLOC and MINLOC need (value, index) pairs");
        goto done;
    }
    PyObject *u = PyTuple_GET_ITEM(pa, 0), *i = PyTuple_GET_ITEM(pa, 1);
    PyObject *v = PyTuple_GET_ITEM(pb, 0), *j = PyTuple_GET_ITEM(pb, 1);
    int c = PyObject_RichCompareBool(u, v, better);
    if (c < 0)
        goto done;
    if (c) {
        result = Py_NewRef(pa);
        goto done;
    }
    c = PyObject_RichCompareBool(v, u, better);
    if (c < 0)
        goto done;
    if (c) {
        result = Py_NewRef(pb);
        goto done;
    }
    c = PyObject_RichCompareBool(j, i, Py_LT);
    if (c >= 0)
        result = Py_NewRef(c ? pb : pa);
done:
    Py_XDECREF(pa);
    Py_XDECREF(pb);
    return result;
}

/* a OP b with Python semantics, as mpi4py's lowercase reductions.  New
 * reference or NULL with an exception. */
static PyObject *s_op_apply(int code, PyObject *a, PyObject *b)
{
    int c;
    switch (code) {
    case S_SUM:
        return PyNumber_Add(a, b);
    case S_PROD:
        return PyNumber_Multiply(a, b);
    case S_BAND:
        return PyNumber_And(a, b);
    case S_BOR:
        return PyNumber_Or(a, b);
    case S_BXOR:
        return PyNumber_Xor(a, b);
    case S_MAX: /* b if b > a else a */
    case S_MIN: /* b if b < a else a */
        c = PyObject_RichCompareBool(b, a, code == S_MAX ? Py_GT : Py_LT);
        return c < 0 ? NULL : Py_NewRef(c ? b : a);
    case S_LAND: /* a and b */
        c = PyObject_IsTrue(a);
        return c < 0 ? NULL : Py_NewRef(c ? b : a);
    case S_LOR: /* a or b */
        c = PyObject_IsTrue(a);
        return c < 0 ? NULL : Py_NewRef(c ? a : b);
    case S_LXOR: { /* (a or b) and not (a and b) */
        int ta = PyObject_IsTrue(a);
        if (ta < 0)
            return NULL;
        PyObject *either = ta ? a : b;
        c = PyObject_IsTrue(either);
        if (c < 0)
            return NULL;
        if (!c)
            return Py_NewRef(either);
        PyObject *both = ta ? b : a;
        c = PyObject_IsTrue(both);
        return c < 0 ? NULL : PyBool_FromLong(!c);
    }
    case S_MAXLOC:
        return s_op_loc(a, b, Py_GT);
    case S_MINLOC:
        return s_op_loc(a, b, Py_LT);
    default:
        PyErr_SetString(PyExc_SystemError, "unknown reduction operator");
        return NULL;
    }
}

static PyObject *s_op_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *a, *b;
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Op() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO:Op", &a, &b))
        return NULL;
    return s_op_apply(((s_op_t *)self)->code, a, b);
}

static PyObject *s_op_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<_pympipool_runtime.Op %s>", s_op_names[((s_op_t *)self)->code]);
}

/* Pickled by reference: _pympipool_runtime.SUM etc. */
static PyObject *s_op_reduce(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(s_op_names[((s_op_t *)self)->code]);
}

static PyObject *s_op_get_name(PyObject *self, void *closure)
{
    return PyUnicode_FromString(s_op_names[((s_op_t *)self)->code]);
}

static void s_op_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef s_op_methods[] = {
    {"__reduce__", s_op_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef s_op_getset[] = {
    {"name", s_op_get_name, NULL, "The operator's name, e.g. 'SUM'.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot s_op_slots[] = {
    {Py_tp_doc, "A reduction operator (mpi4py's names); op(a, b) applies it."},
    {Py_tp_call, s_op_call},
    {Py_tp_repr, s_op_repr},
    {Py_tp_methods, s_op_methods},
    {Py_tp_getset, s_op_getset},
    {Py_tp_dealloc, s_op_dealloc},
    {0, NULL},
};

static PyType_Spec s_op_spec = {
    .name = "_pympipool_runtime.Op",
    .basicsize = sizeof(s_op_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = s_op_slots,
};

/* What a reduction applies: a builtin code, or a borrowed callable. */
typedef struct {
    int code;
    PyObject *callable;
} s_opref_t;

/* Resolves an op argument: NULL/None (SUM), an Op, an operator name such
 * as "SUM", or a callable f(a, b).  0 or -1 with TypeError/ValueError. */
static int s_op_resolve(PyObject *op, s_opref_t *out)
{
    out->code = S_SUM;
    out->callable = NULL;
    if (!op || op == Py_None)
        return 0;
    if (PyType_GetSlot(Py_TYPE(op), Py_tp_call) == (void *)s_op_call) {
        out->code = ((s_op_t *)op)->code;
        return 0;
    }
    if (PyUnicode_Check(op)) {
        const char *name = PyUnicode_AsUTF8(op);
        if (!name)
            return -1;
        if (strncmp(name, "MPI_", 4) == 0)
            name += 4;
        for (int i = 0; i < S_NOPS; i++) {
            if (strcmp(name, s_op_names[i]) == 0) {
                out->code = i;
                return 0;
            }
        }
        PyErr_Format(PyExc_ValueError,
                     "unknown reduction operator %R: use SUM, PROD, MAX, MIN, LAND, LOR, BAND, "
                     "BOR, LXOR, BXOR, MAXLOC or MINLOC, or a callable f(a, b)",
                     op);
        return -1;
    }
    if (PyCallable_Check(op)) {
        out->callable = op;
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "op must be a reduction operator (SUM, PROD, ..., or its name) or a callable "
                 "f(a, b), not %.100s",
                 Py_TYPE(op)->tp_name);
    return -1;
}

static PyObject *s_opref_apply(const s_opref_t *op, PyObject *a, PyObject *b)
{
    if (op->callable)
        return PyObject_CallFunctionObjArgs(op->callable, a, b, NULL);
    return s_op_apply(op->code, a, b);
}

/* ---- Comm: helpers --------------------------------------------------- */

typedef struct {
    PyObject_HEAD MPI_Comm comm;
    int owned; /* Free()/dealloc call MPI_Comm_free */
    int busy;  /* calls of this wrapper currently waiting without the GIL */
} s_comm_t;

static PyObject *s_mpi_error(int rc, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error code %d", rc);
    PyErr_Format(PyExc_RuntimeError, "%s failed: %s", call, text);
    return NULL;
}

/* 0 if the wrapper may be used, -1 with ValueError otherwise. */
static int s_check(s_comm_t *self)
{
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) {
        PyErr_SetString(PyExc_ValueError, "MPI is finalized: the communicator cannot be used");
        return -1;
    }
    if (self->comm == MPI_COMM_NULL) {
        PyErr_SetString(PyExc_ValueError,
                        "the communicator is not valid (Free() was called on it)");
        return -1;
    }
    return 0;
}

/* s_check() plus rank and size.  0 or -1 with an exception. */
static int s_rank_size(s_comm_t *self, int *rank, int *size)
{
    if (s_check(self) < 0)
        return -1;
    int rc = MPI_Comm_rank(self->comm, rank);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_size(self->comm, size);
    if (rc != MPI_SUCCESS) {
        s_mpi_error(rc, "MPI_Comm_rank/MPI_Comm_size");
        return -1;
    }
    return 0;
}

/* The same check on every rank, before any communication: consistent. */
static int s_check_root(int root, int size)
{
    if (root >= 0 && root < size)
        return 0;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(MPI_ERR_ROOT, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "invalid root");
    PyErr_Format(PyExc_RuntimeError, "%s: root %d is not a rank of this %d-rank communicator", text,
                 root, size);
    return -1;
}

/* Completes the requests with the GIL released (sleeping backoff). */
static void s_wait(s_comm_t *self, int n, MPI_Request *reqs)
{
    self->busy++;
    PyThreadState *ts = PyEval_SaveThread();
    pmp_mpi_waitall(n, reqs);
    PyEval_RestoreThread(ts);
    self->busy--;
}

/* One non-blocking call already posted (rc, req): wait for it or raise. */
static int s_finish(s_comm_t *self, int rc, MPI_Request *req, const char *call)
{
    if (rc != MPI_SUCCESS) {
        s_mpi_error(rc, call);
        return -1;
    }
    s_wait(self, 1, req);
    return 0;
}

static long s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* MPI_Improbe until a message matches, with the GIL released and the
 * backoff of pmp_mpi_waitall (there is no request to hand it).  Returns the
 * MPI error code, or -1 with a Python exception set when a signal handler
 * raised while it waited (run_time_max's TimeoutError, KeyboardInterrupt).
 *
 * Only this wait is interrupted by signals: nothing is posted yet, so giving
 * up leaves MPI with no request pointing at our memory.  The waits of
 * posted requests (s_wait: collectives, sends, the receive itself) are not
 * interrupted: MPI would later write into buffers that are gone, so a rank
 * stuck there is ended by the frontend's hard time limit, which restarts
 * the job (docs/architecture.md, "Faults and restarts"). */
static int s_probe(s_comm_t *self, int source, int tag, MPI_Message *msg, MPI_Status *status)
{
    int rc = MPI_SUCCESS, flag = 0;
    self->busy++;
    PyThreadState *ts = PyEval_SaveThread();
    pmp_mpi_backoff_t backoff;
    pmp_mpi_backoff_start(&backoff);
    long last_check = s_now_ns();
    for (;;) {
        rc = MPI_Improbe(source, tag, self->comm, &flag, msg, status);
        if (rc != MPI_SUCCESS || flag)
            break;
        if (s_now_ns() - last_check > S_SIGNAL_CHECK_NS) {
            last_check = s_now_ns();
            PyEval_RestoreThread(ts);
            int failed = PyErr_CheckSignals();
            ts = PyEval_SaveThread();
            if (failed < 0) {
                rc = -1;
                break;
            }
        }
        pmp_mpi_backoff_nap(&backoff);
    }
    PyEval_RestoreThread(ts);
    self->busy--;
    return rc;
}

/* A receive buffer whose size every rank already agreed on: failing to
 * allocate it would leave the other ranks waiting, so it is fatal. */
static PyObject *s_alloc_bytes(int64_t n)
{
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!b) {
        fprintf(stderr, "pympipool Comm: cannot allocate a %lld-byte receive buffer\n",
                (long long)n);
        PMP_ASSERT(b != NULL);
    }
    return b;
}

static PyObject *s_dumps(PyObject *obj)
{
    PyObject *pickle = PyImport_ImportModule("pickle");
    if (!pickle)
        return NULL;
    PyObject *data = PyObject_CallMethod(pickle, "dumps", "Oi", obj, S_PICKLE_PROTOCOL);
    Py_DECREF(pickle);
    if (data && !PyBytes_Check(data)) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_TypeError, "pickle.dumps did not return bytes");
        return NULL;
    }
    return data;
}

static PyObject *s_loads(const char *data, int64_t n)
{
    PyObject *pickle = PyImport_ImportModule("pickle");
    if (!pickle)
        return NULL;
    /* pickle.loads copies what it keeps, so a view of our buffer suffices. */
    PyObject *view = PyMemoryView_FromMemory((char *)data, (Py_ssize_t)n, PyBUF_READ);
    PyObject *obj = view ? PyObject_CallMethod(pickle, "loads", "O", view) : NULL;
    Py_XDECREF(view);
    Py_DECREF(pickle);
    return obj;
}

/* Broadcasts n bytes from root in chunks (no 2 GiB limit). */
static int s_bcast_bytes(s_comm_t *self, char *data, int64_t n, int root)
{
    for (int64_t off = 0; off < n; off += S_CHUNK) {
        int count = (int)(n - off < S_CHUNK ? n - off : S_CHUNK);
        MPI_Request req;
        int rc = MPI_Ibcast(data + off, count, MPI_BYTE, root, self->comm, &req);
        if (s_finish(self, rc, &req, "MPI_Ibcast") < 0)
            return -1;
    }
    return 0;
}

static int s_bcast_header(s_comm_t *self, int64_t hdr[2], int root)
{
    MPI_Request req;
    int rc = MPI_Ibcast(hdr, 2, MPI_INT64_T, root, self->comm, &req);
    return s_finish(self, rc, &req, "MPI_Ibcast");
}

/* On the root, with a Python exception set: broadcasts the exception in
 * place of the data (header S_HDR_EXC and its pickle, or S_HDR_EXC_RAW if it
 * cannot be pickled) and leaves it set.  Always returns -1. */
static int s_root_send_error(s_comm_t *self, int root)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *data = value ? s_dumps(value) : NULL;
    if (!data)
        PyErr_Clear();
    int64_t hdr[2] = {data ? S_HDR_EXC : S_HDR_EXC_RAW, data ? PyBytes_GET_SIZE(data) : 0};
    int rc = s_bcast_header(self, hdr, root);
    if (rc == 0 && data)
        rc = s_bcast_bytes(self, PyBytes_AS_STRING(data), hdr[1], root);
    Py_XDECREF(data);
    if (rc < 0)
        PyErr_Clear(); /* the root's own error is the one to report */
    PyErr_Restore(type, value, tb);
    return -1;
}

/* On a non-root rank after a header that is not S_HDR_OK: receives the
 * root's exception and raises it here.  Always returns -1. */
static int s_recv_error(s_comm_t *self, const int64_t hdr[2], int root, const char *what)
{
    if (hdr[0] != S_HDR_EXC || hdr[1] <= 0) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s failed on the root (rank %d) with an exception "
                     "that cannot be pickled; see the root's error",
                     what, root);
        return -1;
    }
    PyObject *buf = s_alloc_bytes(hdr[1]);
    if (s_bcast_bytes(self, PyBytes_AS_STRING(buf), hdr[1], root) < 0) {
        Py_DECREF(buf);
        return -1;
    }
    PyObject *exc = s_loads(PyBytes_AS_STRING(buf), hdr[1]);
    Py_DECREF(buf);
    if (!exc)
        return -1;
    if (!PyExceptionInstance_Check(exc)) {
        Py_DECREF(exc);
        PyErr_Format(PyExc_RuntimeError, "%s failed on the root (rank %d)", what, root);
        return -1;
    }
    PyObject *note = PyUnicode_FromFormat("raised on rank %d, the root of this %s", root, what);
    if (note) {
        PyObject *r = PyObject_CallMethod(exc, "add_note", "O", note);
        Py_XDECREF(r);
        Py_DECREF(note);
    }
    PyErr_Clear(); /* add_note exists from Python 3.11 on; it is only a nicety */
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return -1;
}

/* Broadcast of a Python object.  On the root, obj == NULL means "a Python
 * exception is set": it is sent instead and raised on every rank.  Every
 * rank (the root too) returns a fresh copy: new reference or NULL. */
static PyObject *s_bcast(s_comm_t *self, PyObject *obj, int root, int rank, const char *what)
{
    int64_t hdr[2] = {S_HDR_OK, 0};
    PyObject *data = NULL;
    if (rank == root) {
        data = obj ? s_dumps(obj) : NULL;
        if (!data) {
            s_root_send_error(self, root);
            return NULL;
        }
        hdr[1] = PyBytes_GET_SIZE(data);
    }
    if (s_bcast_header(self, hdr, root) < 0)
        goto fail;
    if (rank != root) {
        if (hdr[0] != S_HDR_OK) {
            s_recv_error(self, hdr, root, what);
            return NULL;
        }
        data = s_alloc_bytes(hdr[1]);
    }
    if (s_bcast_bytes(self, PyBytes_AS_STRING(data), hdr[1], root) < 0)
        goto fail;
    PyObject *result = s_loads(PyBytes_AS_STRING(data), hdr[1]);
    Py_DECREF(data);
    return result;
fail:
    Py_XDECREF(data);
    return NULL;
}

/* Gathers the pickle of every rank's obj.  root >= 0: the root gets a new
 * list of the unpickled objects in rank order in *items, the others NULL;
 * root < 0: every rank gets the list.  Returns 0, or -1 with an exception
 * on every rank when a rank could not pickle its object or the total
 * exceeds 2 GiB (the failing rank raises its own pickling error).  *late is
 * set when the failure came after the exchange, on a receiving rank only
 * (an object that fails to unpickle): the others carry on. */
static int s_gather(s_comm_t *self, PyObject *obj, int root, int rank, int size, PyObject **items,
                    const char *what, int *late)
{
    *items = NULL;
    *late = 0;
    int ret = -1, exchanged = 0;
    PyObject *etype = NULL, *evalue = NULL, *etb = NULL;
    PyObject *recv = NULL;
    int64_t *counts = PyMem_Calloc((size_t)size, sizeof(int64_t));
    int *icounts = PyMem_Calloc((size_t)size, sizeof(int));
    int *displs = PyMem_Calloc((size_t)size, sizeof(int));
    PMP_ASSERT(counts && icounts && displs); /* a few bytes per rank */

    PyObject *data = s_dumps(obj);
    if (!data)
        PyErr_Fetch(&etype, &evalue, &etb); /* raised after the others know */
    int64_t mine = data ? PyBytes_GET_SIZE(data) : -1;
    MPI_Request req;
    int rc = MPI_Iallgather(&mine, 1, MPI_INT64_T, counts, 1, MPI_INT64_T, self->comm, &req);
    if (s_finish(self, rc, &req, "MPI_Iallgather") < 0)
        goto done;
    int bad = -1;
    int64_t total = 0;
    for (int i = 0; i < size; i++) {
        if (counts[i] < 0 && bad < 0)
            bad = i;
        if (counts[i] > 0)
            total += counts[i];
    }
    if (!data) {
        PyErr_Restore(etype, evalue, etb);
        etype = evalue = etb = NULL;
        goto done;
    }
    if (bad >= 0) {
        PyErr_Format(PyExc_RuntimeError, "%s: rank %d could not pickle its object (see its error)",
                     what, bad);
        goto done;
    }
    if (total > INT_MAX) {
        PyErr_Format(PyExc_OverflowError,
                     "%s: the pickled objects total %lld bytes; one %s moves at most 2 GiB", what,
                     (long long)total, what);
        goto done;
    }
    int off = 0;
    for (int i = 0; i < size; i++) {
        icounts[i] = (int)counts[i];
        displs[i] = off;
        off += icounts[i];
    }
    int receiving = root < 0 || rank == root;
    recv = receiving ? s_alloc_bytes(total) : NULL;
    char *rbuf = recv ? PyBytes_AS_STRING(recv) : NULL;
    if (root < 0) {
        rc = MPI_Iallgatherv(PyBytes_AS_STRING(data), (int)mine, MPI_BYTE, rbuf, icounts, displs,
                             MPI_BYTE, self->comm, &req);
        if (s_finish(self, rc, &req, "MPI_Iallgatherv") < 0)
            goto done;
    } else {
        rc = MPI_Igatherv(PyBytes_AS_STRING(data), (int)mine, MPI_BYTE, rbuf, icounts, displs,
                          MPI_BYTE, root, self->comm, &req);
        if (s_finish(self, rc, &req, "MPI_Igatherv") < 0)
            goto done;
    }
    Py_CLEAR(data);
    exchanged = 1;
    if (receiving) {
        PyObject *list = PyList_New(size);
        if (!list)
            goto done;
        for (int i = 0; i < size; i++) {
            PyObject *item = s_loads(rbuf + displs[i], icounts[i]);
            if (!item) {
                Py_DECREF(list);
                goto done;
            }
            PyList_SET_ITEM(list, i, item);
        }
        *items = list;
    }
    ret = 0;
done:
    *late = ret < 0 && exchanged;
    Py_XDECREF(etype);
    Py_XDECREF(evalue);
    Py_XDECREF(etb);
    Py_XDECREF(data);
    Py_XDECREF(recv);
    PyMem_Free(counts);
    PyMem_Free(icounts);
    PyMem_Free(displs);
    return ret;
}

/* Folds items (a list, rank order) with op: new reference or NULL. */
static PyObject *s_fold(PyObject *items, const s_opref_t *op)
{
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *acc = Py_NewRef(PyList_GET_ITEM(items, 0));
    for (Py_ssize_t i = 1; i < n && acc; i++) {
        PyObject *next = s_opref_apply(op, acc, PyList_GET_ITEM(items, i));
        Py_DECREF(acc);
        acc = next;
    }
    return acc;
}

/* ---- Comm: methods --------------------------------------------------- */

static PyObject *s_comm_get_rank(PyObject *op, PyObject *unused)
{
    int rank, size;
    if (s_rank_size((s_comm_t *)op, &rank, &size) < 0)
        return NULL;
    return PyLong_FromLong(rank);
}

static PyObject *s_comm_get_size(PyObject *op, PyObject *unused)
{
    int rank, size;
    if (s_rank_size((s_comm_t *)op, &rank, &size) < 0)
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
    s_comm_t *self = (s_comm_t *)op;
    if (s_check(self) < 0)
        return NULL;
    MPI_Request req;
    int rc = MPI_Ibarrier(self->comm, &req);
    if (s_finish(self, rc, &req, "MPI_Ibarrier") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *s_comm_bcast(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"obj", "root", NULL};
    s_comm_t *self = (s_comm_t *)op;
    PyObject *obj = Py_None;
    int root = 0, rank, size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Oi:bcast", kwlist, &obj, &root))
        return NULL;
    if (s_rank_size(self, &rank, &size) < 0 || s_check_root(root, size) < 0)
        return NULL;
    return s_bcast(self, obj, root, rank, "bcast");
}

static PyObject *s_comm_gather(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sendobj", "root", NULL};
    s_comm_t *self = (s_comm_t *)op;
    PyObject *obj = Py_None, *items;
    int root = 0, rank, size, late;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Oi:gather", kwlist, &obj, &root))
        return NULL;
    if (s_rank_size(self, &rank, &size) < 0 || s_check_root(root, size) < 0)
        return NULL;
    if (s_gather(self, obj, root, rank, size, &items, "gather", &late) < 0)
        return NULL;
    return items ? items : Py_NewRef(Py_None);
}

static PyObject *s_comm_allgather(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sendobj", NULL};
    s_comm_t *self = (s_comm_t *)op;
    PyObject *obj = Py_None, *items;
    int rank, size, late;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:allgather", kwlist, &obj))
        return NULL;
    if (s_rank_size(self, &rank, &size) < 0)
        return NULL;
    if (s_gather(self, obj, -1, rank, size, &items, "allgather", &late) < 0)
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
        PyObject *data = s_dumps(PySequence_Fast_GET_ITEM(seq, i));
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
    s_comm_t *self = (s_comm_t *)op;
    PyObject *obj = Py_None, *buf = NULL, *recv = NULL, *result = NULL;
    int root = 0, rank, size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Oi:scatter", kwlist, &obj, &root))
        return NULL;
    if (s_rank_size(self, &rank, &size) < 0 || s_check_root(root, size) < 0)
        return NULL;
    int *counts = PyMem_Calloc((size_t)size, sizeof(int));
    int *displs = PyMem_Calloc((size_t)size, sizeof(int));
    PMP_ASSERT(counts && displs);
    int64_t hdr[2] = {S_HDR_OK, 0};
    if (rank == root && s_scatter_prepare(obj, size, &buf, counts, displs) < 0) {
        s_root_send_error(self, root);
        goto done;
    }
    if (s_bcast_header(self, hdr, root) < 0)
        goto done;
    if (hdr[0] != S_HDR_OK) {
        s_recv_error(self, hdr, root, "scatter");
        goto done;
    }
    int mine = 0;
    MPI_Request req;
    int rc = MPI_Iscatter(counts, 1, MPI_INT, &mine, 1, MPI_INT, root, self->comm, &req);
    if (s_finish(self, rc, &req, "MPI_Iscatter") < 0)
        goto done;
    recv = s_alloc_bytes(mine);
    rc = MPI_Iscatterv(buf ? PyBytes_AS_STRING(buf) : NULL, counts, displs, MPI_BYTE,
                       PyBytes_AS_STRING(recv), mine, MPI_BYTE, root, self->comm, &req);
    if (s_finish(self, rc, &req, "MPI_Iscatterv") < 0)
        goto done;
    result = s_loads(PyBytes_AS_STRING(recv), mine);
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
    s_comm_t *self = (s_comm_t *)op;
    PyObject *obj = Py_None, *opobj = NULL, *items;
    int root = 0, rank, size, late;
    s_opref_t ref;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOi:reduce", kwlist, &obj, &opobj, &root))
        return NULL;
    if (s_op_resolve(opobj, &ref) < 0)
        return NULL;
    if (s_rank_size(self, &rank, &size) < 0 || s_check_root(root, size) < 0)
        return NULL;
    if (s_gather(self, obj, root, rank, size, &items, "reduce", &late) < 0)
        return NULL;
    if (!items)
        Py_RETURN_NONE;
    PyObject *result = s_fold(items, &ref);
    Py_DECREF(items);
    return result;
}

static PyObject *s_comm_allreduce(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sendobj", "op", NULL};
    s_comm_t *self = (s_comm_t *)op;
    PyObject *obj = Py_None, *opobj = NULL, *items, *result = NULL;
    int rank, size, late;
    s_opref_t ref;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:allreduce", kwlist, &obj, &opobj))
        return NULL;
    if (s_op_resolve(opobj, &ref) < 0)
        return NULL;
    if (s_rank_size(self, &rank, &size) < 0)
        return NULL;
    /* A root that cannot unpickle a contribution (late) still owes the
     * others the broadcast: its exception goes out in place of the result. */
    if (s_gather(self, obj, 0, rank, size, &items, "allreduce", &late) < 0 && !late)
        return NULL;
    if (items) {
        result = s_fold(items, &ref); /* NULL: the exception goes to every rank */
        Py_DECREF(items);
    }
    PyObject *shared = s_bcast(self, result, 0, rank, "allreduce");
    Py_XDECREF(result);
    return shared;
}

static PyObject *s_comm_send(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"obj", "dest", "tag", NULL};
    s_comm_t *self = (s_comm_t *)op;
    PyObject *obj;
    int dest, tag = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oi|i:send", kwlist, &obj, &dest, &tag))
        return NULL;
    if (s_check(self) < 0)
        return NULL;
    PyObject *data = s_dumps(obj);
    if (!data)
        return NULL;
    if (PyBytes_GET_SIZE(data) > INT_MAX) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_OverflowError, "send: the pickled object exceeds 2 GiB");
        return NULL;
    }
    MPI_Request req;
    int rc = MPI_Isend(PyBytes_AS_STRING(data), (int)PyBytes_GET_SIZE(data), MPI_BYTE, dest, tag,
                       self->comm, &req);
    rc = s_finish(self, rc, &req, "MPI_Isend");
    Py_DECREF(data);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Probes for a matching message and receives it: new reference or NULL. */
static PyObject *s_recv(s_comm_t *self, int source, int tag)
{
    MPI_Message msg;
    MPI_Status status;
    int rc = s_probe(self, source, tag, &msg, &status);
    if (rc < 0)
        return NULL; /* a signal handler raised */
    if (rc != MPI_SUCCESS)
        return s_mpi_error(rc, "MPI_Improbe");
    int count = 0;
    rc = MPI_Get_count(&status, MPI_BYTE, &count);
    if (rc != MPI_SUCCESS || count == MPI_UNDEFINED)
        count = 0; /* cannot happen: send() limits a message to 2 GiB */
    PyObject *buf = s_alloc_bytes(count);
    MPI_Request req;
    rc = MPI_Imrecv(PyBytes_AS_STRING(buf), count, MPI_BYTE, &msg, &req);
    if (s_finish(self, rc, &req, "MPI_Imrecv") < 0) {
        Py_DECREF(buf);
        return NULL;
    }
    PyObject *obj = s_loads(PyBytes_AS_STRING(buf), count);
    Py_DECREF(buf);
    return obj;
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
    s_comm_t *self = (s_comm_t *)op;
    PyObject *buf = Py_None, *status = Py_None;
    int source = MPI_ANY_SOURCE, tag = MPI_ANY_TAG;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OiiO:recv", kwlist, &buf, &source, &tag,
                                     &status))
        return NULL;
    if (s_no_status(status) < 0 || s_check(self) < 0)
        return NULL;
    return s_recv(self, source, tag);
}

static PyObject *s_comm_sendrecv(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"sendobj", "dest",    "sendtag", "recvbuf",
                             "source",  "recvtag", "status",  NULL};
    s_comm_t *self = (s_comm_t *)op;
    PyObject *obj, *recvbuf = Py_None, *status = Py_None;
    int dest, sendtag = 0, source = MPI_ANY_SOURCE, recvtag = MPI_ANY_TAG;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oi|iOiiO:sendrecv", kwlist, &obj, &dest,
                                     &sendtag, &recvbuf, &source, &recvtag, &status))
        return NULL;
    if (s_no_status(status) < 0 || s_check(self) < 0)
        return NULL;
    PyObject *data = s_dumps(obj);
    if (!data)
        return NULL;
    if (PyBytes_GET_SIZE(data) > INT_MAX) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_OverflowError, "sendrecv: the pickled object exceeds 2 GiB");
        return NULL;
    }
    MPI_Request req;
    int rc = MPI_Isend(PyBytes_AS_STRING(data), (int)PyBytes_GET_SIZE(data), MPI_BYTE, dest,
                       sendtag, self->comm, &req);
    if (rc != MPI_SUCCESS) {
        Py_DECREF(data);
        return s_mpi_error(rc, "MPI_Isend");
    }
    PyObject *result = s_recv(self, source, recvtag);
    s_wait(self, 1, &req); /* the send is posted: it must complete either way */
    Py_DECREF(data);
    return result;
}

static PyObject *s_comm_split(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"color", "key", NULL};
    s_comm_t *self = (s_comm_t *)op;
    int color = 0, key = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|ii:Split", kwlist, &color, &key))
        return NULL;
    if (s_check(self) < 0)
        return NULL;
    /* There is no non-blocking split: meet in a sleeping barrier first, so
     * that the blocking MPI_Comm_split below only waits for stragglers. */
    MPI_Request req;
    int rc = MPI_Ibarrier(self->comm, &req);
    if (s_finish(self, rc, &req, "MPI_Ibarrier") < 0)
        return NULL;
    MPI_Comm newcomm = MPI_COMM_NULL;
    self->busy++;
    PyThreadState *ts = PyEval_SaveThread();
    rc = MPI_Comm_split(self->comm, color, key, &newcomm);
    PyEval_RestoreThread(ts);
    self->busy--;
    if (rc != MPI_SUCCESS)
        return s_mpi_error(rc, "MPI_Comm_split");
    if (newcomm == MPI_COMM_NULL) /* color == UNDEFINED */
        Py_RETURN_NONE;
    return pmp_comm_wrap(PyType_GetModule(Py_TYPE(op)), newcomm, 1);
}

static PyObject *s_comm_dup(PyObject *op, PyObject *unused)
{
    s_comm_t *self = (s_comm_t *)op;
    if (s_check(self) < 0)
        return NULL;
    MPI_Comm newcomm = MPI_COMM_NULL;
    MPI_Request req;
    int rc = MPI_Comm_idup(self->comm, &newcomm, &req);
    if (s_finish(self, rc, &req, "MPI_Comm_idup") < 0)
        return NULL;
    return pmp_comm_wrap(PyType_GetModule(Py_TYPE(op)), newcomm, 1);
}

static PyObject *s_comm_free(PyObject *op, PyObject *unused)
{
    s_comm_t *self = (s_comm_t *)op;
    if (s_check(self) < 0)
        return NULL;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Free: another thread is communicating on this communicator");
        return NULL;
    }
    if (self->owned) {
        int rc = MPI_Comm_free(&self->comm);
        if (rc != MPI_SUCCESS)
            return s_mpi_error(rc, "MPI_Comm_free");
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
    s_comm_t *self = (s_comm_t *)op;
    if (s_check(self) < 0)
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
    s_comm_t *self = (s_comm_t *)op;
    int code = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|i:Abort", kwlist, &code))
        return NULL;
    if (s_check(self) < 0)
        return NULL;
    fflush(NULL);
    MPI_Abort(self->comm, code);
    Py_RETURN_NONE;
}

static PyObject *s_comm_py2f(PyObject *op, PyObject *unused)
{
    s_comm_t *self = (s_comm_t *)op;
    if (s_check(self) < 0)
        return NULL;
    return PyLong_FromLong((long)MPI_Comm_c2f(self->comm));
}

static PyObject *s_comm_handle(PyObject *op, void *closure)
{
    s_comm_t *self = (s_comm_t *)op;
    /* MPICH: an int; Open MPI: a pointer.  Either converts to intptr_t. */
    return PyLong_FromSsize_t((Py_ssize_t)(intptr_t)self->comm);
}

static PyObject *s_comm_repr(PyObject *op)
{
    s_comm_t *self = (s_comm_t *)op;
    int rank, size;
    if (self->comm == MPI_COMM_NULL || s_rank_size(self, &rank, &size) < 0) {
        PyErr_Clear();
        return PyUnicode_FromString("<_pympipool_runtime.Comm (freed)>");
    }
    return PyUnicode_FromFormat("<_pympipool_runtime.Comm rank %d of %d>", rank, size);
}

static void s_comm_dealloc(PyObject *op)
{
    s_comm_t *self = (s_comm_t *)op;
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
    .basicsize = sizeof(s_comm_t),
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

    PyObject *op_type = PyType_FromModuleAndSpec(module, &s_op_spec, NULL);
    if (!op_type)
        return -1;
    rc = PyModule_AddObjectRef(module, "Op", op_type);
    for (int i = 0; i < S_NOPS && rc == 0; i++) {
        s_op_t *op = (s_op_t *)((PyTypeObject *)op_type)->tp_alloc((PyTypeObject *)op_type, 0);
        if (!op) {
            rc = -1;
            break;
        }
        op->code = i;
        rc = PyModule_AddObjectRef(module, s_op_names[i], (PyObject *)op);
        Py_DECREF(op);
    }
    Py_DECREF(op_type);
    if (rc < 0)
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
    s_comm_t *self = NULL;
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
            s_mpi_error(rc, "MPI_Comm_set_errhandler");
        else
            self = (s_comm_t *)((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, 0);
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
