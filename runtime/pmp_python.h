/*
 * pmp_python.h - the interpreter embedded in every rank of the runtime.
 *
 * pmp_python_new() starts an isolated CPython (the frontend's interpreter
 * path, sys.path and working directory, no site, no signal handlers),
 * registers the builtin module _pympipool_runtime (the writable Buffer
 * type, the Comm type of pmp_comm.h and _group_comm(), the group's
 * communicator for user functions), imports cloudpickle, the mpi4py guard
 * (pmp_mpi4py_guard.py) and the worker module, whose sources are compiled
 * into the binary, and lets the worker decide whether `comm` is mpi4py's
 * or ours (worker.setup_mpi, from what the build found about mpi4py).  After that the
 * runtime hands it messages: frames go in as Buffer objects without a copy,
 * results come out as Py_buffer views of the objects the worker returned,
 * also without a copy.
 *
 * The GIL: the interpreter's thread state is detached whenever control is
 * in C (MPI waits, zmq_poll), so that Python threads a user function started
 * keep running; every function below takes and gives back the GIL itself.
 * pmp_python_zmq_free() is the one function that may run on another thread
 * (a ZeroMQ I/O thread): it never takes the GIL, it only queues the view on
 * a mutex-protected release list that pmp_python_drain() empties with the
 * GIL held on the main thread.
 */
#ifndef PMP_PYTHON_H
#define PMP_PYTHON_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "pmp_error.h"
#include "pmp_rtmsg.h"

typedef struct pmp_python pmp_python_t;

typedef struct {
    const char *python_executable; /* sys.executable; must exist */
    const char *const *sys_path;   /* exactly these sys.path entries */
    size_t nsys_path;
    int rank; /* rank in the group */
    int size; /* ranks in the group */
    int world_rank;
    const char *host;
    MPI_Comm comm;         /* what user functions get as `comm` (not freed here) */
    MPI_Comm meet, parent; /* duplicates of MPI_COMM_WORLD for per-call communicators
                              (pmp_comm_create_group; not freed here) */
    double run_time_max;   /* per-call time limit in seconds (worker.set_time_limit), 0: none */
    const char *shm_host;  /* the caller's host when it maps shared segments, else NULL */
} pmp_python_config_t;

/* The result of one task on this rank: frame 0 is the pickle (a value when
 * ok, the error tuple of docs/protocol.md otherwise), frames 1.. the
 * out-of-band buffers.  data/size stay valid until the frame is released. */
typedef struct {
    int ok;
    uint32_t flags; /* header flags of the reply: PMP_FLAG_SHM or 0 */
    uint32_t nframes;
    void **data;
    size_t *size;
    void **views; /* per frame: the view to release; NULL once handed over */
} pmp_result_t;

/* Starts the interpreter and imports the worker.  Returns NULL with
 * errno and the cause in err: the interpreter path does not exist, Python
 * could not start, or an import failed (the Python exception text, e.g.
 * "No module named 'cloudpickle'").  An interpreter that started before
 * the failure is finalized again before this returns.  Call at most once
 * per process. */
pmp_python_t *pmp_python_new(const pmp_python_config_t *cfg, pmp_error_t *err);

/* Drains the release list and finalizes the interpreter (Py_FinalizeEx).
 * Call after every ZeroMQ context is terminated.  NULL-safe. */
void pmp_python_destroy(pmp_python_t **self_p);

/* "3.11.2": the version of the linked Python (valid before start). */
const char *pmp_python_version(void);

/* Runs an INIT message on this rank (worker.run_init).  Takes the frames
 * of msg.  Never fails: errors are kept by the worker. */
void pmp_python_run_init(pmp_python_t *self, pmp_rtmsg_t *msg);

/* Runs a DEFINE message on this rank (worker.run_define: keep the function
 * under msg->task_id).  Takes the frames of msg.  Never fails: an
 * unpickling error is kept by the worker for the tasks that use the key. */
void pmp_python_run_define(pmp_python_t *self, pmp_rtmsg_t *msg);

/* Runs a FORGET message on this rank (worker.run_forget).  Never fails. */
void pmp_python_run_forget(pmp_python_t *self, const pmp_rtmsg_t *msg);

/* Runs a TASK message on this rank (worker.run_task, with msg->flags:
 * PMP_FLAG_FN_KEY, PMP_FLAG_CHUNK) and fills *res.  Takes the frames of
 * msg.  Never fails: an exception becomes an error result; allocation
 * failures are fatal. */
void pmp_python_run_task(pmp_python_t *self, pmp_rtmsg_t *msg, pmp_result_t *res);

/* Releases every frame of res not handed over and frees its arrays. */
void pmp_python_result_clear(pmp_python_t *self, pmp_result_t *res);

/* Hands frame i of res over to ZeroMQ: returns the hint to pass with
 * pmp_python_zmq_free to zmq_msg_init_data(); from then on the frame is
 * released when ZeroMQ calls pmp_python_zmq_free (and the next drain), no
 * longer by pmp_python_result_clear.  Main thread only. */
void *pmp_python_result_handoff(pmp_python_t *self, pmp_result_t *res, uint32_t i);

/* zmq_free_fn for frames handed over with pmp_python_result_handoff.
 * Thread-safe, never takes the GIL. */
void pmp_python_zmq_free(void *data, void *hint);

/* Number of frames handed to ZeroMQ and not yet released by a drain. */
size_t pmp_python_pending(const pmp_python_t *self);

/* Releases (with the GIL) every view whose zmq message is gone.  Call on
 * every iteration of the leader's loop. */
void pmp_python_drain(pmp_python_t *self);

#endif
