/*
 * pmp_executor_io.c - the executor's I/O thread: one poll loop that owns
 * the connections to the groups (local links, pmp_executor_links.c, or the
 * ROUTER socket over TCP), sends every task and broadcast to the groups,
 * hands every message they send back to its handler (pmp_executor_recv.c),
 * and watches the job (pmp_executor.c has the design as a whole;
 * pmp_executor_internal.h the shared state).
 *
 * The path of a call through this file.  pmp_executor_submit() queues the
 * task under the mutex and writes the eventfd.  The loop wakes, and
 * s_step() pops the head of the queue for the least loaded group with room
 * (pmp_sched), sends it (header and the task's frames, on the group's link
 * or, over TCP, behind its ZeroMQ identity; the tasks picked one after the
 * other for the same group leave together, one write on a link, one
 * ZeroMQ message for a leader that takes batches, one pack of their frames
 * when they are small and the leader takes packs) and moves it to the
 * in-flight table.  A busy group is refilled at half its window, with its
 * share of the queue at once (s_step_locked), so that such runs form.
 * The group's leader answers with RESULT or ERROR; the link or
 * pmp_executor_io_recv_router() reads the message and
 * pmp_executor_io_on_message() (pmp_executor_recv.c) takes the task out
 * of the in-flight table, releases its frames and queues the completion
 * with the received frames (moved, never copied) for pmp_executor_wait();
 * the loop wakes the waiters once per round.  A HELLO adds a group, which
 * gets the INIT and the kept DEFINEs first (pmp_executor_io_greet_locked);
 * a GOODBYE retires one.
 *
 * One round of the loop.  The poll set is, in this order: the ROUTER (TCP
 * only), the eventfd, the job's pidfd, the job's output pipes (and fd 1
 * while relayed output waits for room), the ZAP handler's sockets (TCP,
 * pmp_endpoint), a pidfd per local rank (pmp_rankwatch), and the links:
 * the listening socket, connections that have not said hello, each
 * group's link (pmp_executor_links.c).  The timeout is the earliest of:
 * the output relay's next write, the 100 ms waitpid poll where there is no
 * pidfd, the hard time limit's next deadline (pmp_job_check_time), the
 * grace after a rank's death, and destroy()'s stop steps.  After the poll:
 * interrupts are served, output is pumped, handshakes answered, rank exits
 * noted, up to S_MAX_RECV_BATCH messages handled (per link), the job's exit handled
 * (pmp_job_on_exit), and s_step() sends whatever now has room.
 *
 * The mutex.  Every send of this thread happens with the callers' mutex
 * held (pmp_executor.c says which and why); the receive side takes it
 * only to update the tables and queue the completion.  Nothing here calls
 * into Python or blocks on a peer: no send blocks, a
 * message from an unknown or malformed peer is dropped with a warning, and
 * out of memory is fatal rather than a lost completion.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "pmp_executor_internal.h"
#include "pmp_job.h"

#define S_EXIT_POLL_MS 100   /* waitpid poll period without a pidfd */
#define S_MAX_RECV_BATCH 256 /* messages handled per poll round */

/* ---- groups -------------------------------------------------------------- */

static size_t s_index(const pmp_executor_t *self, const pmp_executor_group_t *g)
{
    return pmp_executor_group_index(self, g);
}

static size_t s_load(const pmp_executor_t *self, const pmp_executor_group_t *g)
{
    return pmp_sched_load(self->sched, s_index(self, g));
}

/* The group left or cannot be reached: it gets nothing more. */
void pmp_executor_io_group_gone(pmp_executor_t *self, pmp_executor_group_t *g)
{
    g->gone = 1;
    pmp_sched_retire(self->sched, s_index(self, g));
}

pmp_executor_group_t *pmp_executor_io_find_group(pmp_executor_t *self, const void *id, size_t len)
{
    size_t i = pmp_sched_find(self->sched, id, len);
    return i == PMP_SCHED_NONE ? NULL : &self->groups[i];
}

static size_t s_live_groups(const pmp_executor_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->ngroups; i++)
        n += !self->groups[i].gone;
    return n;
}

/* ---- sending (mtx held) --------------------------------------------------- */

/* Completes in-flight tasks (pmp_executor_internal.h).  mtx held. */
void pmp_executor_io_fail_inflight_locked(pmp_executor_t *self, size_t gi, int kind,
                                          const char *text)
{
    size_t n = pmp_queue_size(self->inflight);
    for (size_t k = 0; k < n; k++) {
        uint64_t id;
        pmp_task_t *task = pmp_queue_pop(self->inflight, &id);
        if (gi == SIZE_MAX || task->group == gi) {
            pmp_sched_dec(self->sched, task->group);
            pmp_task_destroy(&task); /* its buffers go before its completion */
            pmp_executor_deliver_locked(self, kind, id, text, -1);
        } else {
            PMP_ASSERT(pmp_queue_push(self->inflight, id, task) == 0);
        }
    }
}

/* Completes every in-flight task of group gi (or of every group when gi is
 * SIZE_MAX) as BROKEN with text; mtx held. */
static void s_break_inflight_locked(pmp_executor_t *self, size_t gi, const char *text)
{
    pmp_executor_io_fail_inflight_locked(self, gi, PMP_DONE_BROKEN, text);
}

/* Group g is gone (how: "left", "became unreachable"): it gets nothing
 * more, and the tasks it held complete as BROKEN.  mtx held. */
void pmp_executor_io_group_lost_locked(pmp_executor_t *self, pmp_executor_group_t *g,
                                       const char *how)
{
    pmp_executor_io_group_gone(self, g);
    if (s_load(self, g) == 0)
        return;
    char text[PMP_ERROR_TEXT];
    snprintf(text, sizeof text,
             "group %d of the pympipool-runtime job (leader pid %lld on %s) %s while running "
             "this task",
             (int)g->hello.group, (long long)g->hello.pid, g->hello.host, how);
    s_break_inflight_locked(self, s_index(self, g), text);
}

/* s_send_locked over group g's local link, with or without mtx (only the
 * I/O thread touches a link).  A link that already ended refuses (-1,
 * msgs untouched); otherwise the msgs move into the link, and a write that
 * fails shows up as the link's end when it is read next
 * (pmp_executor_io_link_lost), which completes what the group held.
 * While self->corking, the message is only queued on the link (s_step
 * writes each link's queue at once after a batch). */
static int s_send_link(pmp_executor_t *self, pmp_executor_group_t *g, int type, uint64_t id,
                       uint32_t flags, zmq_msg_t *msgs, size_t nmsgs)
{
    pmp_header_t hdr = {
        .type = (uint16_t)type, .task_id = id, .flags = flags, .nframes = (uint32_t)nmsgs};
    if (!g->link) { /* ended: retired already (pmp_executor_io_link_lost) */
        pmp_log(PMP_LOG_DEBUG, "frontend: not sending %s to group %d: its link is closed",
                pmp_msg_type_name(type), (int)g->hello.group);
        return -1;
    }
    zmq_msg_t stack[5];
    zmq_msg_t *parts = nmsgs < 5 ? stack : malloc((nmsgs + 1) * sizeof *parts);
    PMP_ASSERT(parts != NULL);
    PMP_ASSERT(zmq_msg_init_size(&parts[0], PMP_HEADER_SIZE) == 0);
    pmp_header_encode(&hdr, zmq_msg_data(&parts[0]));
    for (size_t i = 0; i < nmsgs; i++) {
        zmq_msg_init(&parts[i + 1]);
        zmq_msg_move(&parts[i + 1], &msgs[i]);
        zmq_msg_close(&msgs[i]);
        zmq_msg_init(&msgs[i]);
    }
    int rc = self->corking ? pmp_link_queue(g->link, parts, nmsgs + 1)
                           : pmp_link_send(g->link, parts, nmsgs + 1);
    if (rc < 0)
        pmp_log(PMP_LOG_INFO, "frontend: cannot send %s to group %d: %s", pmp_msg_type_name(type),
                (int)g->hello.group, strerror(errno));
    else
        g->corked |= self->corking;
    if (parts != stack)
        free(parts);
    return 0;
}

/* The ROUTER could not route to group g (its identity frame failed): the
 * group is marked gone and what it held is completed, or left to the job's
 * exit when a restart may follow.  mtx held. */
static void s_unreachable_locked(pmp_executor_t *self, pmp_executor_group_t *g, int type)
{
    pmp_log(PMP_LOG_WARNING, "frontend: cannot send %s to group %d: %s", pmp_msg_type_name(type),
            (int)g->hello.group, zmq_strerror(errno));
    if (self->keep_sent && self->launch)
        /* A restart is possible: a group that cannot be reached has died
         * or is about to, and the job's exit or restart completes what it
         * held, saying why (pmp_job.c); failing it here would only race
         * that with a vaguer reason. */
        pmp_executor_io_group_gone(self, g);
    else
        pmp_executor_io_group_lost_locked(self, g, "became unreachable");
}

/* Sends header + msgs to group g, consuming the msgs on success; every
 * send of the executor goes through here or, for several tasks at once
 * over ZeroMQ, through s_send_run_locked.  An unreachable group is marked
 * gone and its tasks in flight complete as BROKEN (with restarts possible,
 * when the job's exit or restart completes them).  Returns 0, or -1 if
 * the group is unreachable (the msgs are then untouched, unless the
 * failure came after the first frame, which ZeroMQ does not do for
 * ROUTER).  Never blocks (no send limit, mandatory routing).  mtx held. */
static int s_send_locked(pmp_executor_t *self, pmp_executor_group_t *g, int type, uint64_t id,
                         uint32_t flags, zmq_msg_t *msgs, size_t nmsgs)
{
    if (g->link || !pmp_endpoint_socket(self->endpoint))
        return s_send_link(self, g, type, id, flags, msgs, nmsgs);
    pmp_header_t hdr = {
        .type = (uint16_t)type, .task_id = id, .flags = flags, .nframes = (uint32_t)nmsgs};
    unsigned char hbuf[PMP_HEADER_SIZE];
    pmp_header_encode(&hdr, hbuf);
    void *router = pmp_endpoint_socket(self->endpoint);
    if (zmq_send(router, g->identity, g->identity_size, ZMQ_SNDMORE) < 0) {
        s_unreachable_locked(self, g, type);
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

/* SHUTDOWN to group g, once; it is never picked again.  mtx held. */
static void s_send_shutdown_locked(pmp_executor_t *self, pmp_executor_group_t *g)
{
    if (g->gone || g->shutdown_sent)
        return;
    zmq_msg_t empty;
    zmq_msg_init(&empty);
    if (s_send_locked(self, g, PMP_MSG_SHUTDOWN, 0, 0, &empty, 1) < 0)
        zmq_msg_close(&empty);
    g->shutdown_sent = 1;
    pmp_sched_retire(self->sched, s_index(self, g));
}

/* SHUTDOWN to every group (close() once the queue drained, or destroy()):
 * the groups say GOODBYE and the runtime finalises.  mtx held. */
static void s_shutdown_all_locked(pmp_executor_t *self)
{
    self->shutdown_sent = 1;
    for (size_t i = 0; i < self->ngroups; i++)
        s_send_shutdown_locked(self, &self->groups[i]);
}

/* Sends task to group g and keeps its frames: the group gets shared
 * references to them (zmq_msg_copy, no byte copy).  A broadcast goes to
 * every group this way, and so does a task when the job may be restarted
 * (keep_sent), so that a task a group held but had not started can be
 * sent again to the next job.  Returns 0, or -1 as s_send_locked.  mtx
 * held for a group over ZeroMQ; a group with a local link needs none
 * (s_send_link). */
static int s_send_shared(pmp_executor_t *self, pmp_executor_group_t *g, const pmp_task_t *task)
{
    zmq_msg_t stack[4];
    zmq_msg_t *copies = task->nmsgs <= 4 ? stack : calloc(task->nmsgs, sizeof *copies);
    PMP_ASSERT(copies != NULL);
    for (size_t i = 0; i < task->nmsgs; i++) {
        zmq_msg_init(&copies[i]);
        PMP_ASSERT(zmq_msg_copy(&copies[i], &task->msgs[i]) == 0); /* shares, no copy */
    }
    int rc = s_send_locked(self, g, task->type, task->id, task->flags, copies, task->nmsgs);
    if (rc < 0)
        for (size_t i = 0; i < task->nmsgs; i++)
            zmq_msg_close(&copies[i]);
    if (copies != stack)
        free(copies);
    return rc;
}

/* Sends a broadcast to one group, unless it left or was shut down.  mtx
 * held. */
static void s_send_copy_locked(pmp_executor_t *self, pmp_executor_group_t *g,
                               const pmp_task_t *task)
{
    if (!g->gone && !g->shutdown_sent)
        s_send_shared(self, g, task);
}

/* pmp_queue_foreach callback of s_sync_group_locked: ctx is {self, g}. */
static void s_send_kept_locked(uint64_t key, void *item, void *arg)
{
    (void)key;
    void **ctx = arg;
    s_send_copy_locked(ctx[0], ctx[1], item);
}

/* What a group that just connected must know before its first task: the
 * INIT, then the DEFINEs still kept, in order.  mtx held. */
static void s_sync_group_locked(pmp_executor_t *self, pmp_executor_group_t *g)
{
    if (self->init_kept)
        s_send_copy_locked(self, g, self->init_kept);
    void *ctx[2] = {self, g};
    pmp_queue_foreach(self->kept, s_send_kept_locked, ctx);
}

void pmp_executor_io_greet_locked(pmp_executor_t *self, pmp_executor_group_t *g)
{
    if (self->shutdown_sent || self->stop || self->exited)
        s_send_shutdown_locked(self, g);
    else
        s_sync_group_locked(self, g);
}

/* Sends a broadcast (the head of bcasts) to every live group and updates
 * what late groups get.  Takes ownership of task.  mtx held. */
static void s_run_broadcast_locked(pmp_executor_t *self, pmp_task_t *task)
{
    for (size_t i = 0; i < self->ngroups; i++)
        s_send_copy_locked(self, &self->groups[i], task);
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

/* Tasks s_step_locked took for local links, written after the unlock. */
#define S_BATCH 64
/* Tasks one group is given at once (a run), and the frames they may take:
 * a run to a group over ZeroMQ leaves in one message when its leader takes
 * batches (s_send_run_locked), and a leader drops a message of more than
 * PMP_MAX_FRAMES + 1 frames. */
#define S_RUN_MAX PMP_BATCH_MAX
#define S_RUN_FRAMES 1024
typedef struct {
    pmp_task_t *task[S_BATCH];
    size_t group[S_BATCH];
    size_t n;
} s_batch_t;

/* The tasks picked one after the other for the same ROUTER group: they
 * are in flight already (in the table, counted in the group's load) and
 * leave together, as one batch for a leader that takes batches, when the
 * next pick is another group or the round ends.  In a busy pool the group
 * that just answered is the only one with room, so its refill is a run. */
typedef struct {
    size_t gi;
    size_t k, frames;
    pmp_task_t *task[S_RUN_MAX];
} s_run_t;

/* Sends the run.  When its group cannot be routed to, the tasks not sent
 * leave the in-flight table and go back to the head of the queue, in
 * order, for another group, and only then is the group given up (so that
 * only what it really held fails).  Returns 1, or 0 after such a failure.
 * mtx held. */
static int s_flush_run_locked(pmp_executor_t *self, s_run_t *run)
{
    size_t k = run->k;
    run->k = run->frames = 0;
    if (k == 0)
        return 1;
    pmp_executor_group_t *g = &self->groups[run->gi];
    size_t sent = pmp_executor_io_send_run_locked(self, g, run->task, k);
    if (sent == k)
        return 1;
    int e = errno;
    for (size_t i = k; i-- > sent;) {
        pmp_task_t *t = run->task[i];
        PMP_ASSERT(pmp_queue_remove(self->inflight, t->id) == t);
        pmp_sched_dec(self->sched, run->gi);
        PMP_ASSERT(pmp_queue_push_front(self->queue, t->id, t) == 0); /* runs hold no pinned task */
    }
    errno = e;
    s_unreachable_locked(self, g, PMP_MSG_TASK);
    return 0;
}

/* How many tasks a group may hold now: the window, but no more than the
 * base depth while groups of the job are still starting (the others take
 * the rest when they come).  mtx held. */
static size_t s_limit(const pmp_executor_t *self)
{
    return pmp_sched_live(self->sched) >= (size_t)(self->ranks / self->ranks_per_group)
               ? pmp_window_limit(self->window)
               : (size_t)self->depth;
}

/* Task, now in the in-flight table, goes to group gi: counted in the
 * group's load, its clocks started.  The caller sends it.  mtx held. */
static void s_take_locked(pmp_executor_t *self, pmp_task_t *task, size_t gi)
{
    task->group = gi;
    task->sent_ms = pmp_timelimit_sent(self->timelimit);
    if (pmp_sched_load(self->sched, gi) == 0)
        pmp_window_sent(self->window, gi, 0, pmp_executor_now_ns());
    pmp_sched_inc(self->sched, gi);
}

/* The pinned tasks that can go now, each to its group, in one pass that
 * keeps their order (pmp_executor_pin.c says how and why).  Returns 1 when
 * the batch is full (the rest waits for the next call), else 0.  mtx held. */
static int s_step_pinned_locked(pmp_executor_t *self, s_batch_t *batch)
{
    const pmp_task_t *bcast = pmp_queue_peek(self->bcasts, NULL);
    size_t n = pmp_queue_size(self->pinned), limit = s_limit(self);
    int full = 0;
    for (size_t k = 0; k < n; k++) {
        pmp_task_t *task = pmp_queue_pop(self->pinned, NULL);
        size_t gi = full || (bcast && bcast->seq < task->seq)
                        ? PMP_SCHED_NONE
                        : pmp_executor_pin_group(self, task->pin);
        int room = gi != PMP_SCHED_NONE && pmp_sched_load(self->sched, gi) < limit;
        if (room && self->groups[gi].link && batch->n == S_BATCH)
            full = 1, room = 0;
        if (!room) {
            PMP_ASSERT(pmp_queue_push(self->pinned, task->id, task) == 0);
            continue;
        }
        pmp_executor_group_t *g = &self->groups[gi];
        PMP_ASSERT(pmp_queue_push(self->inflight, task->id, task) == 0);
        s_take_locked(self, task, gi);
        if (g->link) {
            batch->task[batch->n] = task;
            batch->group[batch->n++] = gi;
        } else if (pmp_executor_io_send_run_locked(self, g, &task, 1) != 1) {
            int e = errno;
            PMP_ASSERT(pmp_queue_remove(self->inflight, task->id) == task);
            pmp_sched_dec(self->sched, gi);
            PMP_ASSERT(pmp_queue_push(self->pinned, task->id, task) == 0);
            errno = e;
            s_unreachable_locked(self, g, PMP_MSG_TASK);
        }
    }
    return full;
}

/* Sends the broadcasts and queued tasks, oldest first, wherever there is
 * room, and moves close() along.  The first half of a call's path: the
 * task leaves the queue, is sent and enters the in-flight table in one
 * critical section; over ZeroMQ literally, over local links the writes
 * wait in batch until the caller has let the mutex go (s_step), so that
 * callers never wait for a system call of this thread.  A task in batch
 * is in the in-flight table already, and only this thread can take it
 * out, so nobody sees it in neither place, and the order of the writes is
 * that of the queue.  A broadcast is run only with an empty batch, so it
 * is never written before an older task.  Returns whether it stopped
 * because the batch was full.  mtx held. */
static int s_step_locked(pmp_executor_t *self, s_batch_t *batch)
{
    s_run_t run = {.k = 0, .frames = 0};
    /* A busy group is refilled only once half its window is free, and then
     * with its share of the queue at once (the tasks waiting, over the
     * groups at or below half their window, up to its full window): its
     * tasks leave in one message (a pack for a leader that takes them)
     * instead of one a message as the replies trickle in.  A task held
     * back meanwhile would only have waited behind more than half a window
     * of work in that group, and it goes to the group that first gets
     * there.  A share, not the whole window: calls submitted together
     * still spread over the groups with room as evenly as one a pick would
     * spread them (a long call does not get the short ones behind it that
     * another group would run), and an idle group gets one task a pick. */
    size_t limit = s_limit(self);
    size_t fill_gi = PMP_SCHED_NONE, fill_left = 0;
    /* While the job is being killed (a time limit, a rank that died) it gets
     * nothing more: what is queued waits for the next job, if any. */
    if (!self->exited && !self->stop && !self->timeout_kill && !pmp_rankwatch_death(self->watch)) {
        if (pmp_queue_size(self->pinned) > 0 && s_step_pinned_locked(self, batch))
            return 1;
        for (;;) {
            pmp_task_t *head = pmp_queue_peek(self->queue, NULL);
            pmp_task_t *bcast = pmp_queue_peek(self->bcasts, NULL);
            if (bcast && (!head || bcast->seq < head->seq)) {
                if (!s_flush_run_locked(self, &run))
                    continue;
                if (batch->n > 0)
                    return 1; /* its older tasks are written first */
                s_run_broadcast_locked(self, pmp_queue_pop(self->bcasts, NULL));
                continue;
            }
            if (!head)
                break;
            if (batch->n == S_BATCH) {
                if (!s_flush_run_locked(self, &run))
                    continue;
                return 1;
            }
            size_t gi = fill_left > 0 ? fill_gi : pmp_sched_pick(self->sched);
            if (gi == PMP_SCHED_NONE)
                break;
            /* the least loaded group: when it has no room, none has.  While
             * groups of the job are still starting, no group holds more
             * than its base depth: the others take the rest when they come */
            size_t load = pmp_sched_load(self->sched, gi);
            if (load >= limit)
                break;
            if (fill_left == 0 && load > 0) {
                if (load > limit / 2)
                    break; /* every group holds more than half its window */
                size_t open = pmp_sched_up_to(self->sched, limit / 2); /* >= 1: gi */
                size_t share = (pmp_queue_size(self->queue) + open - 1) / open;
                fill_gi = gi;
                fill_left = share < limit - load ? share : limit - load;
            }
            if (fill_left > 0)
                fill_left--;
            pmp_executor_group_t *best = &self->groups[gi];
            if (!best->link && run.k > 0 &&
                (run.gi != gi || run.k == S_RUN_MAX ||
                 run.frames + head->nmsgs + 1 > S_RUN_FRAMES) &&
                !s_flush_run_locked(self, &run)) {
                fill_left = 0;
                continue; /* that group is gone: pick again */
            }
            /* into the in-flight table: the queue's and the table's ids
             * are one map, so the task's slot stays where it is */
            pmp_task_t *task = pmp_queue_move_head(self->queue, self->inflight, NULL);
            s_take_locked(self, task, gi);
            if (best->link) {
                batch->task[batch->n] = task;
                batch->group[batch->n++] = gi;
            } else {
                run.gi = gi;
                run.task[run.k++] = task;
                run.frames += task->nmsgs + 1;
            }
        }
        if (!s_flush_run_locked(self, &run))
            return 1; /* some went back to the queue: another round */
        if (self->closing && !self->shutdown_sent && pmp_queue_size(self->queue) == 0 &&
            pmp_queue_size(self->pinned) == 0 && pmp_queue_size(self->inflight) == 0)
            s_shutdown_all_locked(self);
    }
    if (self->closing && !self->closed_delivered &&
        (self->exited || (!self->launch && self->shutdown_sent && s_live_groups(self) == 0))) {
        self->closed_delivered = 1;
        pmp_executor_deliver_locked(self, PMP_EVENT_CLOSED, 0, "", -1);
    }
    return 0;
}

/* s_step_locked, then the batch's writes without the mutex, as often as
 * the batch fills up: queued on the links first, then one write per link
 * (several tasks of one group share a system call and, on the leader's
 * side, a wake-up and a read).  Called after every poll round; takes
 * mtx. */
static void s_step(pmp_executor_t *self)
{
    s_batch_t batch;
    int more = 1;
    while (more) {
        batch.n = 0;
        pthread_mutex_lock(&self->mtx);
        more = s_step_locked(self, &batch);
        pthread_mutex_unlock(&self->mtx);
        self->corking = 1;
        for (size_t i = 0; i < batch.n; i++) {
            pmp_task_t *task = batch.task[i];
            pmp_executor_group_t *g = &self->groups[batch.group[i]];
            if (self->keep_sent)
                s_send_shared(self, g, task);
            else
                s_send_link(self, g, task->type, task->id, task->flags, task->msgs, task->nmsgs);
        }
        self->corking = 0;
        /* the batch's tasks of one group leave in one write */
        for (size_t i = 0; i < batch.n; i++) {
            pmp_executor_group_t *g = &self->groups[batch.group[i]];
            if (!g->corked)
                continue;
            g->corked = 0;
            if (g->link && pmp_link_flush(g->link) < 0)
                pmp_log(PMP_LOG_INFO, "frontend: cannot write to group %d: %s", (int)g->hello.group,
                        strerror(errno));
        }
    }
}

/* ---- the loop ------------------------------------------------------------ */

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

/* Ends pmp_executor_new()'s wait: started (rc 0) or not (-1, errno e and
 * the sentence in err).  Takes mtx. */
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

/* destroy() asked the thread to stop: SHUTDOWN to every group once, then
 * the launcher's stop steps (grace for the job to exit, SIGTERM, 2 s,
 * SIGKILL) or, without a launched job, up to grace for every group's
 * GOODBYE.  Returns 1 when the thread may end.  Takes mtx. */
static int s_stopping(pmp_executor_t *self, pmp_launcher_stop_t *ending, int grace)
{
    int job_gone = !self->launcher || pmp_launcher_exited(self->launcher);
    if (!pmp_launcher_stop_begun(ending)) {
        pthread_mutex_lock(&self->mtx);
        s_shutdown_all_locked(self);
        pthread_mutex_unlock(&self->mtx);
        /* once signalled, the job was ended on purpose: its noise is not shown */
        pmp_launcher_stop_begin(ending, grace, PMP_LAUNCHER_QUIET_ALL);
    }
    if (self->launch ? job_gone : s_live_groups(self) == 0)
        return 1;
    if (!pmp_launcher_stop_due(ending))
        return 0;
    if (!self->launch)
        return 1;
    if (pmp_launcher_stop_next(self->launcher, ending) == SIGTERM) {
        pmp_log(PMP_LOG_INFO, "frontend: the job did not exit within %d ms; SIGTERM", grace);
        return 0;
    }
    pmp_log(PMP_LOG_INFO, "frontend: the job ignored SIGTERM; SIGKILL");
    pmp_launcher_wait(self->launcher);
    pmp_job_on_exit(self);
    return 1;
}

/* The I/O thread (pmp_executor_internal.h): one round of this loop is
 * described at the top of this file. */
void *pmp_executor_io_main(void *arg)
{
    pmp_executor_t *self = arg;
    pthread_setname_np(pthread_self(), "pympipool-io"); /* top, perf, gdb */
    if (self->launch) {
        pmp_error_t err = {{0}};
        if (pmp_job_launch(self, &err) < 0) {
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
        zmq_pollitem_t *items = s_poll_items(
            self, 3 + PMP_LAUNCHER_MAX_FDS + PMP_ENDPOINT_MAX_ITEMS +
                      pmp_rankwatch_count(self->watch) + pmp_executor_links_count(self));
        int n = 0;
        void *router = pmp_endpoint_socket(self->endpoint);
        if (router)
            items[n++] = (zmq_pollitem_t){.socket = router, .events = ZMQ_POLLIN};
        int efd_i = n;
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
        int links_i = n, nlinks = pmp_executor_links_pollitems(self, items + n);
        n += nlinks;
        long timeout = out_timeout;
        if (running && pidfd_i < 0 && (timeout < 0 || timeout > S_EXIT_POLL_MS))
            timeout = S_EXIT_POLL_MS;
        long time_left = pmp_job_check_time(self); /* may kill the job: seen next round */
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
        /* The eventfd is drained first, then wake_pending cleared: from here
         * on this round sees every change a caller made before now, and a
         * later change writes the eventfd again (s_wake).  The other order
         * could drain the write of a caller that came between the two and
         * leave wake_pending set with nothing to wake the next poll. */
        if (rc > 0 && (items[efd_i].revents & ZMQ_POLLIN)) {
            uint64_t v;
            ssize_t r = read(self->efd, &v, sizeof v);
            (void)r;
        }
        atomic_store(&self->wake_pending, 0);
        pmp_job_serve_interrupts(self);
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
        for (int k = watch_i; rc > 0 && k < links_i; k++)
            if (items[k].revents)
                pmp_job_on_rank_exit(self, k - watch_i);
        if (running && pmp_rankwatch_kill_due(self->watch)) {
            pmp_log(PMP_LOG_WARNING,
                    "frontend: the job did not end within %d ms after %s died; killing it",
                    PMP_RANKWATCH_DEATH_GRACE_MS, pmp_rankwatch_death(self->watch));
            pmp_launcher_signal(self->launcher, SIGKILL);
        }
        if (rc > 0 && nlinks)
            pmp_executor_links_serve(self, items + links_i, S_MAX_RECV_BATCH);
        for (int k = 0; router && k < S_MAX_RECV_BATCH && pmp_executor_io_recv_router(self); k++)
            ;
        if (self->wake_waiters) { /* results were queued (pmp_executor_recv.c) */
            self->wake_waiters = 0;
            pmp_completion_queue_wake(self->done);
        }
        if (running && (pidfd_i < 0 || (rc > 0 && items[pidfd_i].revents)) &&
            pmp_launcher_poll_exit(self->launcher))
            pmp_job_on_exit(self);
        s_step(self);

        pthread_mutex_lock(&self->mtx);
        int stop = self->stop, grace = self->grace_ms;
        pthread_mutex_unlock(&self->mtx);
        if (stop && s_stopping(self, &ending, grace))
            break;
    }
    /* without a launched job, give SHUTDOWN messages a moment to leave */
    int linger = 0;
    if (!self->launch) {
        pthread_mutex_lock(&self->mtx);
        linger = self->grace_ms < 1000 ? self->grace_ms : 1000;
        pthread_mutex_unlock(&self->mtx);
    }
    pmp_endpoint_close_socket(self->endpoint, linger);
    pmp_executor_links_close(self, linger);
    pthread_mutex_lock(&self->mtx);
    self->io_done = 1; /* nobody is left to serve an interrupt */
    pthread_cond_broadcast(&self->intr_cv);
    pthread_mutex_unlock(&self->mtx);
    return NULL;
}
