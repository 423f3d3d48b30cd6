/*
 * pmp_executor_recv.c - the I/O thread's receiving side: what a group's
 * messages do to the executor (part of the executor, see
 * pmp_executor_internal.h; pmp_executor.c has the design as a whole).
 *
 * Messages arrive over a local link (pmp_executor_links.c hands each one
 * to pmp_executor_io_on_message) or over the ROUTER socket
 * (pmp_executor_io_recv_router reads one multipart message, which may be
 * a batch of protocol messages, and does the same for each).  The header is checked against the
 * frames that came and against who sent it; then a HELLO adds a group (which gets the INIT and the
 * kept DEFINEs first, pmp_executor_io_greet_locked), a RESULT or ERROR is the second half of a
 * call's path (the task leaves the in-flight table and its completion is queued, the waiters woken
 * once per round by the loop), and a GOODBYE retires a group.  Anything else is dropped with a
 * warning; a peer cannot crash the frontend.  I/O thread only; each handler takes the mutex only to
 * update the shared tables.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "pmp_executor_internal.h"
#include "pmp_multipart.h"
#include "pmp_pack.h"

/* A group connected: it joins the group table, the rank watch and the
 * scheduler, gets the INIT and the kept DEFINEs before anything else (or
 * SHUTDOWN when the executor is ending), and the hello text goes to the
 * caller as PMP_EVENT_HELLO.  The credentials file goes once every group
 * of the job has said hello.  Takes mtx. */
static void s_on_hello(pmp_executor_t *self, const void *id, size_t idlen, pmp_link_t *link,
                       zmq_msg_t *payload)
{
    pmp_error_t err;
    pmp_hello_t hello;
    if (idlen > sizeof self->groups[0].identity) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a hello with an oversized identity");
        return;
    }
    if (pmp_executor_io_find_group(self, id, idlen)) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a second hello from the same peer");
        return;
    }
    if (pmp_hello_decode(zmq_msg_data(payload), zmq_msg_size(payload), &hello, &err) < 0) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a malformed hello: %s", err.text);
        return;
    }
    if (self->ngroups == self->groups_cap) {
        size_t cap = self->groups_cap ? self->groups_cap * 2 : 8;
        pmp_executor_group_t *groups = realloc(self->groups, cap * sizeof *groups);
        PMP_ASSERT(groups != NULL);
        self->groups = groups;
        self->groups_cap = cap;
    }
    size_t gi;
    PMP_ASSERT(pmp_sched_add(self->sched, id, idlen, &gi) == 0);
    PMP_ASSERT(gi == self->ngroups);
    pmp_executor_group_t *g = &self->groups[self->ngroups++];
    memset(g, 0, sizeof *g);
    g->identity_size = idlen;
    memcpy(g->identity, id, idlen);
    g->link = link;
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
    pmp_executor_io_greet_locked(self, g);
    if (!self->closed_delivered) /* nothing follows CLOSED */
        pmp_executor_deliver_locked(self, PMP_EVENT_HELLO, 0, text, -1);
    pthread_mutex_unlock(&self->mtx);
    free(text);
}

/* The mutex across the replies of one received message: the first reply
 * takes it, the others find it held, and it is let go before any other
 * handler (which takes it itself), before a warning is written and at
 * the end of the message.  *held says whether this thread holds it. */
static void s_hold(pmp_executor_t *self, int *held)
{
    if (!*held) {
        pthread_mutex_lock(&self->mtx);
        *held = 1;
    }
}

static void s_let_go(pmp_executor_t *self, int *held)
{
    if (*held) {
        pthread_mutex_unlock(&self->mtx);
        *held = 0;
    }
}

/* A RESULT or ERROR: the second half of a call's path.  The task leaves
 * the in-flight table and its group's load, its frames are released, and
 * the completion takes the received frames (moved, not copied).  A reply
 * for a task the group does not hold is dropped.  Takes mtx (s_hold). */
static void s_on_reply(pmp_executor_t *self, pmp_executor_group_t *g, const pmp_header_t *hdr,
                       zmq_msg_t *frames, size_t nframes, int *held)
{
    size_t gi = pmp_executor_group_index(self, g);
    s_hold(self, held);
    pmp_task_t *task = pmp_queue_find(self->inflight, hdr->task_id);
    if (!task || task->group != gi) {
        s_let_go(self, held);
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a %s for task %llu that group %d does not hold",
                pmp_msg_type_name(hdr->type), (unsigned long long)hdr->task_id,
                (int)g->hello.group);
        return;
    }
    pmp_queue_remove(self->inflight, hdr->task_id);
    pmp_sched_dec(self->sched, gi);
    pmp_timelimit_done(self->timelimit, gi);
    pmp_window_done(self->window, gi, pmp_executor_now_ns());
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
    /* The waiters are woken once, after the round's batch of messages
     * (the hot path; pmp_executor_io.c): one wake-up for a round of results, and
     * never while the mutex is held, where a woken waiter would only go
     * back to sleep on it. */
    self->wake_waiters = 1;
}

/* A GOODBYE: the group is retired; a task it still held cannot complete
 * any more and fails as BROKEN.  Takes mtx. */
static void s_on_goodbye(pmp_executor_t *self, pmp_executor_group_t *g)
{
    pthread_mutex_lock(&self->mtx);
    pmp_executor_io_group_lost_locked(self, g, "left");
    pthread_mutex_unlock(&self->mtx);
}

/* What a checked message does, by its type: frames are those after its
 * header.  *held: see s_hold. */
static void s_dispatch(pmp_executor_t *self, pmp_executor_group_t *g, const void *id, size_t idlen,
                       pmp_link_t *link, const pmp_header_t *hdr, zmq_msg_t *frames, size_t nframes,
                       int *held)
{
    if (g && !g->gone && (hdr->type == PMP_MSG_RESULT || hdr->type == PMP_MSG_ERROR)) {
        s_on_reply(self, g, hdr, frames, nframes, held);
        return;
    }
    s_let_go(self, held);
    if (hdr->type == PMP_MSG_HELLO) {
        s_on_hello(self, id, idlen, link, &frames[0]);
    } else if (!g) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a %s from a peer that never said hello",
                pmp_msg_type_name(hdr->type));
    } else if (g->gone) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a %s from group %d after its goodbye",
                pmp_msg_type_name(hdr->type), (int)g->hello.group);
    } else if (hdr->type == PMP_MSG_GOODBYE) {
        s_on_goodbye(self, g);
    }
}

void pmp_executor_io_on_message(pmp_executor_t *self, pmp_executor_group_t *g, const void *id,
                                size_t idlen, pmp_link_t *link, zmq_msg_t *parts, size_t n)
{
    pmp_error_t err;
    pmp_header_t hdr;
    if (pmp_header_decode(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), &hdr, &err) < 0 ||
        pmp_header_check(&hdr, n - 1, 1, &err) < 0)
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a malformed message: %s", err.text);
    else {
        int held = 0;
        s_dispatch(self, g, id, idlen, link, &hdr, parts + 1, n - 1, &held);
        s_let_go(self, &held);
    }
}

void pmp_executor_io_link_lost(pmp_executor_t *self, pmp_executor_group_t *g)
{
    if (g->gone)
        return;
    if (self->launch) {
        /* Not picked again, but not gone either: the rank watch and the
         * job's exit, seen next, say why, naming the rank (a group that is
         * gone would make its leader's death look expected). */
        pmp_sched_retire(self->sched, pmp_executor_group_index(self, g));
        return;
    }
    pthread_mutex_lock(&self->mtx);
    pmp_executor_io_group_lost_locked(self, g, "closed its connection");
    pthread_mutex_unlock(&self->mtx);
}

/* Starts loading the in-flight table's slots of the tasks that the
 * headers of parts[1..n) name, so that the cache misses of a batch of
 * replies overlap instead of coming one after the other.  Stops at the
 * first frame that is not a header where one should be: the checks come
 * after.  The I/O thread is the only one that changes the in-flight
 * table, so it may look at it without the mutex. */
static void s_prefetch_tasks(const pmp_executor_t *self, zmq_msg_t *parts, size_t n)
{
    for (size_t at = 1; at < n;) {
        pmp_header_t hdr;
        if (pmp_header_decode(zmq_msg_data(&parts[at]), zmq_msg_size(&parts[at]), &hdr, NULL) < 0)
            break;
        pmp_queue_prefetch(self->inflight, hdr.task_id);
        if (hdr.nframes >= n - at)
            break;
        at += 1 + hdr.nframes;
    }
}

/* Receives one multipart message if there is one, checks it (frame count,
 * header, a sender that said hello and did not leave) and hands it to its
 * handler above; anything else is dropped with a warning.  Returns 1 if a
 * message was handled (or dropped), 0 if none was waiting. */
int pmp_executor_io_recv_router(pmp_executor_t *self)
{
    pmp_multipart_t in;
    pmp_multipart_init(&in);
    if (pmp_multipart_recv(&in, pmp_endpoint_socket(self->endpoint), ZMQ_DONTWAIT,
                           (size_t)PMP_MAX_FRAMES + 2) < 0) {
        PMP_ASSERT(errno != ENOMEM); /* fatal rather than a lost completion */
        return 0;
    }
    pmp_error_t err;
    int unpacked = in.dropped ? 0 : pmp_pack_unpack(&in, 1, (size_t)PMP_MAX_FRAMES + 2, &err);
    PMP_ASSERT(unpacked >= 0 || errno != ENOMEM); /* fatal rather than a lost completion */
    zmq_msg_t *parts = in.parts;
    size_t n = in.n;

    if (unpacked < 0) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a malformed pack: %s", err.text);
    } else if (in.dropped) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a message of more than %d frames",
                PMP_MAX_FRAMES + 2);
    } else if (n < 2) {
        pmp_log(PMP_LOG_WARNING, "frontend: dropped a message without a header frame");
    } else {
        /* one protocol message, or a batch of them back to back */
        const void *id = zmq_msg_data(&parts[0]);
        size_t idlen = zmq_msg_size(&parts[0]);
        s_prefetch_tasks(self, parts, n);
        int held = 0;
        for (size_t at = 1; at < n;) {
            pmp_header_t hdr;
            if (pmp_header_next(zmq_msg_data(&parts[at]), zmq_msg_size(&parts[at]), n - at, 1, &hdr,
                                &err) < 0) {
                s_let_go(self, &held);
                pmp_log(PMP_LOG_WARNING, "frontend: dropped a malformed message%s: %s",
                        at > 1 ? " (and the rest of its batch)" : "", err.text);
                break;
            }
            /* the group is looked up again: a hello earlier in the batch
             * may have added it */
            s_dispatch(self, pmp_executor_io_find_group(self, id, idlen), id, idlen, NULL, &hdr,
                       parts + at + 1, hdr.nframes, &held);
            at += 1 + hdr.nframes;
        }
        s_let_go(self, &held);
    }
    pmp_multipart_clear(&in);
    return 1;
}
