/*
 * pmp_executor.h - the frontend's public API: one executor object per
 * Executor/Pool in the user's process.  No Python in here.
 *
 * An executor is an actor: pmp_executor_new() starts one I/O thread and
 * returns only after that thread is ready (socket bound, runtime launched
 * when asked to); pmp_executor_destroy() returns only after the thread is
 * joined and the runtime is gone.  The I/O thread alone owns the ZeroMQ
 * ROUTER socket, bound to ipc://<dir>/frontend where <dir> is a fresh
 * directory of mode 0700 (or, with cfg->hostname, to tcp://<address>:<port>).
 * Only the runtime can complete a handshake with it: fresh credentials per
 * executor (PLAIN password on ipc, CURVE keys on tcp) reach the runtime in
 * <dir>/credentials (mode 0600), written right before every launch and
 * removed once every group said hello, when the job exits and on destroy;
 * a ZAP handler served by the I/O thread admits nothing else and logs every
 * refusal (docs/security.md).  Callers on any thread talk to it through a
 * mutex-protected task queue plus an eventfd wake-up; the I/O thread talks
 * back through a mutex-protected completion queue that callers drain with
 * pmp_executor_wait().  All functions below are thread-safe unless stated.
 *
 * Scheduling: one FIFO queue of tasks; every group that said hello may hold
 * up to pipeline_depth tasks; a task goes to the group with the fewest in
 * flight the moment one has room (O(1) per task, whatever the number of
 * groups), except that a group already holding more than half its window
 * gets no more until it is down to half, and then its share of the queue
 * at once (docs/protocol.md, "Batches").  With one group and depth 1
 * this is the strict first-in-first-out, one-at-a-time order of Executor.
 * Broadcasts (INIT, DEFINE, FORGET) reach every group in order with the
 * tasks.
 *
 * Faults: a job that dies is relaunched up to restart_limit times
 * (PMP_EVENT_RESTART, PMP_DONE_LOST for the tasks that were running), and
 * a task that overruns its hard time limit completes as PMP_DONE_TIMEOUT
 * and gets the job killed and relaunched; otherwise the job's death ends
 * the executor (PMP_EVENT_EXIT, PMP_DONE_BROKEN).
 *
 * The job's output: its stderr is copied to this process's fd 2 and its
 * last 8 KiB are kept for error texts; its stdout comes through a pipe
 * that the I/O thread relays to this process's fd 1 (as it was at launch),
 * without the MPI launcher's own failure banner (MPICH's "BAD TERMINATION
 * ..." box), which goes to stderr and the kept tail instead, or nowhere
 * when the frontend ended the job on purpose (destroy, a time limit); after
 * such a kill the job's stderr is no longer echoed either (pmp_launcher.h).
 * When this process is itself a rank of an MPI job (or a task of an srun
 * step), the launcher gets an environment without the enclosing job's
 * launcher variables (pmp_environ.h), so that a nested launch works.
 *
 * Fork: an executor belongs to the process that created it.  In a child
 * made by fork() it is a dead object: every function below that would
 * touch its locks, socket or thread fails at once with errno = PMP_EFORKED
 * and, where it takes err, the sentence "this executor belongs to process
 * P; it cannot be used in a forked child (pid C)"; pmp_executor_destroy()
 * returns at once without joining, signalling, removing anything of the
 * parent's or taking a lock, and leaks the object (the child's exit or
 * exec reclaims it; its descriptors are close-on-exec).  The parent is not
 * affected.
 */
#ifndef PMP_EXECUTOR_H
#define PMP_EXECUTOR_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pmp_error.h"
#include "pmp_frame.h" /* PMP_EXPORT, PMP_EFORKED, pmp_buffer_t, pmp_frame_t */
#include "pmp_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pmp_executor pmp_executor_t;

typedef struct {
    int ranks;                        /* MPI ranks in the job, >= 1 */
    int ranks_per_group;              /* >= 1, divides ranks */
    int pipeline_depth;               /* tasks one group may hold at once, >= 1 */
    int pipeline_depth_max;           /* 0: pipeline_depth, fixed.  Otherwise >= pipeline_depth:
                                         while the tasks are short a group may hold more, up
                                         to this, as long as they are about
                                         PMP_EXECUTOR_WINDOW_NS of work (pmp_window.h) */
    int launch;                       /* 1: start the runtime here; 0: only build the command
                                         (a queue adapter starts it) */
    int oversubscribe;                /* add --oversubscribe (Open MPI only) */
    int flux;                         /* launch with "flux run" instead of mpiexec */
    int srun;                         /* launch with srun (a step of the SLURM allocation
                                         this process runs in) instead of mpiexec; not
                                         with flux */
    const char *mpi_flavour;          /* "mpich" or "openmpi" (decides flags) */
    const char *mpiexec;              /* name or path of mpiexec, or of srun with srun;
                                         looked up in PATH */
    const char *srun_mpi;             /* srun: the PMI plugin (--mpi=<this>: "pmi2" for
                                         MPICH, "pmix" for Open MPI), or NULL for the
                                         site's MpiDefault */
    int srun_exact;                   /* srun: add --exact (SLURM >= 20.11) */
    int threads_per_core;             /* 0: not set.  Otherwise the CPUs (threads) of every
                                         rank: srun --cpus-per-task, flux run --cores-per-task,
                                         and OMP_NUM_THREADS=<this> on every rank */
    const char *const *launcher_args; /* NULL-terminated extra arguments for the launcher
                                        (mpiexec, srun or flux run), put before the
                                        runtime, or NULL */
    const char *const *hosts;         /* mpiexec: NULL-terminated host names to run the
                                         ranks on (MPICH -hosts, Open MPI --host), or NULL */
    const char *hostfile;             /* mpiexec: a host file (MPICH -f, Open MPI
                                         --hostfile), or NULL; not with hosts */
    const char *runtime;              /* path of pympipool-runtime */
    const char *cwd;                  /* working directory for the launched job, or NULL */
    const char *const *runtime_args;  /* NULL-terminated extra arguments for the
                                         runtime (Python environment), or NULL */
    int restart_limit;                /* times the job is relaunched after it died, >= 0;
                                         must be 0 without launch */
    int64_t run_time_max_ms;          /* per call; 0: no limit.  A task that runs longer
                                         than ncalls * run_time_max_ms + run_time_grace_ms
                                         is failed and the job is killed and relaunched */
    int run_time_grace_ms;            /* the grace above; 0: PMP_EXECUTOR_RUN_TIME_GRACE_MS */
    const char *hostname;             /* NULL: ipc:// in the private directory, PLAIN
                                         authentication.  Otherwise an IP address or the
                                         name of a network interface of this host to listen
                                         on with TCP (port chosen by the system) and CURVE;
                                         a wildcard ("*", "0.0.0.0", "::") is refused.
                                         Copied; EINVAL naming it when it cannot be bound. */
} pmp_executor_config_t;

/* The work a group may hold beyond pipeline_depth (see pipeline_depth_max). */
#define PMP_EXECUTOR_WINDOW_NS 2000000

/* Default grace of the hard time limit: the runtime's own per-call timer
 * fires at run_time_max and usually ends the call; the frontend kills the
 * job only when the call is still running this long after that. */
#define PMP_EXECUTOR_RUN_TIME_GRACE_MS 1000

/* Creates the executor: validates cfg, makes the 0700 directory, binds the
 * ROUTER socket, builds the launch command and, with cfg->launch, starts it
 * (argv as a list, never through a shell; its stderr captured; the job gets
 * SIGTERM if the I/O thread dies).  The strings in cfg are copied.
 * Returns NULL with errno and a sentence in err when cfg is invalid
 * (EINVAL), a program is not found (ENOENT: the message names it: "mpiexec",
 * "flux", the runtime), the directory or socket cannot be made, or the
 * thread cannot start; nothing is left behind on failure. */
PMP_EXPORT pmp_executor_t *pmp_executor_new(const pmp_executor_config_t *cfg, pmp_error_t *err);

/* Stops everything and frees the executor: sends SHUTDOWN to every group,
 * waits up to grace_ms for the job to exit, then SIGTERM and, 2 s later,
 * SIGKILL to its process group; joins the I/O thread; removes the socket
 * directory; drops undelivered completions (their frames are freed, their
 * tasks get no further notice).  NULL-safe; sets *self_p to NULL.  In a
 * forked child: returns at once and leaks the object (see "Fork" above). */
PMP_EXPORT void pmp_executor_destroy(pmp_executor_t **self_p, int grace_ms);

/* The endpoint the runtime connects to ("ipc:///tmp/pympipool-XXXXXX/frontend",
 * or "tcp://10.0.0.5:41234" with a hostname).
 * Owned by the executor, valid until destroy. */
PMP_EXPORT const char *pmp_executor_endpoint(const pmp_executor_t *self);

/* The launch command as a NULL-terminated argv, owned by the executor, valid
 * until destroy: [mpiexec, -n, N, (--oversubscribe), runtime, --endpoint, E,
 * --ranks-per-group, K, --frontend-pid, P, --frontend-host, H, --credentials, F,
 * runtime_args...] (with the launcher's flags of the configuration before the
 * runtime: see pmp_command_argv), [srun, --ntasks=N, ..., runtime, ...] or
 * [flux, run, -n, N, runtime, ...]. */
PMP_EXPORT const char *const *pmp_executor_command(const pmp_executor_t *self);

/* Process id of the launched job (mpiexec / flux), or -1 if not launched. */
PMP_EXPORT pid_t pmp_executor_pid(const pmp_executor_t *self);

/* 1 if this process is a forked child of the one that created the
 * executor (every other call then fails with PMP_EFORKED), 0 otherwise.
 * Cheap (an integer compare); works in the child. */
PMP_EXPORT int pmp_executor_forked(const pmp_executor_t *self);

/* Process id of the process that created the executor. */
PMP_EXPORT pid_t pmp_executor_owner(const pmp_executor_t *self);

/* Queues a message for the runtime.  type is PMP_MSG_TASK or PMP_MSG_INIT;
 * bufs[0] is the payload, bufs[1..] the out-of-band buffers (nbufs >= 1).
 * task_id must be unique and non-zero; flags are PMP_FLAG_* task flags.
 * A TASK completes later with exactly one completion carrying task_id.
 * An INIT is sent to every group before any task, including groups that
 * connect later; it has no completion; at most one, before the first TASK.
 * Returns 0, or -1 with errno and a sentence in err; on failure no free_fn
 * is called and the caller keeps its buffers:
 *   EINVAL  bad type, id, flags or buffers; a second INIT or an INIT after a TASK
 *   ESHUTDOWN  pmp_executor_close() was called
 *   EPIPE   the job has exited (err holds why, with the tail of its stderr)
 *   ENOMEM  allocation failed
 *   PMP_EFORKED  called in a forked child */
PMP_EXPORT int pmp_executor_submit(pmp_executor_t *self, uint64_t task_id, int type, uint32_t flags,
                                   const pmp_buffer_t *bufs, size_t nbufs, pmp_error_t *err);

/* As pmp_executor_submit for a TASK that carries ncalls calls (a CHUNK):
 * its hard time limit is ncalls * run_time_max_ms + the grace.
 * pmp_executor_submit is this with ncalls = 1. */
PMP_EXPORT int pmp_executor_submit_calls(pmp_executor_t *self, uint64_t task_id, int type,
                                         uint32_t flags, const pmp_buffer_t *bufs, size_t nbufs,
                                         uint32_t ncalls, pmp_error_t *err);

/* One task of pmp_executor_submit_many(): the arguments of
 * pmp_executor_submit_calls() for a TASK. */
typedef struct {
    uint64_t task_id;         /* unique and non-zero */
    uint32_t flags;           /* PMP_FLAG_* task flags */
    uint32_t ncalls;          /* the calls it carries (a CHUNK); 0 is taken as 1 */
    const pmp_buffer_t *bufs; /* payload first, then out-of-band buffers */
    size_t nbufs;             /* >= 1 */
} pmp_submission_t;

/* Queues n TASKs, in order, as n calls of pmp_executor_submit_calls()
 * would, all or none, under one lock and with one wake-up of the I/O
 * thread: a caller with many tasks at hand (a map's chunks, a burst of
 * calls) pays the mutex and the wake-up once.  Each task completes on its
 * own.  Returns 0, or -1 with errno and a sentence in err as
 * pmp_executor_submit (EINVAL also for n = 0, a NULL subs, and two tasks
 * of the batch with the same id); then nothing is queued, no free_fn is
 * called, and the caller keeps every buffer.  Cost: one allocation per
 * task (one more per task with more than two copied buffers), outside the
 * lock; O(n) under it. */
PMP_EXPORT int pmp_executor_submit_many(pmp_executor_t *self, const pmp_submission_t *subs,
                                        size_t n, pmp_error_t *err);

/* Queues n TASKs, task_ids[i] for group groups[i] only, all carrying the
 * same frames (bufs, shared between them, not copied; a zero-copy buffer
 * is released once, after the last of them), all or none: a caller that
 * runs one call on several groups (the members of one MPI call) hands
 * them over together, and the I/O thread sees every one or none.  A
 * group is the runtime's number of it, 0 .. ranks / ranks_per_group - 1
 * (the group of world ranks group * ranks_per_group ...; the "group" of
 * its hello).  A pinned task bypasses the least-loaded pick: it waits
 * until its group has said hello and has room (its load below the
 * pipeline window), then goes to it; the tasks pinned to one group go to
 * it first in, first out.  Each round of the I/O thread serves the pinned
 * tasks before the others, so a group's room goes to what was pinned to
 * it; a pinned task counts in its group's load like any other.  Cost:
 * O(n) here; O(pinned tasks queued x groups) per round of the I/O thread,
 * nothing while none is queued: meant for callers that pin tasks to
 * groups they know are free.  Each task completes on its own, as any
 * TASK.  cancel, cancel_all, pending, close, the job's exit
 * (PMP_DONE_BROKEN) and destroy treat pinned tasks as any other.  A
 * restart is the difference: a pinned task was meant for a group of the
 * job that died, so every pinned task still queued then completes as
 * PMP_DONE_LOST too, with those the groups held; none of them runs on the
 * new job.  Returns 0, or -1 with errno and a sentence in err as
 * pmp_executor_submit (nothing is queued then, and no free_fn called),
 * EINVAL also for n = 0, a group out of range or a task id used twice. */
PMP_EXPORT int pmp_executor_submit_to(pmp_executor_t *self, const int *groups,
                                      const uint64_t *task_ids, size_t n, uint32_t flags,
                                      const pmp_buffer_t *bufs, size_t nbufs, pmp_error_t *err);

/* Number of times the job was relaunched so far (after deaths and after
 * time limits); -1 with errno = PMP_EFORKED in a forked child. */
PMP_EXPORT int pmp_executor_restarts(pmp_executor_t *self);

/* Interrupts the calls running now: sends SIGINT to every rank on this
 * host of every group that holds a task (a task sent and not completed),
 * as named by the group's hello and watched through a pidfd, so a rank
 * that has exited (or a recycled pid) is never signalled.  Ranks on other
 * hosts, and ranks of a runtime too old to name them, are not reached.
 * What SIGINT does there is the runtime's business (the worker raises
 * KeyboardInterrupt in the running call).  The signals are sent by the I/O
 * thread, which owns the group table; the caller waits for it (at most one
 * turn of its loop).  Returns the number of ranks signalled (0 when no
 * group holds a task, the job has exited or the executor is being
 * destroyed), or -1 with errno = PMP_EFORKED in a forked child.
 * Thread-safe, but not concurrent with pmp_executor_destroy(). */
PMP_EXPORT int pmp_executor_interrupt(pmp_executor_t *self);

/* Sends a message to every group, in order with the tasks submitted before
 * and after it, and to every group that connects later (after the INIT):
 *   PMP_MSG_DEFINE  keep bufs (a pickled callable) under key on every group
 *                   until a FORGET of that key; tasks with PMP_FLAG_FN_KEY
 *                   refer to it.  A key may be defined once at a time.
 *   PMP_MSG_FORGET  drop the DEFINE of key everywhere (bufs may be NULL and
 *                   nbufs 0); call it only after every task that uses key
 *                   has completed.
 * key must be non-zero.  No completion.  Ownership of bufs and failure
 * behaviour as for pmp_executor_submit (EINVAL for an unknown type, a zero
 * key, a DEFINE of a key already defined or a FORGET of an unknown key),
 * except that a FORGET of a defined key also succeeds after close() and
 * after the job has exited, so that cleanup never fails (and PMP_EFORKED in a
 * forked child, as every call). */
PMP_EXPORT int pmp_executor_broadcast(pmp_executor_t *self, int type, uint64_t key,
                                      const pmp_buffer_t *bufs, size_t nbufs, pmp_error_t *err);

/* Removes a task that has not been sent to a group yet.  Returns 1 if it
 * was removed (it gets no completion), 0 if it was already sent, finished
 * or is unknown, -1 with errno = PMP_EFORKED in a forked child. */
PMP_EXPORT int pmp_executor_cancel(pmp_executor_t *self, uint64_t task_id);

/* Removes every task not yet sent.  Stores a malloc'ed array of their ids
 * in *ids (caller frees; NULL when none) and the count in *n.  Returns 0,
 * or -1 with errno = ENOMEM (nothing removed) or PMP_EFORKED. */
PMP_EXPORT int pmp_executor_cancel_all(pmp_executor_t *self, uint64_t **ids, size_t *n);

/* Number of tasks submitted but not yet sent to a group (0 with errno =
 * PMP_EFORKED in a forked child). */
PMP_EXPORT size_t pmp_executor_pending(pmp_executor_t *self);

/* No more submits.  Tasks already queued still run; once every one has
 * completed, the groups get SHUTDOWN, the job is waited for, and a
 * PMP_EVENT_CLOSED completion is the last one delivered.  Idempotent.
 * Returns 0, or -1 with errno = PMP_EFORKED in a forked child. */
PMP_EXPORT int pmp_executor_close(pmp_executor_t *self);

/* ---- completions --------------------------------------------------------- */

typedef enum {
    PMP_DONE_RESULT = 1,   /* task returned: frames = payload (+ rank table layout
                              when flags has PMP_FLAG_PER_RANK) and buffers */
    PMP_DONE_ERROR = 2,    /* task raised: frames[0] = pickled error description */
    PMP_DONE_BROKEN = 3,   /* task lost because the job died: text says why */
    PMP_EVENT_HELLO = 4,   /* a group connected: text = hello payload */
    PMP_EVENT_EXIT = 5,    /* the job exited: text = status and stderr tail;
                              every task still pending gets PMP_DONE_BROKEN */
    PMP_EVENT_CLOSED = 6,  /* close() finished (or the job is gone and close()
                             was called): nothing follows */
    PMP_EVENT_RESTART = 7, /* the job died (or was killed for a time limit) and
                              was relaunched: text says why and "restart k of N";
                              status as for EXIT.  The executor goes on: tasks
                              still queued run on the new job, which gets the
                              INIT and the kept DEFINEs again.  Delivered before
                              the completions of the tasks that were lost. */
    PMP_DONE_LOST = 8,     /* task lost in a restart (it was running, or held by
                              a group, when the job died): text says why; the
                              executor is not broken */
    PMP_DONE_TIMEOUT = 9   /* task ran longer than its hard time limit: text says
                              so; the job is killed and relaunched (this restart
                              does not count against restart_limit) */
} pmp_completion_kind_t;

typedef struct pmp_completion pmp_completion_t;

/* Waits up to timeout_ms (-1: forever, 0: poll) for the next completion.
 * Returns it (caller owns it: pmp_completion_destroy), or NULL with errno =
 * EAGAIN on timeout.  After PMP_EVENT_CLOSED has been returned, returns NULL
 * with errno = ESHUTDOWN at once; in a forked child with PMP_EFORKED.  The
 * zero-copy buffers of a task are released (their free_fn called) before
 * its completion is queued, unless ZeroMQ itself still holds them (it
 * releases a sent frame right after writing its last byte). */
PMP_EXPORT pmp_completion_t *pmp_executor_wait(pmp_executor_t *self, int timeout_ms);

/* As pmp_executor_wait, but takes up to max (>= 1) completions at once
 * into out, in order, under one lock: the first waited for as there, the
 * others those queued behind it (a PMP_EVENT_CLOSED is always the last).
 * The caller owns each (pmp_completion_destroy).  Returns how many were
 * taken, or 0 with errno = EAGAIN (timeout), ESHUTDOWN (CLOSED was
 * returned before), EINVAL (out NULL or max 0) or PMP_EFORKED. */
PMP_EXPORT size_t pmp_executor_wait_many(pmp_executor_t *self, pmp_completion_t **out, size_t max,
                                         int timeout_ms);

PMP_EXPORT int pmp_completion_kind(const pmp_completion_t *c);
PMP_EXPORT uint64_t pmp_completion_task_id(const pmp_completion_t *c); /* 0 for events */
PMP_EXPORT uint32_t pmp_completion_flags(const pmp_completion_t *c);
/* Text of BROKEN, LOST, TIMEOUT, HELLO, EXIT and RESTART completions ("" otherwise);
 * owned by c. */
PMP_EXPORT const char *pmp_completion_text(const pmp_completion_t *c);
/* Exit status of EVENT_EXIT and EVENT_RESTART as from waitpid (-1 otherwise). */
PMP_EXPORT int pmp_completion_status(const pmp_completion_t *c);
/* Frames after the header (payload first); 0 for events and BROKEN. */
PMP_EXPORT size_t pmp_completion_nframes(const pmp_completion_t *c);
/* Moves frame i out of the completion; the caller owns it and frees it with
 * pmp_frame_destroy.  Returns NULL if i is out of range or already taken. */
PMP_EXPORT pmp_frame_t *pmp_completion_take_frame(pmp_completion_t *c, size_t i);
/* Frees c and every frame not taken.  NULL-safe; nulls *self_p. */
PMP_EXPORT void pmp_completion_destroy(pmp_completion_t **self_p);

#ifdef __cplusplus
}
#endif

#endif
