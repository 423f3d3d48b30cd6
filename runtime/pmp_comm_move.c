/*
 * pmp_comm_move.c - how the communicator moves Python objects between
 * ranks (see pmp_comm_internal.h; the methods in pmp_comm.c are built from
 * these pieces).
 *
 * Every object travels as its pickle (protocol 5, buffers in band) with
 * non-blocking MPI calls completed by pmp_mpi_waitall() with the GIL
 * released.  Sizes travel first, so every rank knows what follows: a
 * broadcast sends a header {kind, length} and then the bytes in chunks of
 * S_CHUNK (no 2 GiB limit); a gather allgathers the lengths and then moves
 * the bytes with one gatherv (or allgatherv), 2 GiB at most in total.  A
 * receive probes first (MPI_Improbe with the backoff of pmp_mpiwait.h, the
 * one wait that signal handlers may interrupt) and then receives exactly
 * the matched message.
 *
 * Errors reach every rank of a collective: a root that fails broadcasts its
 * exception in place of the data (header PMP_COMM_HDR_EXC), and a rank
 * that cannot pickle its part of a gather sends a negative length, so that
 * no rank is left waiting for data that will not come.
 */
#include <limits.h>
#include <string.h>
#include <time.h>

#include "pmp_comm_internal.h"
#include "pmp_error.h"
#include "pmp_mpiwait.h"

#define S_PICKLE_PROTOCOL 5
#define S_CHUNK (64L * 1024 * 1024) /* bytes per MPI_Ibcast of one broadcast */

#define S_SIGNAL_CHECK_NS 10000000L /* s_probe runs signal handlers every 10 ms */

PyObject *pmp_comm_mpi_error(int rc, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error code %d", rc);
    PyErr_Format(PyExc_RuntimeError, "%s failed: %s", call, text);
    return NULL;
}

/* 0 if the wrapper may be used, -1 with ValueError otherwise. */
int pmp_comm_check(pmp_comm_t *self)
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

/* pmp_comm_check() plus rank and size.  0 or -1 with an exception. */
int pmp_comm_rank_size(pmp_comm_t *self, int *rank, int *size)
{
    if (pmp_comm_check(self) < 0)
        return -1;
    int rc = MPI_Comm_rank(self->comm, rank);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_size(self->comm, size);
    if (rc != MPI_SUCCESS) {
        pmp_comm_mpi_error(rc, "MPI_Comm_rank/MPI_Comm_size");
        return -1;
    }
    return 0;
}

/* The same check on every rank, before any communication: consistent. */
int pmp_comm_check_root(int root, int size)
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
void pmp_comm_wait(pmp_comm_t *self, int n, MPI_Request *reqs)
{
    self->busy++;
    PyThreadState *ts = PyEval_SaveThread();
    pmp_mpi_waitall(n, reqs);
    PyEval_RestoreThread(ts);
    self->busy--;
}

/* One non-blocking call already posted (rc, req): wait for it or raise. */
int pmp_comm_finish(pmp_comm_t *self, int rc, MPI_Request *req, const char *call)
{
    if (rc != MPI_SUCCESS) {
        pmp_comm_mpi_error(rc, call);
        return -1;
    }
    pmp_comm_wait(self, 1, req);
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
 * posted requests (pmp_comm_wait: collectives, sends, the receive itself) are not
 * interrupted: MPI would later write into buffers that are gone, so a rank
 * stuck there is ended by the frontend's hard time limit, which restarts
 * the job (docs/architecture.md, "Faults and restarts"). */
static int s_probe(pmp_comm_t *self, int source, int tag, MPI_Message *msg, MPI_Status *status)
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
PyObject *pmp_comm_alloc_bytes(int64_t n)
{
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!b) {
        fprintf(stderr, "pympipool Comm: cannot allocate a %lld-byte receive buffer\n",
                (long long)n);
        PMP_ASSERT(b != NULL);
    }
    return b;
}

PyObject *pmp_comm_dumps(PyObject *obj)
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

PyObject *pmp_comm_loads(const char *data, int64_t n)
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
static int s_bcast_bytes(pmp_comm_t *self, char *data, int64_t n, int root)
{
    for (int64_t off = 0; off < n; off += S_CHUNK) {
        int count = (int)(n - off < S_CHUNK ? n - off : S_CHUNK);
        MPI_Request req;
        int rc = MPI_Ibcast(data + off, count, MPI_BYTE, root, self->comm, &req);
        if (pmp_comm_finish(self, rc, &req, "MPI_Ibcast") < 0)
            return -1;
    }
    return 0;
}

int pmp_comm_bcast_header(pmp_comm_t *self, int64_t hdr[2], int root)
{
    MPI_Request req;
    int rc = MPI_Ibcast(hdr, 2, MPI_INT64_T, root, self->comm, &req);
    return pmp_comm_finish(self, rc, &req, "MPI_Ibcast");
}

/* On the root, with a Python exception set: broadcasts the exception in
 * place of the data (header PMP_COMM_HDR_EXC and its pickle, or PMP_COMM_HDR_EXC_RAW if it
 * cannot be pickled) and leaves it set.  Always returns -1. */
int pmp_comm_root_send_error(pmp_comm_t *self, int root)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *data = value ? pmp_comm_dumps(value) : NULL;
    if (!data)
        PyErr_Clear();
    int64_t hdr[2] = {data ? PMP_COMM_HDR_EXC : PMP_COMM_HDR_EXC_RAW,
                      data ? PyBytes_GET_SIZE(data) : 0};
    int rc = pmp_comm_bcast_header(self, hdr, root);
    if (rc == 0 && data)
        rc = s_bcast_bytes(self, PyBytes_AS_STRING(data), hdr[1], root);
    Py_XDECREF(data);
    if (rc < 0)
        PyErr_Clear(); /* the root's own error is the one to report */
    PyErr_Restore(type, value, tb);
    return -1;
}

/* On a non-root rank after a header that is not PMP_COMM_HDR_OK: receives the
 * root's exception and raises it here.  Always returns -1. */
int pmp_comm_recv_error(pmp_comm_t *self, const int64_t hdr[2], int root, const char *what)
{
    if (hdr[0] != PMP_COMM_HDR_EXC || hdr[1] <= 0) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s failed on the root (rank %d) with an exception "
                     "that cannot be pickled; see the root's error",
                     what, root);
        return -1;
    }
    PyObject *buf = pmp_comm_alloc_bytes(hdr[1]);
    if (s_bcast_bytes(self, PyBytes_AS_STRING(buf), hdr[1], root) < 0) {
        Py_DECREF(buf);
        return -1;
    }
    PyObject *exc = pmp_comm_loads(PyBytes_AS_STRING(buf), hdr[1]);
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
PyObject *pmp_comm_bcast(pmp_comm_t *self, PyObject *obj, int root, int rank, const char *what)
{
    int64_t hdr[2] = {PMP_COMM_HDR_OK, 0};
    PyObject *data = NULL;
    if (rank == root) {
        data = obj ? pmp_comm_dumps(obj) : NULL;
        if (!data) {
            pmp_comm_root_send_error(self, root);
            return NULL;
        }
        hdr[1] = PyBytes_GET_SIZE(data);
    }
    if (pmp_comm_bcast_header(self, hdr, root) < 0)
        goto fail;
    if (rank != root) {
        if (hdr[0] != PMP_COMM_HDR_OK) {
            pmp_comm_recv_error(self, hdr, root, what);
            return NULL;
        }
        data = pmp_comm_alloc_bytes(hdr[1]);
    }
    if (s_bcast_bytes(self, PyBytes_AS_STRING(data), hdr[1], root) < 0)
        goto fail;
    PyObject *result = pmp_comm_loads(PyBytes_AS_STRING(data), hdr[1]);
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
int pmp_comm_gather(pmp_comm_t *self, PyObject *obj, int root, int rank, int size, PyObject **items,
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

    PyObject *data = pmp_comm_dumps(obj);
    if (!data)
        PyErr_Fetch(&etype, &evalue, &etb); /* raised after the others know */
    int64_t mine = data ? PyBytes_GET_SIZE(data) : -1;
    MPI_Request req;
    int rc = MPI_Iallgather(&mine, 1, MPI_INT64_T, counts, 1, MPI_INT64_T, self->comm, &req);
    if (pmp_comm_finish(self, rc, &req, "MPI_Iallgather") < 0)
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
    recv = receiving ? pmp_comm_alloc_bytes(total) : NULL;
    char *rbuf = recv ? PyBytes_AS_STRING(recv) : NULL;
    if (root < 0) {
        rc = MPI_Iallgatherv(PyBytes_AS_STRING(data), (int)mine, MPI_BYTE, rbuf, icounts, displs,
                             MPI_BYTE, self->comm, &req);
        if (pmp_comm_finish(self, rc, &req, "MPI_Iallgatherv") < 0)
            goto done;
    } else {
        rc = MPI_Igatherv(PyBytes_AS_STRING(data), (int)mine, MPI_BYTE, rbuf, icounts, displs,
                          MPI_BYTE, root, self->comm, &req);
        if (pmp_comm_finish(self, rc, &req, "MPI_Igatherv") < 0)
            goto done;
    }
    Py_CLEAR(data);
    exchanged = 1;
    if (receiving) {
        PyObject *list = PyList_New(size);
        if (!list)
            goto done;
        for (int i = 0; i < size; i++) {
            PyObject *item = pmp_comm_loads(rbuf + displs[i], icounts[i]);
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

/* Probes for a matching message and receives it: new reference or NULL. */
PyObject *pmp_comm_recv(pmp_comm_t *self, int source, int tag)
{
    MPI_Message msg;
    MPI_Status status;
    int rc = s_probe(self, source, tag, &msg, &status);
    if (rc < 0)
        return NULL; /* a signal handler raised */
    if (rc != MPI_SUCCESS)
        return pmp_comm_mpi_error(rc, "MPI_Improbe");
    int count = 0;
    rc = MPI_Get_count(&status, MPI_BYTE, &count);
    if (rc != MPI_SUCCESS || count == MPI_UNDEFINED)
        count = 0; /* cannot happen: send() limits a message to 2 GiB */
    PyObject *buf = pmp_comm_alloc_bytes(count);
    MPI_Request req;
    rc = MPI_Imrecv(PyBytes_AS_STRING(buf), count, MPI_BYTE, &msg, &req);
    if (pmp_comm_finish(self, rc, &req, "MPI_Imrecv") < 0) {
        Py_DECREF(buf);
        return NULL;
    }
    PyObject *obj = pmp_comm_loads(PyBytes_AS_STRING(buf), count);
    Py_DECREF(buf);
    return obj;
}
