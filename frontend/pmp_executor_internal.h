/*
 * pmp_executor_internal.h - the executor's shared state and the I/O
 * thread's entry points, for the files that make up the executor:
 * pmp_executor.c (construction and destruction), pmp_executor_calls.c (the
 * public calls: submit, cancel, close, wait...), pmp_executor_io.c (the
 * I/O thread: its loop and sending), pmp_executor_send.c (its tasks over
 * ZeroMQ: batches and packs), pmp_executor_recv.c (its message handlers), pmp_executor_links.c (its
 * local links) and pmp_job.c (the job's life: launch, exit, restart, the hard time limit). Internal
 * to the frontend; nothing else may include it.
 *
 * Ownership.  Every field of struct pmp_executor is under exactly one of
 * three rules, written next to it:
 *   - immutable after pmp_executor_new(): any thread reads it freely;
 *   - guarded by mtx: any thread, holding mtx;
 *   - the I/O thread's: only that thread, with or without mtx (some of
 *     these are written inside its critical sections, for the reasons
 *     given in pmp_executor.c, but no other thread reads them).
 * A function that must be called with mtx held ends in _locked.
 *
 * Failure: out of memory in the I/O thread is fatal (PMP_ASSERT): losing
 * a completion would hang a caller forever.  Everything a caller can get
 * wrong fails in the public API, before the I/O thread sees it.
 */
#ifndef PMP_EXECUTOR_INTERNAL_H
#define PMP_EXECUTOR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "pmp_completion.h"
#include "pmp_completion_queue.h"
#include "pmp_endpoint.h"
#include "pmp_executor.h"
#include "pmp_fork.h"
#include "pmp_launcher.h"
#include "pmp_link.h"
#include "pmp_keyset.h"
#include "pmp_queue.h"
#include "pmp_rankwatch.h"
#include "pmp_sched.h"
#include "pmp_task.h"
#include "pmp_timelimit.h"
#include "pmp_window.h"

/* One group of the job, from its hello on: the I/O thread's. */
typedef struct {
    unsigned char identity[256]; /* its ZeroMQ routing identity, or its link's */
    size_t identity_size;
    pmp_link_t *link; /* ipc: its connection (NULL once closed); tcp: NULL */
    pmp_hello_t hello;
    int gone; /* said GOODBYE or became unreachable */
    int shutdown_sent;
    int corked; /* messages queued on its link by a batch, not yet written */
} pmp_executor_group_t;

struct pmp_executor {
    /* ---- immutable after new() */
    unsigned gen; /* fork generation at creation (pmp_fork.h) */
    pid_t owner;  /* the process that created it */
    int ranks, ranks_per_group, depth, depth_max, launch;
    int restart_limit; /* relaunches allowed after deaths */
    int keep_sent;     /* a restart is possible: tasks keep their frames in flight */
    char *cwd, *exec_path;
    char **argv; /* the command, NULL-terminated */
    /* the socket, its authentication and the credentials file: the
     * creator's, then the I/O thread's once it runs; its address and
     * credentials path never change */
    pmp_endpoint_t *endpoint;
    int efd; /* eventfd: callers wake the I/O thread */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mtx;
    pthread_cond_t ready_cv;      /* start-up handshake */
    pthread_cond_t intr_cv;       /* interrupt requests served */
    pmp_completion_queue_t *done; /* the pointer; its contents are guarded by mtx */

    /* ---- written by the I/O thread, read by callers: atomic */
    pid_t pid; /* the job's launcher process; changes at a restart */
    /* ---- written by both, atomic: the eventfd was written and the I/O
     * thread has not yet started the round that sees why (s_wake) */
    atomic_int wake_pending;

    /* ---- guarded by mtx */
    int ready, start_rc, start_errno;
    pmp_error_t start_err;
    pmp_queue_t *queue;    /* tasks not yet sent, by task id */
    pmp_queue_t *pinned;   /* tasks for one group (task->pin) not yet sent, by task id */
    pmp_queue_t *inflight; /* tasks sent, not completed */
    pmp_queue_t *bcasts;   /* broadcasts not yet sent, by seq */
    pmp_keyset_t *defined; /* keys DEFINEd and not FORGOTten (caller's view) */
    uint64_t next_seq;
    uint64_t top_id; /* the largest task id submitted: a larger one is in no table */
    int init_submitted;
    int any_task;
    /* the broadcasts a late group must get; changed by the I/O thread only */
    pmp_task_t *init_kept;
    pmp_queue_t *kept; /* DEFINEs by key, in order */
    int closing, exited, stop, grace_ms;
    char *exit_text;
    int closed_delivered;
    int restarts; /* relaunches so far (pmp_executor_restarts) */
    /* interrupt(): requests asked (also read without the lock, as a hint)
     * and served, the ranks the last batch reached, and whether the I/O
     * thread has ended */
    uint64_t intr_asked, intr_served;
    int intr_count, io_done;

    /* ---- the I/O thread's */
    pmp_launcher_t *launcher;
    pmp_sched_t *sched;           /* identity -> group, load of each group */
    pmp_window_t *window;         /* how many tasks a group may hold now: the I/O thread's */
    pmp_executor_group_t *groups; /* indexed like sched */
    size_t ngroups, groups_cap;
    size_t hellos;              /* groups that said hello since the last launch */
    int shutdown_sent;          /* every group was sent SHUTDOWN (close or destroy) */
    int restarts_counted;       /* restarts that count against restart_limit */
    int timeout_kill;           /* the job was killed because a task exceeded its time limit */
    pmp_timelimit_t *timelimit; /* the clock of the hard time limit */
    pmp_rankwatch_t *watch;     /* pidfds of the groups' ranks on this host, the first death */
    zmq_pollitem_t *items;      /* poll set */
    size_t items_cap;
    /* ipc: connections that have not said hello yet (pmp_executor_links.c),
     * and what each poll item of the links stands for */
    struct pmp_executor_pending *pending;
    size_t npending, pending_cap;
    uint32_t links_accepted;
    struct pmp_executor_slot *slots;
    size_t nslots, slots_cap;
    int wake_waiters; /* results were queued this round: wake the waiters after the batch */
    int corking;      /* s_step: messages to links are queued, written after the batch */
};

static inline int64_t pmp_executor_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t pmp_executor_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether this process is a forked child of the executor's creator: every
 * public call that would touch a lock, the socket or the thread checks
 * this first and leaves such an inherited copy alone (pmp_executor.h). */
static inline int pmp_executor_in_child(const pmp_executor_t *self)
{
    return __builtin_expect(self->gen != pmp_fork_generation(), 0);
}

/* Wakes the I/O thread: the eventfd it polls with everything else.  Only
 * the first caller since the thread's last round writes it: the round that
 * follows sees every change made before it started (the thread drains the
 * eventfd and then clears wake_pending right after its poll, before it
 * looks at anything), so a
 * stream of submits costs one write and one wake-up, not one per task. */
static inline void pmp_executor_wake(pmp_executor_t *self)
{
    if (atomic_exchange(&self->wake_pending, 1))
        return;
    uint64_t one = 1;
    ssize_t rc = write(self->efd, &one, sizeof one);
    (void)rc; /* EAGAIN: the counter is already non-zero, the thread will wake */
}

/* Queues an event or a task's failure (kind, id, text, status) and wakes
 * the waiters.  mtx held. */
static inline void pmp_executor_deliver_locked(pmp_executor_t *self, int kind, uint64_t id,
                                               const char *text, int status)
{
    pmp_completion_queue_deliver_locked(self->done, pmp_completion_new(kind, id, 0, text, status));
}

/* ---- the I/O thread (pmp_executor_io.c) ---------------------------------- */

/* The I/O thread's body, started by pmp_executor_new() with the executor
 * as arg: launches the job (cfg->launch), reports ready, then polls and
 * serves everything until destroy() asked it to stop and the job is gone;
 * closes the socket before it returns. */
void *pmp_executor_io_main(void *arg);

/* Completes every in-flight task of group gi (or of every group when gi is
 * SIZE_MAX) with kind (PMP_DONE_BROKEN, ...) and text, releasing each
 * task's frames first.  O(tasks in flight).  mtx held; I/O thread. */
void pmp_executor_io_fail_inflight_locked(pmp_executor_t *self, size_t gi, int kind,
                                          const char *text);

/* Group g left or cannot be reached: it gets nothing more.  I/O thread. */
void pmp_executor_io_group_gone(pmp_executor_t *self, pmp_executor_group_t *g);

/* The index of group g in the group table (and in pmp_sched). */
static inline size_t pmp_executor_group_index(const pmp_executor_t *self,
                                              const pmp_executor_group_t *g)
{
    return (size_t)(g - self->groups);
}

/* The group of a peer identity, or NULL.  O(1).  I/O thread. */
pmp_executor_group_t *pmp_executor_io_find_group(pmp_executor_t *self, const void *id, size_t len);

/* Group g is gone (how: "left", "became unreachable", "closed its
 * connection"): it gets nothing more, and the tasks it held complete as
 * BROKEN.  mtx held; I/O thread. */
void pmp_executor_io_group_lost_locked(pmp_executor_t *self, pmp_executor_group_t *g,
                                       const char *how);

/* What a group that just said hello gets first: SHUTDOWN when the
 * executor is ending, else the INIT and the kept DEFINEs, in order.  mtx
 * held; I/O thread. */
void pmp_executor_io_greet_locked(pmp_executor_t *self, pmp_executor_group_t *g);

/* ---- sending over ZeroMQ (pmp_executor_send.c) ---------------------------- */

/* Sends tasks run[0..k) to the ROUTER group g: in messages of up to as
 * many tasks as its leader takes in one (its hello's batch), else one a
 * message; a message of small tasks as one pack when the leader takes
 * packs.  Returns how many were sent, in order: fewer than k only when
 * the group cannot be routed to (errno set), and the rest are untouched.
 * mtx held; I/O thread. */
size_t pmp_executor_io_send_run_locked(pmp_executor_t *self, pmp_executor_group_t *g,
                                       pmp_task_t **run, size_t k);

/* ---- pinned tasks (pmp_executor_pin.c) ------------------------------------ */

/* The index (in the group table) of the live group whose hello says it is
 * group number pin, or SIZE_MAX when it has not said hello (yet), left or
 * was shut down.  O(groups).  I/O thread. */
size_t pmp_executor_pin_group(const pmp_executor_t *self, int pin);

/* Completes every pinned task still queued with kind (PMP_DONE_LOST at a
 * restart, PMP_DONE_BROKEN when the job is gone) and text.  mtx held. */
void pmp_executor_pin_fail_locked(pmp_executor_t *self, int kind, const char *text);

/* ---- receiving (pmp_executor_recv.c) ------------------------------------- */

/* Receives one multipart message from the ROUTER socket, if one waits, and
 * handles it (pmp_executor_io_on_message); anything malformed is dropped
 * with a warning.  Returns 1 if a message was handled or dropped, 0 if
 * none was waiting.  I/O thread. */
int pmp_executor_io_recv_router(pmp_executor_t *self);

/* Handles one received message, parts[0] its header and n >= 1: from
 * group g, or (g NULL) from a peer that has not said hello, known by its
 * identity (id, idlen) and, over a local link, by link (NULL over
 * ZeroMQ), which a HELLO makes the new group's.  Checks the header and
 * drops (with a warning) what does not belong.  I/O thread. */
void pmp_executor_io_on_message(pmp_executor_t *self, pmp_executor_group_t *g, const void *id,
                                size_t idlen, pmp_link_t *link, zmq_msg_t *parts, size_t n);

/* Group g's link ended (the leader closed it or died) before its goodbye.
 * With a launched job the group is only retired (never picked again): the
 * rank watch and the job's exit, seen next, say what happened and
 * complete its tasks; otherwise the group is gone and its tasks fail as
 * BROKEN now.  The caller closes the link.  I/O thread; takes mtx. */
void pmp_executor_io_link_lost(pmp_executor_t *self, pmp_executor_group_t *g);

/* ---- the local links (pmp_executor_links.c) ------------------------------ */

/* Fills items with what the links need polled: the listening socket,
 * every connection that has not said hello, every group's link (POLLOUT
 * too while output waits); returns how many (at most
 * pmp_executor_links_count()). */
int pmp_executor_links_pollitems(pmp_executor_t *self, zmq_pollitem_t *items);
size_t pmp_executor_links_count(const pmp_executor_t *self);

/* Serves the items filled last by pmp_executor_links_pollitems: writes
 * what waits, reads and handles what arrived (at most max_msgs messages
 * per link), accepts and greets new connections. */
void pmp_executor_links_serve(pmp_executor_t *self, const zmq_pollitem_t *items, int max_msgs);

/* Gives queued output up to linger_ms to leave, then closes every link
 * and every connection that has not said hello. */
void pmp_executor_links_close(pmp_executor_t *self, int linger_ms);

#endif
