/*
 * pmp_executor.c - the executor actor: one I/O thread that owns the ROUTER
 * socket, the launched job and the scheduling of tasks onto groups.
 *
 * Threads and ownership.  pmp_executor_new() binds the ROUTER socket to
 * ipc://<dir>/frontend (<dir> a fresh 0700 directory), then starts the I/O
 * thread and hands it the socket; from then on only that thread touches the
 * socket, the launcher (the job's pid, pidfd and stderr pipe) and the group
 * table.  Callers on any thread share with it one mutex that protects the
 * task queue (FIFO, O(1) cancel by id), the in-flight table (id -> task),
 * the state flags (closing, exited, stop) and the completion list.  A
 * caller that changes something writes to an eventfd that the I/O thread
 * polls next to the socket, the job's pidfd and its stderr pipe; the I/O
 * thread hands results back by appending to the completion list and
 * signalling a condition variable that pmp_executor_wait() sleeps on.  With
 * cfg->launch the I/O thread itself forks the job before it reports ready,
 * because PR_SET_PDEATHSIG ties the job to the thread that forked it.
 *
 * Scheduling.  A group may hold pipeline_depth tasks; whenever something
 * changes (a submit, a hello, a result) the thread pops tasks from the head
 * of the queue and sends each to the live group with the fewest tasks in
 * flight.  The group table (pmp_sched) finds that group and the group of a
 * peer identity without looking at the other groups, so the cost per task
 * does not grow with the number of groups.  Tasks submitted before any
 * group connected simply wait.
 *
 * Broadcasts.  INIT, DEFINE and FORGET go to every group.  They wait in
 * their own FIFO (bcasts) next to the task queue, and every message, task
 * or broadcast, carries a sequence number taken at submit time; the I/O
 * thread always handles the older of the two heads first.  A broadcast at
 * the head is sent at once to every live group (it needs no free slot), so
 * each group receives it after every task submitted before it and before
 * every task submitted after it, while cancel(), pending() and the task ids
 * never see broadcasts.  What a group that connects later must know is
 * kept: the INIT and the DEFINEs not yet forgotten, in order; a new group
 * gets them right after its HELLO, before anything else.  The frames of a
 * broadcast are shared between the groups with zmq_msg_copy (reference
 * counted, no byte copy), so a zero-copy buffer is released once, when the
 * last group's copy and the kept original are gone.  Which keys are
 * defined is also tracked on the caller's side (defined), so that
 * pmp_executor_broadcast() can refuse a double DEFINE or an unknown FORGET
 * at once.
 *
 * Buffers.  A buffer without free_fn is copied at submit; one with free_fn
 * becomes a zmq_msg_init_data message whose release callback calls
 * free_fn(data, hint) exactly once, whenever ZeroMQ is done with it (sent,
 * dropped, cancelled, destroyed).  Until submit has fully succeeded those
 * callbacks are disarmed, so a failed submit never calls free_fn.
 *
 * Faults.  The job's exit (pidfd readable, or a 100 ms waitpid poll where
 * there is no pidfd) is reported as PMP_EVENT_EXIT with the status and the
 * tail of its stderr, and every task in flight or queued completes as
 * PMP_DONE_BROKEN with the same text; later submits fail with EPIPE.
 * Malformed messages and messages from peers that never said hello are
 * dropped with a warning in the log; they cannot crash the frontend.
 *
 * Restarts and time limits.  With cfg->restart_limit a job that dies is
 * relaunched (s_restart, through s_launch like the first launch): the task
 * each group was running completes as PMP_DONE_LOST, the tasks it held
 * behind that one go back to the head of the queue, the new groups get the
 * INIT and the kept DEFINEs after their hello, and PMP_EVENT_RESTART says
 * why.  With cfg->run_time_max_ms the I/O thread times the task each group
 * runs (s_check_time); one that overruns ncalls * limit + grace completes
 * as PMP_DONE_TIMEOUT and the job is killed and relaunched, a restart that
 * does not count against restart_limit.  docs/architecture.md, "Faults and
 * restarts", has the details.
 *
 * Shutdown.  close() lets the queue drain, then sends SHUTDOWN to every
 * group and delivers PMP_EVENT_CLOSED once the job has exited (launch) or
 * every group said GOODBYE (no launch).  destroy() asks the thread to stop:
 * SHUTDOWN, up to grace_ms for the job to exit, SIGTERM to its process
 * group, 2 s, SIGKILL; then joins the thread and removes the directory.
 * Before the frontend kills a job on purpose (destroy, a time limit) it
 * tells the launcher to stop echoing what the job says about it.
 *
 * The job's output.  The launcher (pmp_launcher) pipes the job's stderr
 * and stdout; this thread polls them with everything else and pumps them
 * (stderr echoed and kept, stdout relayed to the user's fd 1 without the
 * MPI launcher's banner, never blocking on it: pmp_relay).
 *
 * Interrupt.  pmp_executor_interrupt() asks (intr_asked, under mtx), wakes
 * this thread and waits; the thread, which alone owns the group table,
 * signals the local ranks of every group holding a task through their
 * pidfds and answers with the count (s_serve_interrupts).
 *
 * Fork.  The executor remembers the fork generation it was made in
 * (pmp_fork.h); every public entry point compares it first and, in a forked
 * child, fails at once without touching the mutex, the eventfd or the
 * thread, which stayed in the parent.
 */
#include "pmp_executor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "pmp_command.h"
#include "pmp_completion.h"
#include "pmp_completion_queue.h"
#include "pmp_endpoint.h"
#include "pmp_fork.h"
#include "pmp_launcher.h"
#include "pmp_queue.h"
#include "pmp_rankwatch.h"
#include "pmp_sched.h"
#include "pmp_task.h"
#include "pmp_timelimit.h"

#define S_EXIT_POLL_MS 100   /* waitpid poll period without a pidfd */
#define S_DRAIN_MS 500       /* how long to wait for the stderr pipe's end */
#define S_MAX_RECV_BATCH 256 /* messages handled per poll round */

typedef struct {
    unsigned char identity[256];
    size_t identity_size;
    pmp_hello_t hello;
    int gone; /* said GOODBYE or became unreachable */
    int shutdown_sent;
} s_group_t;

struct pmp_executor {
    /* immutable after new() */
    unsigned gen; /* fork generation at creation (pmp_fork.h) */
    pid_t owner;  /* the process that created it */
    int ranks, ranks_per_group, depth, launch;
    int restart_limit; /* relaunches allowed after deaths */
    char *cwd, *exec_path;
    char **argv; /* the command, NULL-terminated */
    /* the socket, its authentication and the credentials file: the I/O
     * thread's once it runs; its address never changes */
    pmp_endpoint_t *endpoint;
    int efd;
    pthread_t thread;
    int thread_started;
    pid_t pid;

    pthread_mutex_t mtx;
    pthread_cond_t ready_cv; /* start-up handshake */
    pthread_cond_t intr_cv;  /* interrupt requests served */
    /* protected by mtx */
    int ready, start_rc, start_errno;
    pmp_error_t start_err;
    pmp_queue_t *queue;    /* tasks not yet sent, by task id */
    pmp_queue_t *inflight; /* tasks sent, not completed */
    pmp_queue_t *bcasts;   /* broadcasts not yet sent, by seq */
    pmp_queue_t *defined;  /* keys DEFINEd and not FORGOTten (caller's view) */
    uint64_t next_seq;
    int init_submitted;
    int any_task;
    /* the broadcasts a late group must get; changed by the I/O thread only */
    pmp_task_t *init_kept;
    pmp_queue_t *kept; /* DEFINEs by key, in order */
    int closing, exited, stop, grace_ms;
    char *exit_text;
    pmp_completion_queue_t *done; /* completions for wait(), guarded by mtx */
    int closed_delivered;
    /* interrupt(): requests asked and served (the I/O thread signals), the
     * ranks the last batch reached, and whether the I/O thread has ended */
    uint64_t intr_asked, intr_served;
    int intr_count, io_done;

    /* owned by the I/O thread */
    pmp_launcher_t *launcher;
    pmp_sched_t *sched; /* identity -> group, load of each group */
    s_group_t *groups;  /* indexed like sched */
    size_t ngroups, groups_cap;
    size_t hellos; /* groups that said hello since the last launch */
    int shutdown_sent;
    /* restarts (see s_restart); restarts is read by callers under mtx */
    int restarts, restarts_counted;
    int timeout_kill;           /* the job was killed because a task exceeded its time limit */
    int keep_sent;              /* a restart is possible: tasks keep their frames in flight */
    pmp_timelimit_t *timelimit; /* the clock of the hard time limit */
    pmp_rankwatch_t *watch;     /* pidfds of the groups' ranks on this host, the first death */
    zmq_pollitem_t *items;      /* poll set of the I/O thread */
    size_t items_cap;
};

/* ---- small helpers ------------------------------------------------------- */

/* Whether this process is a forked child of the executor's creator: every
 * public call that would touch a lock, the socket or the thread checks
 * this first and leaves such an inherited copy alone (pmp_executor.h). */
static inline int s_in_child(const pmp_executor_t *self)
{
    return __builtin_expect(self->gen != pmp_fork_generation(), 0);
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_wake(pmp_executor_t *self)
{
    uint64_t one = 1;
    ssize_t rc = write(self->efd, &one, sizeof one);
    (void)rc; /* EAGAIN: the counter is already non-zero, the thread will wake */
}

static char *s_strdup_or_null(const char *s, int *failed)
{
    if (!s)
        return NULL;
    char *copy = strdup(s);
    if (!copy)
        *failed = 1;
    return copy;
}

static void s_deliver_event_locked(pmp_executor_t *self, int kind, uint64_t id, const char *text,
                                   int status)
{
    pmp_completion_queue_deliver_locked(self->done, pmp_completion_new(kind, id, 0, text, status));
}

/* ---- sending (I/O thread) ------------------------------------------------ */

static void s_break_inflight_locked(pmp_executor_t *self, size_t gi, const char *text);

static size_t s_index(const pmp_executor_t *self, const s_group_t *g)
{
    return (size_t)(g - self->groups);
}

static size_t s_load(const pmp_executor_t *self, const s_group_t *g)
{
    return pmp_sched_load(self->sched, s_index(self, g));
}

/* The group left or cannot be reached: it gets nothing more. */
static void s_group_gone(pmp_executor_t *self, s_group_t *g)
{
    g->gone = 1;
    pmp_sched_retire(self->sched, s_index(self, g));
}

/* Sends header + msgs to group g, consuming the msgs on success; mtx held.
 * An unreachable group is marked gone and its tasks in flight complete as
 * BROKEN.  Returns 0,
 * or -1 if the group is unreachable (the msgs are then untouched, unless the
 * failure came after the first frame, which ZeroMQ does not do for ROUTER). */
static int s_send(pmp_executor_t *self, s_group_t *g, int type, uint64_t id, uint32_t flags,
                  zmq_msg_t *msgs, size_t nmsgs)
{
    pmp_header_t hdr = {
        .type = (uint16_t)type, .task_id = id, .flags = flags, .nframes = (uint32_t)nmsgs};
    unsigned char hbuf[PMP_HEADER_SIZE];
    pmp_header_encode(&hdr, hbuf);
    void *router = pmp_endpoint_socket(self->endpoint);
    if (zmq_send(router, g->identity, g->identity_size, ZMQ_SNDMORE) < 0) {
        pmp_log(PMP_LOG_WARNING, "frontend: cannot send %s to group %d: %s",
                pmp_msg_type_name(type), (int)g->hello.group, zmq_strerror(errno));
        s_group_gone(self, g);
        if (s_load(self, g) > 0) {
            char text[PMP_ERROR_TEXT];
            snprintf(text, sizeof text,
                     "group %d of the pympipool-runtime job (leader pid %lld on %s) became "
                     "unreachable while running this task",
                     (int)g->hello.group, (long long)g->hello.pid, g->hello.host);
            s_break_inflight_locked(self, s_index(self, g), text);
        }
        return -1;
    }
    int rc = zmq_send(router, hbuf, sizeof hbuf, nmsgs ? ZMQ_SNDMORE : 0);
    PMP_ASSERT(rc == (int)sizeof hbuf);
    for (size_t i = 0; i < nmsgs; i++) {
        rc = zmq_msg_send(&msgs[i], router, i + 1 < nmsgs ? ZMQ_SNDMORE : 0);
        PMP_ASSERT(rc >= 0);
    }
    return 0;
}

static void s_send_shutdown(pmp_executor_t *self, s_group_t *g)
{
    if (g->gone || g->shutdown_sent)
        return;
    zmq_msg_t empty;
    zmq_msg_init(&empty);
    if (s_send(self, g, PMP_MSG_SHUTDOWN, 0, 0, &empty, 1) < 0)
        zmq_msg_close(&empty);
    g->shutdown_sent = 1;
    pmp_sched_retire(self->sched, s_index(self, g));
}

/* Sends task to group g and keeps its frames: the group gets shared
 * references to them (zmq_msg_copy, no byte copy).  A broadcast goes to
 * every group this way, and so does a task when the job may be restarted
 * (keep_sent), so that a task a group held but had not started can be
 * sent again to the next job.  Returns 0, or -1 as s_send.  mtx held. */
static int s_send_shared(pmp_executor_t *self, s_group_t *g, const pmp_task_t *task)
{
    zmq_msg_t stack[4];
    zmq_msg_t *copies = task->nmsgs <= 4 ? stack : calloc(task->nmsgs, sizeof *copies);
    PMP_ASSERT(copies != NULL);
    for (size_t i = 0; i < task->nmsgs; i++) {
        zmq_msg_init(&copies[i]);
        PMP_ASSERT(zmq_msg_copy(&copies[i], &task->msgs[i]) == 0); /* shares, no copy */
    }
    int rc = s_send(self, g, task->type, task->id, task->flags, copies, task->nmsgs);
    if (rc < 0)
        for (size_t i = 0; i < task->nmsgs; i++)
            zmq_msg_close(&copies[i]);
    if (copies != stack)
        free(copies);
    return rc;
}

/* Sends a broadcast to one group, unless it left or was shut down.  mtx
 * held. */
static void s_send_copy(pmp_executor_t *self, s_group_t *g, const pmp_task_t *task)
{
    if (!g->gone && !g->shutdown_sent)
        s_send_shared(self, g, task);
}

static void s_send_kept(uint64_t key, void *item, void *arg)
{
    (void)key;
    void **ctx = arg;
    s_send_copy(ctx[0], ctx[1], item);
}

/* What a group that just connected must know before its first task: the
 * INIT, then the DEFINEs still kept, in order.  mtx held. */
static void s_sync_group(pmp_executor_t *self, s_group_t *g)
{
    if (self->init_kept)
        s_send_copy(self, g, self->init_kept);
    void *ctx[2] = {self, g};
    pmp_queue_foreach(self->kept, s_send_kept, ctx);
}

/* Sends a broadcast (the head of bcasts) to every live group and updates
 * what late groups get.  Takes ownership of task.  mtx held. */
static void s_run_broadcast(pmp_executor_t *self, pmp_task_t *task)
{
    for (size_t i = 0; i < self->ngroups; i++)
        s_send_copy(self, &self->groups[i], task);
    if (task->type == PMP_MSG_INIT) {
        PMP_ASSERT(self->init_kept == NULL); /* submit allows one */
        self->init_kept = task;
    } else if (task->type == PMP_MSG_DEFINE) {
        /* broadcast() refuses a second DEFINE of a kept key */
        PMP_ASSERT(pmp_queue_push(self->kept, task->id, task) == 0);
    } else {
        pmp_task_t *def = pmp_queue_remove(self->kept, task->id);
        pmp_task_destroy(&def); /* its buffers go once the groups' copies are sent */
        pmp_task_destroy(&task);
    }
}

static size_t s_live_groups(const pmp_executor_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->ngroups; i++)
        n += !self->groups[i].gone;
    return n;
}

static void s_fail_inflight_locked(pmp_executor_t *self, size_t gi, int kind, const char *text);

/* Completes every in-flight task of group gi (or of every group when gi is
 * SIZE_MAX) as BROKEN with text; mtx held. */
static void s_break_inflight_locked(pmp_executor_t *self, size_t gi, const char *text)
{
    s_fail_inflight_locked(self, gi, PMP_DONE_BROKEN, text);
}

/* As s_break_inflight_locked with completions of the given kind. */
static void s_fail_inflight_locked(pmp_executor_t *self, size_t gi, int kind, const char *text)
{
    size_t n = pmp_queue_size(self->inflight);
    for (size_t k = 0; k < n; k++) {
        uint64_t id;
        pmp_task_t *task = pmp_queue_pop(self->inflight, &id);
        if (gi == SIZE_MAX || task->group == gi) {
            pmp_sched_dec(self->sched, task->group);
            pmp_task_destroy(&task); /* its buffers go before its completion */
            s_deliver_event_locked(self, kind, id, text, -1);
        } else {
            PMP_ASSERT(pmp_queue_push(self->inflight, id, task) == 0);
        }
    }
}

/* Sends INITs and queued tasks wherever there is room, and moves close()
 * along.  Called by the I/O thread after every event; takes mtx. */
static void s_step(pmp_executor_t *self)
{
    pthread_mutex_lock(&self->mtx);
    /* While the job is being killed (a time limit, a rank that died) it gets
     * nothing more: what is queued waits for the next job, if any. */
    if (!self->exited && !self->stop && !self->timeout_kill && !pmp_rankwatch_death(self->watch)) {
        for (;;) {
            pmp_task_t *head = pmp_queue_peek(self->queue, NULL);
            pmp_task_t *bcast = pmp_queue_peek(self->bcasts, NULL);
            if (bcast && (!head || bcast->seq < head->seq)) {
                s_run_broadcast(self, pmp_queue_pop(self->bcasts, NULL));
                continue;
            }
            if (!head)
                break;
            size_t gi = pmp_sched_pick(self->sched);
            if (gi == PMP_SCHED_NONE)
                break;
            s_group_t *best = &self->groups[gi];
            uint64_t id;
            pmp_task_t *task = pmp_queue_pop(self->queue, &id);
            int sent = self->keep_sent ? s_send_shared(self, best, task)
                                       : s_send(self, best, task->type, task->id, task->flags,
                                                task->msgs, task->nmsgs);
            if (sent < 0) {
                PMP_ASSERT(pmp_queue_push_front(self->queue, id, task) == 0);
                continue; /* best is now gone; try another group */
            }
            task->group = gi;
            task->sent_ms = pmp_timelimit_sent(self->timelimit);
            pmp_sched_inc(self->sched, gi);
            PMP_ASSERT(pmp_queue_push(self->inflight, id, task) == 0);
        }
        if (self->closing && !self->shutdown_sent && pmp_queue_size(self->queue) == 0 &&
            pmp_queue_size(self->inflight) == 0) {
            self->shutdown_sent = 1;
            for (size_t i = 0; i < self->ngroups; i++)
                s_send_shutdown(self, &self->groups[i]);
        }
    }
    if (self->closing && !self->closed_delivered &&
        (self->exited || (!self->launch && self->shutdown_sent && s_live_groups(self) == 0))) {
        self->closed_delivered = 1;
        s_deliver_event_locked(self, PMP_EVENT_CLOSED, 0, "", -1);
    }
    pthread_mutex_unlock(&self->mtx);
}

/* ---- receiving (I/O thread) ---------------------------------------------- */

static s_group_t *s_find_group(pmp_executor_t *self, const void *id, size_t len)
{
    size_t i = pmp_sched_find(self->sched, id, len);
    return i == PMP_SCHED_NONE ? NULL : &self->groups[i];
}

/* The I/O thread's poll set with room for n items. */
static zmq_pollitem_t *s_poll_items(pmp_executor_t *self, size_t n)
{
    if (n > self->items_cap) {
        size_t cap = n * 2;
        zmq_pollitem_t *items = realloc(self->items, cap * sizeof *items);
        PMP_ASSERT(items != NULL);
        self->items = items;
        self->items_cap = cap;
    }
    return self->items;
}

/* Poll item k of the rank watch fired: that rank has exited.  While the
 * job should be running that is a crash: the first one is remembered for
 * the error text, and the job gets PMP_RANKWATCH_DEATH_GRACE_MS to end by
 * itself (mpiexec notices and kills the other ranks) before it is killed,
 * so that no rank is left waiting on a dead peer. */
static void s_on_rank_exit(pmp_executor_t *self, int k)
{
    const s_group_t *g = &self->groups[pmp_rankwatch_item_group(self->watch, k)];
    pthread_mutex_lock(&self->mtx);
    int expected = self->stop || self->shutdown_sent || self->exited || g->gone;
    pthread_mutex_unlock(&self->mtx);
    pmp_rankwatch_on_exit(self->watch, k, expected);
}

/* The text of the job's exit for the user: which rank died first and how,
 * when the watch saw it, then mpiexec's status and the tail of its stderr
 * (pmp_launcher_exit_text).  Ends the watch of the ranks.  malloc'ed. */
static char *s_exit_text(pmp_executor_t *self)
{
    char *base = pmp_launcher_exit_text(self->launcher, "pympipool-runtime job");
    PMP_ASSERT(base != NULL);
    return pmp_rankwatch_exit_text(self->watch, base);
}

static void s_on_hello(pmp_executor_t *self, zmq_msg_t *identity, zmq_msg_t *payload)
{
    pmp_error_t err;
    pmp_hello_t hello;
    if (zmq_msg_size(identity) > sizeof self->groups[0].identity) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a hello with an oversized identity");
        return;
    }
    if (s_find_group(self, zmq_msg_data(identity), zmq_msg_size(identity))) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a second hello from the same peer");
        return;
    }
    if (pmp_hello_decode(zmq_msg_data(payload), zmq_msg_size(payload), &hello, &err) < 0) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a malformed hello: %s", err.text);
        return;
    }
    if (self->ngroups == self->groups_cap) {
        size_t cap = self->groups_cap ? self->groups_cap * 2 : 8;
        s_group_t *groups = realloc(self->groups, cap * sizeof *groups);
        PMP_ASSERT(groups != NULL);
        self->groups = groups;
        self->groups_cap = cap;
    }
    size_t gi;
    PMP_ASSERT(pmp_sched_add(self->sched, zmq_msg_data(identity), zmq_msg_size(identity), &gi) ==
               0);
    PMP_ASSERT(gi == self->ngroups);
    s_group_t *g = &self->groups[self->ngroups++];
    memset(g, 0, sizeof *g);
    g->identity_size = zmq_msg_size(identity);
    memcpy(g->identity, zmq_msg_data(identity), g->identity_size);
    g->hello = hello;
    pmp_rankwatch_add(self->watch, gi, &hello, zmq_msg_data(payload), zmq_msg_size(payload));
    pmp_log(PMP_LOG_INFO, "frontend: group %d of %d connected (leader pid %lld on %s)",
            (int)hello.group, (int)hello.ngroups, (long long)hello.pid, hello.host);
    if (++self->hellos >= (size_t)(self->ranks / self->ranks_per_group))
        pmp_endpoint_remove_credentials(self->endpoint, "every group said hello");

    size_t len = zmq_msg_size(payload);
    char *text = malloc(len + 1);
    PMP_ASSERT(text != NULL);
    memcpy(text, zmq_msg_data(payload), len);
    text[len] = '\0';
    pthread_mutex_lock(&self->mtx);
    if (self->shutdown_sent || self->stop || self->exited)
        s_send_shutdown(self, g);
    else
        s_sync_group(self, g);
    if (!self->closed_delivered) /* nothing follows CLOSED */
        s_deliver_event_locked(self, PMP_EVENT_HELLO, 0, text, -1);
    pthread_mutex_unlock(&self->mtx);
    free(text);
}

static void s_on_reply(pmp_executor_t *self, s_group_t *g, const pmp_header_t *hdr,
                       zmq_msg_t *frames, size_t nframes)
{
    size_t gi = s_index(self, g);
    pthread_mutex_lock(&self->mtx);
    pmp_task_t *task = pmp_queue_find(self->inflight, hdr->task_id);
    if (!task || task->group != gi) {
        pthread_mutex_unlock(&self->mtx);
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a %s for task %llu that group %d does not hold",
                pmp_msg_type_name(hdr->type), (unsigned long long)hdr->task_id,
                (int)g->hello.group);
        return;
    }
    pmp_queue_remove(self->inflight, hdr->task_id);
    pmp_sched_dec(self->sched, gi);
    pmp_timelimit_done(self->timelimit, gi);
    /* Released before the completion is queued: once the caller has the
     * result, nothing here refers to the task's buffers (with keep_sent the
     * task held references to them until now; otherwise ZeroMQ let them go
     * when it had written them, before the reply could even exist). */
    pmp_task_destroy(&task);
    int kind = hdr->type == PMP_MSG_RESULT ? PMP_DONE_RESULT : PMP_DONE_ERROR;
    pmp_completion_t *c = pmp_completion_new(kind, hdr->task_id, hdr->flags, "", -1);
    PMP_ASSERT(c != NULL);
    PMP_ASSERT(pmp_completion_take_msgs(c, frames, nframes) == 0);
    pmp_completion_queue_push_locked(self->done, c);
    pthread_mutex_unlock(&self->mtx);
    /* Woken after the unlock (the hot path): a waiter woken while the
     * mutex is still held would only go back to sleep on it. */
    pmp_completion_queue_wake(self->done);
}

static void s_on_goodbye(pmp_executor_t *self, s_group_t *g)
{
    size_t gi = s_index(self, g);
    s_group_gone(self, g);
    pthread_mutex_lock(&self->mtx);
    if (s_load(self, g) > 0) {
        char text[PMP_ERROR_TEXT];
        snprintf(text, sizeof text,
                 "group %d of the pympipool-runtime job (leader pid %lld on %s) left while "
                 "running this task",
                 (int)g->hello.group, (long long)g->hello.pid, g->hello.host);
        s_break_inflight_locked(self, gi, text);
    }
    pthread_mutex_unlock(&self->mtx);
}

/* Receives one multipart message if there is one.  Returns 1 if a message
 * was handled (or dropped), 0 if none was waiting. */
static int s_recv_one(pmp_executor_t *self)
{
    zmq_msg_t stack[8];
    zmq_msg_t *parts = stack;
    void *router = pmp_endpoint_socket(self->endpoint);
    size_t n = 0, cap = 8;
    int more = 1, overflow = 0;
    while (more) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, router, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&msg);
            PMP_ASSERT(n == 0); /* later parts of a message are always there */
            return 0;
        }
        more = zmq_msg_more(&msg);
        if (n == cap && !overflow) {
            if (cap >= (size_t)PMP_MAX_FRAMES + 2) {
                overflow = 1;
            } else {
                zmq_msg_t *bigger = malloc(cap * 2 * sizeof *bigger);
                PMP_ASSERT(bigger != NULL);
                for (size_t i = 0; i < n; i++) {
                    zmq_msg_init(&bigger[i]);
                    zmq_msg_move(&bigger[i], &parts[i]);
                }
                if (parts != stack)
                    free(parts);
                parts = bigger;
                cap *= 2;
            }
        }
        if (overflow) {
            zmq_msg_close(&msg);
            continue;
        }
        zmq_msg_init(&parts[n]);
        zmq_msg_move(&parts[n], &msg);
        zmq_msg_close(&msg);
        n++;
    }

    pmp_error_t err;
    pmp_header_t hdr;
    s_group_t *g =
        n >= 1 ? s_find_group(self, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0])) : NULL;
    if (overflow) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a message of more than %d frames",
                PMP_MAX_FRAMES + 2);
    } else if (n < 2) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a message without a header frame");
    } else if (pmp_header_decode(zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), &hdr, &err) <
                   0 ||
               pmp_header_check(&hdr, n - 2, 1, &err) < 0) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a malformed message: %s", err.text);
    } else if (hdr.type == PMP_MSG_HELLO) {
        s_on_hello(self, &parts[0], &parts[2]);
    } else if (!g) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a %s from a peer that never said hello",
                pmp_msg_type_name(hdr.type));
    } else if (g->gone) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a %s from group %d after its goodbye",
                pmp_msg_type_name(hdr.type), (int)g->hello.group);
    } else if (hdr.type == PMP_MSG_RESULT || hdr.type == PMP_MSG_ERROR) {
        s_on_reply(self, g, &hdr, parts + 2, n - 2);
    } else if (hdr.type == PMP_MSG_GOODBYE) {
        s_on_goodbye(self, g);
    }
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    if (parts != stack)
        free(parts);
    return 1;
}

/* ---- the job's exit (I/O thread) ----------------------------------------- */

static int s_launch(pmp_executor_t *self, pmp_error_t *err);

/* Forgets every group of a job that is gone (their watches, their places
 * in the scheduler): the next job's groups say hello afresh.  Every task
 * in flight must have been completed already.  mtx held. */
static void s_forget_groups_locked(pmp_executor_t *self)
{
    PMP_ASSERT(pmp_queue_size(self->inflight) == 0);
    pmp_rankwatch_clear(self->watch);
    pmp_timelimit_clear(self->timelimit); /* nothing runs until the next job's first task */
    self->ngroups = 0;
    pmp_sched_destroy(&self->sched);
    self->sched = pmp_sched_new((size_t)self->depth);
    PMP_ASSERT(self->sched != NULL);
}

/* Whether the job that just exited is relaunched: it must have been
 * launched here, nobody asked it to stop (destroy, or close() with nothing
 * left to run), and either the frontend killed it for a time limit (such a
 * restart is free) or restarts are left.  mtx held. */
static int s_should_restart_locked(const pmp_executor_t *self)
{
    if (!self->launch || self->stop || self->shutdown_sent)
        return 0;
    if (self->closing && pmp_queue_size(self->queue) == 0)
        return 0; /* nothing would run on a new job */
    return self->timeout_kill || self->restarts_counted < self->restart_limit;
}

/* The job died (text: how) and is relaunched: the tasks it held complete
 * as LOST (TIMEOUT ones were completed when the job was killed), the
 * groups are forgotten, EVENT_RESTART goes out first, and a new job is
 * started through s_launch, the same launch as the first one; its groups
 * get the INIT and the kept DEFINEs after their hello (s_sync_group), and
 * the queue, untouched, resumes.  Returns 0, or -1 if the relaunch failed
 * (text is then extended with why, and the caller ends the executor as
 * for a death without restart).  Takes mtx. */
static int s_restart(pmp_executor_t *self, char **text_p)
{
    char *text = *text_p;
    pthread_mutex_lock(&self->mtx);
    int counted = !self->timeout_kill;
    if (counted)
        self->restarts_counted++;
    self->restarts++;
    size_t len = strlen(text) + 256;
    char *why = malloc(len), *lost = malloc(len + 64);
    PMP_ASSERT(why != NULL && lost != NULL);
    if (counted)
        snprintf(why, len,
                 "%s; the runtime was restarted (restart %d of %d allowed by restart_limit)", text,
                 self->restarts_counted, self->restart_limit);
    else
        snprintf(why, len,
                 "a call exceeded run_time_max, so pympipool killed the pympipool-runtime job "
                 "and restarted it (a restart after a time limit does not count against "
                 "restart_limit)");
    snprintf(lost, len + 64, "this call was running or held by a worker when %s", why);
    int status = pmp_launcher_status(self->launcher);
    s_deliver_event_locked(self, PMP_EVENT_RESTART, 0, why, status);
    /* At most once: every task a dead group held is lost, since the
     * frontend cannot tell whether a task waiting behind the oldest had
     * started (a result may have died in the leader's send queue).  Only
     * the tasks behind a call that exceeded run_time_max provably never
     * started (the group was stuck in that call): they go back to the head
     * of the queue, in their order, and run on the next job. */
    size_t n = pmp_queue_size(self->inflight), nagain = 0;
    pmp_task_t **again = n ? malloc(n * sizeof *again) : NULL;
    PMP_ASSERT(n == 0 || again != NULL);
    for (size_t k = 0; k < n; k++) {
        uint64_t id;
        pmp_task_t *task = pmp_queue_pop(self->inflight, &id);
        pmp_sched_dec(self->sched, task->group);
        if (!pmp_timelimit_timed_out(self->timelimit, task->group)) {
            pmp_task_destroy(&task);
            s_deliver_event_locked(self, PMP_DONE_LOST, id, lost, -1);
        } else {
            again[nagain++] = task;
        }
    }
    while (nagain > 0) {
        pmp_task_t *task = again[--nagain];
        PMP_ASSERT(pmp_queue_push_front(self->queue, task->id, task) == 0);
    }
    free(again);
    s_forget_groups_locked(self);
    self->timeout_kill = 0;
    pthread_mutex_unlock(&self->mtx);
    pmp_log(PMP_LOG_WARNING, "frontend: %s", why);
    free(lost);
    free(why);

    pmp_launcher_t *old = self->launcher;
    self->launcher = NULL;
    pmp_error_t err = {{0}};
    if (s_launch(self, &err) == 0) {
        pmp_launcher_destroy(&old);
        return 0;
    }
    self->launcher = old; /* exited: the caller reports its status */
    size_t size = strlen(text) + strlen(err.text) + 64;
    char *more = malloc(size);
    PMP_ASSERT(more != NULL);
    snprintf(more, size, "%s; relaunching it failed: %s", text, err.text);
    free(text);
    *text_p = more;
    return -1;
}

static void s_on_exit(pmp_executor_t *self)
{
    pmp_endpoint_remove_credentials(self->endpoint,
                                    "the job exited"); /* a relaunch writes it again */
    /* all of its stderr (and banner) into the tail before the text is made */
    pmp_launcher_drain(self->launcher, S_DRAIN_MS);
    /* ranks that outlived mpiexec would be orphans: end them */
    pmp_launcher_signal(self->launcher, SIGKILL);
    char *text = s_exit_text(self);
    pmp_log(PMP_LOG_INFO, "frontend: %s", text);
    pthread_mutex_lock(&self->mtx);
    int restart = s_should_restart_locked(self);
    pthread_mutex_unlock(&self->mtx);
    if (restart && s_restart(self, &text) == 0) {
        free(text);
        return;
    }
    pthread_mutex_lock(&self->mtx);
    self->exited = 1;
    self->exit_text = text;
    s_deliver_event_locked(self, PMP_EVENT_EXIT, 0, text, pmp_launcher_status(self->launcher));
    s_break_inflight_locked(self, SIZE_MAX, text);
    pmp_task_t *task;
    uint64_t id;
    while ((task = pmp_queue_pop(self->queue, &id))) {
        pmp_task_destroy(&task);
        s_deliver_event_locked(self, PMP_DONE_BROKEN, id, text, -1);
    }
    while ((task = pmp_queue_pop(self->bcasts, NULL))) /* broadcasts have no completion */
        pmp_task_destroy(&task);
    for (size_t i = 0; i < self->ngroups; i++)
        s_group_gone(self, &self->groups[i]);
    pthread_mutex_unlock(&self->mtx);
}

/* ---- interrupt (I/O thread) ---------------------------------------------- */

/* Serves pmp_executor_interrupt(): SIGINT, through its pidfd, to every
 * watched rank of every group that holds a task.  The group table is the
 * I/O thread's, so the callers only ask (intr_asked) and wait for the
 * answer.  A pidfd never reaches a recycled pid: the watch closes it as
 * soon as the rank exits.  Takes mtx (only when something was asked). */
static void s_serve_interrupts(pmp_executor_t *self)
{
    if (__atomic_load_n(&self->intr_asked, __ATOMIC_RELAXED) == self->intr_served)
        return; /* the usual case: no lock taken */
    int n = 0;
    pthread_mutex_lock(&self->mtx);
    if (!self->exited && !self->stop) {
        for (size_t gi = 0; gi < self->ngroups; gi++) {
            if (self->groups[gi].gone || pmp_sched_load(self->sched, gi) == 0)
                continue;
            n += pmp_rankwatch_signal(self->watch, gi, SIGINT);
        }
    }
    if (n > 0 && self->launcher) /* a rank that dies of it is no news to the caller */
        pmp_launcher_quiet(self->launcher, PMP_LAUNCHER_QUIET_BANNER);
    self->intr_served = self->intr_asked;
    self->intr_count = n;
    pthread_cond_broadcast(&self->intr_cv);
    pthread_mutex_unlock(&self->mtx);
    pmp_log(PMP_LOG_INFO, "frontend: interrupt: SIGINT sent to %d rank(s)", n);
}

/* ---- the I/O thread ------------------------------------------------------ */

/* Starts the job (the first time and after every restart): the one place
 * a job is launched, so that whatever must be prepared before each launch
 * is prepared here.  Sets self->launcher and self->pid only on success.
 * Returns 0, or -1 with errno and a sentence in err.  I/O thread only
 * (PR_SET_PDEATHSIG ties the job to the thread that forks it). */
static int s_launch(pmp_executor_t *self, pmp_error_t *err)
{
    /* fresh for every launch: the last one's file is removed after its
     * start-up, and its groups' hellos no longer count */
    if (pmp_endpoint_write_credentials(self->endpoint, err) < 0)
        return -1;
    self->hellos = 0;
    /* a clean launcher environment when this process is itself an MPI rank
     * (an executor made inside a task); stdout relayed, without the
     * launcher's banner */
    pmp_launcher_opts_t opts = {.cwd = self->cwd, .clean_environ = 1, .relay_stdout = 1};
    pmp_launcher_t *launcher = pmp_launcher_new(self->exec_path, self->argv, &opts, err);
    if (!launcher)
        return -1;
    self->launcher = launcher;
    __atomic_store_n(&self->pid, pmp_launcher_pid(launcher), __ATOMIC_RELAXED);
    return 0;
}

/* The hard time limit.  The task a group runs is the oldest one it holds
 * (groups run their tasks in order); it started when it was sent or when
 * the group finished the one before, whichever came later.  One that has
 * run longer than ncalls * run_time_max + the grace completes as TIMEOUT
 * and the job is killed; s_on_exit then relaunches it (free of charge) and
 * the other tasks in flight complete as LOST.  Looks at the in-flight
 * tasks only when the earliest deadline may have passed.  Returns the
 * milliseconds until the next check is due (-1: none).  I/O thread. */
static long s_check_time(pmp_executor_t *self)
{
    if (!pmp_timelimit_limit_ms(self->timelimit) || !self->launch || !self->launcher ||
        pmp_launcher_exited(self->launcher))
        return -1;
    int64_t now = s_now_ms();
    pthread_mutex_lock(&self->mtx);
    /* A rank already died: the job is ending anyway, and its tasks are
     * lost to that death, not to a time limit. */
    int died = pmp_rankwatch_death(self->watch) != NULL;
    int64_t next = pmp_timelimit_next(self->timelimit);
    if (self->timeout_kill || self->stop || self->exited || died || now < next) {
        if (self->timeout_kill || self->stop || self->exited || died)
            next = INT64_MAX;
        pthread_mutex_unlock(&self->mtx);
        return next == INT64_MAX ? -1 : (long)(next - now);
    }
    size_t expired = pmp_timelimit_scan_locked(self->timelimit, self->inflight, now);
    if (expired) {
        double limit = (double)pmp_timelimit_limit_ms(self->timelimit) / 1000.0;
        char text[PMP_ERROR_TEXT];
        size_t n = pmp_queue_size(self->inflight);
        for (size_t k = 0; k < n; k++) {
            uint64_t id;
            pmp_task_t *task = pmp_queue_pop(self->inflight, &id);
            if (task->sent_ms != PMP_TIMELIMIT_EXPIRED) {
                PMP_ASSERT(pmp_queue_push(self->inflight, id, task) == 0);
                continue;
            }
            s_group_t *g = &self->groups[task->group];
            snprintf(text, sizeof text,
                     "the call ran longer than run_time_max (%g s%s) and did not stop at the "
                     "runtime's own timer; pympipool gave it %g s more, then killed the "
                     "pympipool-runtime job (group %d, leader pid %lld on %s) and restarted it",
                     limit * task->ncalls, task->ncalls > 1 ? " per call of its chunk" : "",
                     (double)pmp_timelimit_grace_ms(self->timelimit) / 1000.0, (int)g->hello.group,
                     (long long)g->hello.pid, g->hello.host);
            pmp_sched_dec(self->sched, task->group);
            pmp_timelimit_expire(self->timelimit, task->group);
            pmp_task_destroy(&task);
            s_deliver_event_locked(self, PMP_DONE_TIMEOUT, id, text, -1);
        }
        self->timeout_kill = 1;
        pmp_timelimit_idle(self->timelimit);
        pthread_mutex_unlock(&self->mtx);
        pmp_log(PMP_LOG_INFO, "frontend: %zu task(s) exceeded run_time_max; killing the job",
                expired);
        pmp_launcher_quiet(self->launcher, PMP_LAUNCHER_QUIET_ALL); /* ended on purpose */
        pmp_launcher_signal(self->launcher, SIGKILL);
        return -1;
    }
    next = pmp_timelimit_next(self->timelimit);
    pthread_mutex_unlock(&self->mtx);
    return next == INT64_MAX ? -1 : (long)(next - now);
}

static void s_signal_ready(pmp_executor_t *self, int rc, int e, const pmp_error_t *err)
{
    pthread_mutex_lock(&self->mtx);
    self->ready = 1;
    self->start_rc = rc;
    self->start_errno = e;
    if (err)
        self->start_err = *err;
    pthread_cond_broadcast(&self->ready_cv);
    pthread_mutex_unlock(&self->mtx);
}

static void *s_thread(void *arg)
{
    pmp_executor_t *self = arg;
    if (self->launch) {
        pmp_error_t err = {{0}};
        if (s_launch(self, &err) < 0) {
            int e = errno;
            pmp_endpoint_close_socket(self->endpoint, 0);
            s_signal_ready(self, -1, e, &err);
            return NULL;
        }
    }
    s_signal_ready(self, 0, 0, NULL);

    /* destroy(): SHUTDOWN, grace, SIGTERM, SIGKILL (pmp_launcher.h) */
    pmp_launcher_stop_t ending = {0};
    for (;;) {
        zmq_pollitem_t *items =
            s_poll_items(self, 3 + PMP_LAUNCHER_MAX_FDS + PMP_ENDPOINT_MAX_ITEMS +
                                   pmp_rankwatch_count(self->watch));
        int n = 0;
        items[n++] =
            (zmq_pollitem_t){.socket = pmp_endpoint_socket(self->endpoint), .events = ZMQ_POLLIN};
        items[n++] = (zmq_pollitem_t){.fd = self->efd, .events = ZMQ_POLLIN};
        int running = self->launcher && !pmp_launcher_exited(self->launcher);
        int pidfd_i = -1;
        if (running && pmp_launcher_pidfd(self->launcher) >= 0) {
            pidfd_i = n;
            items[n++] =
                (zmq_pollitem_t){.fd = pmp_launcher_pidfd(self->launcher), .events = ZMQ_POLLIN};
        }
        /* the job's output: stderr, stdout and, while relayed output
         * waits for room, our stdout */
        int out_i = n, nout = 0, out_timeout = -1;
        if (self->launcher) {
            struct pollfd pfds[PMP_LAUNCHER_MAX_FDS];
            nout = pmp_launcher_pollfds(self->launcher, pfds, &out_timeout);
            for (int k = 0; k < nout; k++)
                items[n++] = (zmq_pollitem_t){
                    .fd = pfds[k].fd,
                    .events = (short)((pfds[k].events & POLLIN ? ZMQ_POLLIN : 0) |
                                      (pfds[k].events & POLLOUT ? ZMQ_POLLOUT : 0))};
        }
        int auth_i = n, nauth = pmp_endpoint_pollitems(self->endpoint, items + n);
        n += nauth;
        int watch_i = n;
        n += pmp_rankwatch_pollitems(self->watch, items + n);
        long timeout = out_timeout;
        if (running && pidfd_i < 0 && (timeout < 0 || timeout > S_EXIT_POLL_MS))
            timeout = S_EXIT_POLL_MS;
        long time_left = s_check_time(self); /* may kill the job: seen next round */
        if (time_left >= 0 && (timeout < 0 || time_left < timeout))
            timeout = time_left;
        int64_t death_left = running ? pmp_rankwatch_left(self->watch) : -1;
        if (death_left >= 0 && (timeout < 0 || death_left < timeout))
            timeout = (long)death_left;
        int64_t stop_left = pmp_launcher_stop_left(&ending);
        if (stop_left >= 0 && (timeout < 0 || stop_left < timeout))
            timeout = (long)stop_left;
        int rc = zmq_poll(items, n, timeout);
        if (rc < 0 && errno != EINTR) {
            pmp_log(PMP_LOG_ERROR, "frontend: zmq_poll failed: %s", zmq_strerror(errno));
            PMP_ASSERT(errno == ETERM);
        }
        if (rc > 0 && (items[1].revents & ZMQ_POLLIN)) {
            uint64_t v;
            ssize_t r = read(self->efd, &v, sizeof v);
            (void)r;
        }
        s_serve_interrupts(self);
        int pump = out_timeout >= 0 && rc == 0; /* held output is due */
        for (int k = out_i; rc > 0 && k < out_i + nout; k++)
            pump |= items[k].revents != 0;
        if (pump)
            pmp_launcher_pump(self->launcher);
        for (int k = auth_i; rc > 0 && k < auth_i + nauth; k++)
            if (items[k].revents) { /* handshakes: admit the runtime, refuse the rest */
                pmp_endpoint_serve(self->endpoint);
                break;
            }
        for (int k = watch_i; rc > 0 && k < n; k++)
            if (items[k].revents)
                s_on_rank_exit(self, k - watch_i);
        if (running && pmp_rankwatch_kill_due(self->watch)) {
            pmp_log(PMP_LOG_WARNING,
                    "frontend: the job did not end within %d ms after %s died; killing it",
                    PMP_RANKWATCH_DEATH_GRACE_MS, pmp_rankwatch_death(self->watch));
            pmp_launcher_signal(self->launcher, SIGKILL);
        }
        for (int k = 0; k < S_MAX_RECV_BATCH && s_recv_one(self); k++)
            ;
        if (running && (pidfd_i < 0 || (rc > 0 && items[pidfd_i].revents)) &&
            pmp_launcher_poll_exit(self->launcher))
            s_on_exit(self);
        s_step(self);

        pthread_mutex_lock(&self->mtx);
        int stop = self->stop, grace = self->grace_ms;
        pthread_mutex_unlock(&self->mtx);
        if (!stop)
            continue;
        int job_gone = !self->launcher || pmp_launcher_exited(self->launcher);
        if (!pmp_launcher_stop_begun(&ending)) {
            pthread_mutex_lock(&self->mtx);
            self->shutdown_sent = 1;
            for (size_t i = 0; i < self->ngroups; i++)
                s_send_shutdown(self, &self->groups[i]);
            pthread_mutex_unlock(&self->mtx);
            /* once signalled, the job was ended on purpose: its noise is not shown */
            pmp_launcher_stop_begin(&ending, grace, PMP_LAUNCHER_QUIET_ALL);
        }
        if (self->launch ? job_gone : s_live_groups(self) == 0)
            break;
        if (!pmp_launcher_stop_due(&ending))
            continue;
        if (!self->launch)
            break;
        if (pmp_launcher_stop_next(self->launcher, &ending) == SIGTERM) {
            pmp_log(PMP_LOG_INFO, "frontend: the job did not exit within %d ms; SIGTERM", grace);
        } else {
            pmp_log(PMP_LOG_INFO, "frontend: the job ignored SIGTERM; SIGKILL");
            pmp_launcher_wait(self->launcher);
            s_on_exit(self);
            break;
        }
    }
    /* without a launched job, give SHUTDOWN messages a moment to leave */
    int linger = 0;
    if (!self->launch) {
        pthread_mutex_lock(&self->mtx);
        linger = self->grace_ms < 1000 ? self->grace_ms : 1000;
        pthread_mutex_unlock(&self->mtx);
    }
    pmp_endpoint_close_socket(self->endpoint, linger);
    pthread_mutex_lock(&self->mtx);
    self->io_done = 1; /* nobody is left to serve an interrupt */
    pthread_cond_broadcast(&self->intr_cv);
    pthread_mutex_unlock(&self->mtx);
    return NULL;
}

/* ---- construction -------------------------------------------------------- */

/* Frees everything new() may have made; the thread must not be running. */
static void s_free_all(pmp_executor_t *self)
{
    pmp_launcher_destroy(&self->launcher);
    pmp_endpoint_destroy(&self->endpoint); /* the socket, the directory and what is in it */
    if (self->efd >= 0)
        close(self->efd);
    pmp_task_t *task;
    if (self->queue) {
        while ((task = pmp_queue_pop(self->queue, NULL)))
            pmp_task_destroy(&task);
        pmp_queue_destroy(&self->queue);
    }
    pmp_queue_t **queues[] = {&self->inflight, &self->bcasts, &self->kept};
    for (size_t q = 0; q < sizeof queues / sizeof queues[0]; q++) {
        if (!*queues[q])
            continue;
        while ((task = pmp_queue_pop(*queues[q], NULL)))
            pmp_task_destroy(&task);
        pmp_queue_destroy(queues[q]);
    }
    pmp_queue_destroy(&self->defined); /* holds no tasks */
    pmp_task_destroy(&self->init_kept);
    pmp_sched_destroy(&self->sched);
    pmp_completion_queue_destroy(&self->done);
    if (self->argv) {
        for (size_t i = 0; self->argv[i]; i++)
            free(self->argv[i]);
        free(self->argv);
    }
    pmp_rankwatch_destroy(&self->watch);
    pmp_timelimit_destroy(&self->timelimit);
    free(self->groups);
    free(self->items);
    free(self->exit_text);
    free(self->cwd);
    free(self->exec_path);
    pthread_mutex_destroy(&self->mtx);
    pthread_cond_destroy(&self->ready_cv);
    pthread_cond_destroy(&self->intr_cv);
    free(self);
}

pmp_executor_t *pmp_executor_new(const pmp_executor_config_t *cfg, pmp_error_t *err)
{
    if (pmp_command_validate(cfg, err) < 0) {
        errno = EINVAL;
        return NULL;
    }
    pmp_executor_t *self = calloc(1, sizeof *self);
    if (!self) {
        pmp_error_set(err, "out of memory creating the executor");
        errno = ENOMEM;
        return NULL;
    }
    pmp_fork_watch();
    self->gen = pmp_fork_generation();
    self->owner = getpid();
    self->efd = -1;
    self->pid = -1;
    self->ranks = cfg->ranks;
    self->ranks_per_group = cfg->ranks_per_group;
    self->depth = cfg->pipeline_depth;
    self->launch = cfg->launch != 0;
    self->restart_limit = cfg->restart_limit;
    self->keep_sent = self->launch && (self->restart_limit > 0 || cfg->run_time_max_ms > 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&self->mtx, NULL);
    pthread_cond_init(&self->ready_cv, &ca);
    pthread_cond_init(&self->intr_cv, &ca);
    pthread_condattr_destroy(&ca);
    int e = 0;

    int failed = 0;
    self->cwd = s_strdup_or_null(cfg->cwd, &failed);
    self->queue = pmp_queue_new();
    self->inflight = pmp_queue_new();
    self->bcasts = pmp_queue_new();
    self->defined = pmp_queue_new();
    self->kept = pmp_queue_new();
    self->sched = pmp_sched_new((size_t)self->depth);
    self->done = pmp_completion_queue_new(&self->mtx);
    self->watch = pmp_rankwatch_new(self->launch);
    self->timelimit = pmp_timelimit_new(cfg->run_time_max_ms, cfg->run_time_grace_ms
                                                                  ? cfg->run_time_grace_ms
                                                                  : PMP_EXECUTOR_RUN_TIME_GRACE_MS);
    self->next_seq = 1;
    if (failed || !self->queue || !self->inflight || !self->bcasts || !self->defined ||
        !self->kept || !self->sched || !self->done || !self->watch || !self->timelimit)
        goto nomem;

    if (self->launch) {
        const char *launcher = cfg->flux ? "flux" : cfg->mpiexec;
        self->exec_path = pmp_launcher_which(launcher, cfg->flux ? "flux" : "mpiexec", err);
        if (!self->exec_path)
            goto fail_errno;
        char *rt = pmp_launcher_which(cfg->runtime, "the pympipool runtime", err);
        if (!rt)
            goto fail_errno;
        free(rt);
        if (self->cwd) {
            struct stat st;
            if (stat(self->cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
                pmp_error_set(err, "cwd '%s' is not a directory", self->cwd);
                errno = ENOENT;
                goto fail_errno;
            }
        }
    }

    /* the private directory, the socket in it (or on cfg->hostname) and
     * who may connect */
    self->endpoint = pmp_endpoint_new(cfg->hostname, err);
    if (!self->endpoint)
        goto fail_errno;
    if (!self->launch && pmp_endpoint_write_credentials(self->endpoint, err) < 0)
        goto fail_errno; /* a queue adapter starts the job later */

    self->argv = pmp_command_argv(cfg, pmp_endpoint_address(self->endpoint),
                                  pmp_endpoint_credentials_path(self->endpoint));
    if (!self->argv)
        goto nomem;
    self->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->efd < 0) {
        e = errno;
        pmp_error_set(err, "cannot create an eventfd: %s", strerror(e));
        errno = e;
        goto fail_errno;
    }

    /* the I/O thread takes no signals: they belong to the application */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    e = pthread_create(&self->thread, NULL, s_thread, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        pmp_error_set(err, "cannot start the executor's I/O thread: %s", strerror(e));
        errno = e;
        goto fail_errno;
    }
    self->thread_started = 1;
    pthread_mutex_lock(&self->mtx);
    while (!self->ready)
        pthread_cond_wait(&self->ready_cv, &self->mtx);
    int rc = self->start_rc;
    pthread_mutex_unlock(&self->mtx);
    if (rc < 0) {
        pthread_join(self->thread, NULL);
        if (err)
            *err = self->start_err;
        e = self->start_errno;
        s_free_all(self);
        errno = e;
        return NULL;
    }
    return self;

nomem:
    pmp_error_set(err, "out of memory creating the executor");
    errno = ENOMEM;
fail_errno:
    e = errno;
    s_free_all(self);
    errno = e;
    return NULL;
}

void pmp_executor_destroy(pmp_executor_t **self_p, int grace_ms)
{
    if (!self_p || !*self_p)
        return;
    pmp_executor_t *self = *self_p;
    *self_p = NULL;
    if (s_in_child(self))
        return; /* the parent's: its thread is not here, its locks may be held */
    pthread_mutex_lock(&self->mtx);
    self->stop = 1;
    self->grace_ms = grace_ms < 0 ? 0 : grace_ms;
    pthread_mutex_unlock(&self->mtx);
    s_wake(self);
    pthread_join(self->thread, NULL);
    s_free_all(self);
}

const char *pmp_executor_endpoint(const pmp_executor_t *self)
{
    return pmp_endpoint_address(self->endpoint);
}

const char *const *pmp_executor_command(const pmp_executor_t *self)
{
    return (const char *const *)self->argv;
}

pid_t pmp_executor_pid(const pmp_executor_t *self)
{
    return __atomic_load_n(&self->pid, __ATOMIC_RELAXED); /* changes at a restart */
}

int pmp_executor_forked(const pmp_executor_t *self)
{
    return s_in_child(self);
}

pid_t pmp_executor_owner(const pmp_executor_t *self)
{
    return self->owner;
}

/* ---- submit and friends -------------------------------------------------- */

/* Queues a built broadcast behind everything submitted so far; mtx held.
 * Returns 0 or ENOMEM (task untouched). */
static int s_queue_broadcast_locked(pmp_executor_t *self, pmp_task_t *task)
{
    task->seq = self->next_seq;
    if (pmp_queue_push(self->bcasts, task->seq, task) < 0)
        return ENOMEM;
    self->next_seq++;
    pmp_task_arm(task);
    return 0;
}

int pmp_executor_submit(pmp_executor_t *self, uint64_t task_id, int type, uint32_t flags,
                        const pmp_buffer_t *bufs, size_t nbufs, pmp_error_t *err)
{
    return pmp_executor_submit_calls(self, task_id, type, flags, bufs, nbufs, 1, err);
}

int pmp_executor_restarts(pmp_executor_t *self)
{
    if (s_in_child(self))
        return pmp_fork_fail(NULL, "executor", self->owner);
    pthread_mutex_lock(&self->mtx);
    int n = self->restarts;
    pthread_mutex_unlock(&self->mtx);
    return n;
}

int pmp_executor_submit_calls(pmp_executor_t *self, uint64_t task_id, int type, uint32_t flags,
                              const pmp_buffer_t *bufs, size_t nbufs, uint32_t ncalls,
                              pmp_error_t *err)
{
    if (s_in_child(self))
        return pmp_fork_fail(err, "executor", self->owner);
    if (ncalls < 1)
        ncalls = 1;
    if (type != PMP_MSG_TASK && type != PMP_MSG_INIT) {
        pmp_error_set(err, "submit: type must be TASK (%d) or INIT (%d), not %d", PMP_MSG_TASK,
                      PMP_MSG_INIT, type);
        errno = EINVAL;
        return -1;
    }
    if (task_id == 0) {
        pmp_error_set(err, "submit: task_id must not be 0");
        errno = EINVAL;
        return -1;
    }
    if (flags & ~PMP_FLAG_KNOWN_MASK) {
        pmp_error_set(err, "submit: unknown flags 0x%x", (unsigned)(flags & ~PMP_FLAG_KNOWN_MASK));
        errno = EINVAL;
        return -1;
    }
    if (pmp_task_check_bufs("submit", bufs, nbufs, 1, err) < 0)
        return -1;

    pmp_task_t *task = pmp_task_new(task_id, type, flags, bufs, nbufs);
    if (!task) {
        pmp_error_set(err, "submit: out of memory");
        errno = ENOMEM;
        return -1;
    }
    task->ncalls = ncalls;
    int e = 0;
    pthread_mutex_lock(&self->mtx);
    if (self->closing) {
        pmp_error_set(err, "submit: the executor is shut down (close() was called)");
        e = ESHUTDOWN;
    } else if (self->exited) {
        pmp_error_set(err, "submit: %s", self->exit_text);
        e = EPIPE;
    } else if (type == PMP_MSG_INIT && self->init_submitted) {
        pmp_error_set(err, "submit: an init message was already submitted; only one is allowed");
        e = EINVAL;
    } else if (type == PMP_MSG_INIT && self->any_task) {
        pmp_error_set(err, "submit: the init message must come before the first task");
        e = EINVAL;
    } else if (type == PMP_MSG_TASK &&
               (pmp_queue_find(self->queue, task_id) || pmp_queue_find(self->inflight, task_id))) {
        pmp_error_set(err, "submit: task id %llu is already in use", (unsigned long long)task_id);
        e = EINVAL;
    } else if (type == PMP_MSG_INIT) {
        /* an INIT is a broadcast that late groups get too */
        if ((e = s_queue_broadcast_locked(self, task)) == 0)
            self->init_submitted = 1;
        else
            pmp_error_set(err, "submit: out of memory");
    } else if (pmp_queue_push(self->queue, task_id, task) < 0) {
        pmp_error_set(err, "submit: out of memory");
        e = ENOMEM;
    } else {
        task->seq = self->next_seq++;
        pmp_task_arm(task);
        self->any_task = 1;
    }
    pthread_mutex_unlock(&self->mtx);
    if (e) {
        pmp_task_destroy(&task); /* disarmed: calls no free_fn */
        errno = e;
        return -1;
    }
    s_wake(self);
    return 0;
}

int pmp_executor_broadcast(pmp_executor_t *self, int type, uint64_t key, const pmp_buffer_t *bufs,
                           size_t nbufs, pmp_error_t *err)
{
    if (s_in_child(self))
        return pmp_fork_fail(err, "executor", self->owner);
    if (type != PMP_MSG_DEFINE && type != PMP_MSG_FORGET) {
        pmp_error_set(err, "broadcast: type must be DEFINE (%d) or FORGET (%d), not %d",
                      PMP_MSG_DEFINE, PMP_MSG_FORGET, type);
        errno = EINVAL;
        return -1;
    }
    if (key == 0) {
        pmp_error_set(err, "broadcast: the key must not be 0");
        errno = EINVAL;
        return -1;
    }
    int define = type == PMP_MSG_DEFINE;
    if (pmp_task_check_bufs("broadcast", bufs, nbufs, define ? 1 : 0, err) < 0)
        return -1;
    if (!define && nbufs > 1) {
        pmp_error_set(err, "broadcast: a forget carries at most one (empty) buffer, not %zu",
                      nbufs);
        errno = EINVAL;
        return -1;
    }

    pmp_task_t *task = pmp_task_new(key, type, 0, bufs, nbufs);
    if (!task) {
        pmp_error_set(err, "broadcast: out of memory");
        errno = ENOMEM;
        return -1;
    }
    int e = 0;
    pthread_mutex_lock(&self->mtx);
    int known = pmp_queue_find(self->defined, key) != NULL;
    if (define && self->closing) {
        pmp_error_set(err, "broadcast: the executor is shut down (close() was called)");
        e = ESHUTDOWN;
    } else if (define && self->exited) {
        pmp_error_set(err, "broadcast: %s", self->exit_text);
        e = EPIPE;
    } else if (define && known) {
        pmp_error_set(err, "broadcast: key %llu is already defined; forget it first",
                      (unsigned long long)key);
        e = EINVAL;
    } else if (!define && !known) {
        pmp_error_set(err, "broadcast: key %llu is not defined, so it cannot be forgotten",
                      (unsigned long long)key);
        e = EINVAL;
    } else if (define && pmp_queue_push(self->defined, key, self) < 0) {
        pmp_error_set(err, "broadcast: out of memory");
        e = ENOMEM;
    } else if ((e = s_queue_broadcast_locked(self, task)) != 0) {
        if (define)
            pmp_queue_remove(self->defined, key);
        pmp_error_set(err, "broadcast: out of memory");
    } else if (!define) {
        pmp_queue_remove(self->defined, key);
    }
    pthread_mutex_unlock(&self->mtx);
    if (e) {
        pmp_task_destroy(&task); /* disarmed: calls no free_fn */
        errno = e;
        return -1;
    }
    s_wake(self);
    return 0;
}

int pmp_executor_cancel(pmp_executor_t *self, uint64_t task_id)
{
    if (s_in_child(self))
        return pmp_fork_fail(NULL, "executor", self->owner);
    pthread_mutex_lock(&self->mtx);
    pmp_task_t *task = pmp_queue_remove(self->queue, task_id);
    pthread_mutex_unlock(&self->mtx);
    if (!task)
        return 0;
    pmp_task_destroy(&task);
    s_wake(self); /* close() may now be able to proceed */
    return 1;
}

int pmp_executor_cancel_all(pmp_executor_t *self, uint64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (s_in_child(self))
        return pmp_fork_fail(NULL, "executor", self->owner);
    pthread_mutex_lock(&self->mtx);
    size_t count = pmp_queue_size(self->queue);
    if (count == 0) {
        pthread_mutex_unlock(&self->mtx);
        return 0;
    }
    uint64_t *out = malloc(count * sizeof *out);
    pmp_task_t **tasks = malloc(count * sizeof *tasks);
    if (!out || !tasks) {
        pthread_mutex_unlock(&self->mtx);
        free(out);
        free(tasks);
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        tasks[i] = pmp_queue_pop(self->queue, &out[i]);
    pthread_mutex_unlock(&self->mtx);
    for (size_t i = 0; i < count; i++)
        pmp_task_destroy(&tasks[i]);
    free(tasks);
    *ids = out;
    *n = count;
    s_wake(self);
    return 0;
}

size_t pmp_executor_pending(pmp_executor_t *self)
{
    if (s_in_child(self)) {
        pmp_fork_fail(NULL, "executor", self->owner);
        return 0;
    }
    pthread_mutex_lock(&self->mtx);
    size_t n = pmp_queue_size(self->queue);
    pthread_mutex_unlock(&self->mtx);
    return n;
}

int pmp_executor_close(pmp_executor_t *self)
{
    if (s_in_child(self))
        return pmp_fork_fail(NULL, "executor", self->owner);
    pthread_mutex_lock(&self->mtx);
    self->closing = 1;
    pthread_mutex_unlock(&self->mtx);
    s_wake(self);
    return 0;
}

int pmp_executor_interrupt(pmp_executor_t *self)
{
    if (s_in_child(self))
        return pmp_fork_fail(NULL, "executor", self->owner);
    pthread_mutex_lock(&self->mtx);
    if (self->exited || self->stop || self->io_done) {
        pthread_mutex_unlock(&self->mtx);
        return 0;
    }
    /* read by the I/O thread without the lock, as a hint */
    uint64_t ticket = __atomic_add_fetch(&self->intr_asked, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&self->mtx);
    s_wake(self);
    pthread_mutex_lock(&self->mtx);
    while (self->intr_served < ticket && !self->io_done)
        pthread_cond_wait(&self->intr_cv, &self->mtx);
    int n = self->intr_served >= ticket ? self->intr_count : 0;
    pthread_mutex_unlock(&self->mtx);
    return n;
}

pmp_completion_t *pmp_executor_wait(pmp_executor_t *self, int timeout_ms)
{
    if (s_in_child(self)) {
        pmp_fork_fail(NULL, "executor", self->owner);
        return NULL;
    }
    return pmp_completion_queue_wait(self->done, timeout_ms);
}
