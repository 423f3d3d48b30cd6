/*
 * pmp_executor_send.c - the I/O thread's tasks to a group over ZeroMQ:
 * one message, a batch, or a pack (part of the executor, see
 * pmp_executor_internal.h; pmp_executor_io.c decides which tasks go where
 * and when, this file only puts them on the ROUTER socket).
 *
 * A run of tasks for one group leaves in as few ZeroMQ messages as its
 * leader's hello allows: up to "batch" protocol messages back to back in
 * one ZeroMQ message, and when every frame of them is small and the
 * leader says "pack", their frames copied into one frame (pmp_pack.h), so
 * that CURVE and libzmq's threads handle one frame for the run.  Frames
 * are moved to ZeroMQ (shared with keep_sent) or, in a pack, copied and
 * then released; a group that cannot be routed to takes nothing, so the
 * caller can give its tasks to another.  Runs with the callers' mutex
 * held, like every send of the I/O thread (pmp_executor.c says why); no
 * send blocks (the ROUTER's high-water mark is 0 and routing is
 * mandatory).
 */
#include <errno.h>
#include <zmq.h>

#include "pmp_executor_internal.h"
#include "pmp_pack.h"

/* The header of task's message, encoded into hbuf. */
static void s_task_header(const pmp_task_t *task, unsigned char hbuf[PMP_HEADER_SIZE])
{
    pmp_header_t hdr = {.type = (uint16_t)task->type,
                        .task_id = task->id,
                        .flags = task->flags,
                        .nframes = (uint32_t)task->nmsgs};
    pmp_header_encode(&hdr, hbuf);
}

/* Tasks run[0..k) to the ROUTER group g in one ZeroMQ message, each a
 * header and its frames (shared references with keep_sent, else moved):
 * one task, or a batch for a leader that takes them.  Returns 0, or -1
 * with errno when the group cannot be routed to (nothing consumed; the
 * caller gives the group up).  mtx held. */
static int s_send_batch_locked(pmp_executor_t *self, pmp_executor_group_t *g, pmp_task_t **run,
                               size_t k)
{
    void *router = pmp_endpoint_socket(self->endpoint);
    if (zmq_send(router, g->identity, g->identity_size, ZMQ_SNDMORE) < 0)
        return -1;
    for (size_t i = 0; i < k; i++) {
        pmp_task_t *task = run[i];
        int last_task = i + 1 == k;
        unsigned char hbuf[PMP_HEADER_SIZE];
        s_task_header(task, hbuf);
        int rc =
            zmq_send(router, hbuf, sizeof hbuf, last_task && task->nmsgs == 0 ? 0 : ZMQ_SNDMORE);
        PMP_ASSERT(rc == (int)sizeof hbuf);
        for (size_t j = 0; j < task->nmsgs; j++) {
            int flags = last_task && j + 1 == task->nmsgs ? 0 : ZMQ_SNDMORE;
            if (self->keep_sent) {
                zmq_msg_t copy;
                zmq_msg_init(&copy);
                PMP_ASSERT(zmq_msg_copy(&copy, &task->msgs[j]) == 0); /* shares, no copy */
                PMP_ASSERT(zmq_msg_send(&copy, router, flags) >= 0);
            } else {
                PMP_ASSERT(zmq_msg_send(&task->msgs[j], router, flags) >= 0);
            }
        }
    }
    return 0;
}

/* The bytes of a pack of tasks run[0..k) (headers and frames), with its
 * frames in *frames, or 0 when they cannot leave in one: the leader takes
 * no pack of k, or a frame is too large to copy (pmp_pack.h). */
static size_t s_pack_bytes(const pmp_executor_group_t *g, pmp_task_t **run, size_t k,
                           size_t *frames)
{
    if (k < 2 || k > (size_t)g->hello.pack)
        return 0;
    size_t bytes = k * PMP_HEADER_SIZE;
    *frames = k;
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < run[i]->nmsgs; j++, (*frames)++) {
            size_t size = zmq_msg_size(&run[i]->msgs[j]);
            if (size > PMP_PACK_FRAME_MAX)
                return 0;
            bytes += size;
        }
    return bytes;
}

/* Tasks run[0..k) to the ROUTER group g as one pack of frames frames and
 * bytes bytes (s_pack_bytes): their frames are copied into it and then
 * released, unless keep_sent keeps them.  Returns 0, or -1 with errno
 * when the group cannot be routed to (nothing consumed).  mtx held. */
static int s_send_pack_locked(pmp_executor_t *self, pmp_executor_group_t *g, pmp_task_t **run,
                              size_t k, size_t frames, size_t bytes)
{
    void *router = pmp_endpoint_socket(self->endpoint);
    if (zmq_send(router, g->identity, g->identity_size, ZMQ_SNDMORE) < 0)
        return -1;
    pmp_pack_t pack;
    PMP_ASSERT(pmp_pack_begin(&pack, frames, bytes) == 0); /* fatal rather than a lost task */
    for (size_t i = 0; i < k; i++) {
        pmp_task_t *task = run[i];
        unsigned char hbuf[PMP_HEADER_SIZE];
        s_task_header(task, hbuf);
        pmp_pack_add(&pack, hbuf, sizeof hbuf);
        for (size_t j = 0; j < task->nmsgs; j++)
            pmp_pack_add(&pack, zmq_msg_data(&task->msgs[j]), zmq_msg_size(&task->msgs[j]));
    }
    PMP_ASSERT(zmq_msg_send(pmp_pack_msg(&pack), router, 0) >= 0);
    if (!self->keep_sent)
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < run[i]->nmsgs; j++) {
                zmq_msg_close(&run[i]->msgs[j]); /* as ZeroMQ would have after sending */
                zmq_msg_init(&run[i]->msgs[j]);
            }
    return 0;
}

size_t pmp_executor_io_send_run_locked(pmp_executor_t *self, pmp_executor_group_t *g,
                                       pmp_task_t **run, size_t k)
{
    size_t per = g->hello.batch > 1 ? (size_t)g->hello.batch : 1;
    for (size_t i = 0; i < k;) {
        size_t m = k - i < per ? k - i : per;
        size_t frames, bytes = s_pack_bytes(g, run + i, m, &frames);
        if ((bytes ? s_send_pack_locked(self, g, run + i, m, frames, bytes)
                   : s_send_batch_locked(self, g, run + i, m)) < 0)
            return i;
        i += m;
    }
    return k;
}
