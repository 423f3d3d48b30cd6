/*
 * pmp_channel_msg.c - a socket channel's messages on the wire (see
 * pmp_channel.h): sending one with or without copies, and taking one whole
 * received message apart into header fields and frames.
 *
 * A message is the pympipool framing of protocol/pmp_protocol.h: a header
 * frame, the payload and any out-of-band buffers.  Sending: buffers with a
 * free_fn go to ZeroMQ without a copy, and once the header is queued each
 * free_fn runs exactly once (ZeroMQ calls the ones it took; a failed send
 * calls the rest before returning).  Sending never waits inside ZeroMQ:
 * every part goes with ZMQ_DONTWAIT.  A blocking zmq_send on a PAIR socket
 * whose peer left after the caller saw it writable waits for the next peer,
 * which may never come (a booted program that died, a foreign client that
 * closed), and it cannot be interrupted (it retries EINTR itself), so the
 * caller's thread would hang for good.  Instead a header that cannot be
 * queued is refused with EAGAIN before anything is taken, and the caller
 * goes back to pmp_channel_wait_writable(), which watches the program's
 * exit and has a timeout.  The later parts of a message cannot meet the
 * high-water mark (it counts whole messages), so they fail only if the
 * peer went away in the middle: the message is lost, ECONNRESET.
 * Receiving: every part is received without a copy
 * and becomes a frame (pmp_frame_internal.h); a message with more parts
 * than the protocol allows is drained and dropped, and one that fails the
 * header checks, or is not what this side expects (a server takes RESULT
 * and ERROR, a client TASK), is logged and dropped, so a caller only ever
 * sees well-formed messages.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pmp_channel_internal.h"
#include "pmp_fork.h"
#include "pmp_frame_internal.h"
#include "pmp_multipart.h"

static void s_release_from(const pmp_buffer_t *bufs, size_t nbufs, size_t first)
{
    for (size_t i = first; i < nbufs; i++)
        if (bufs[i].free_fn)
            bufs[i].free_fn((void *)bufs[i].data, bufs[i].hint);
}

int pmp_channel_send(pmp_channel_t *self, int type, uint64_t task_id, uint32_t flags,
                     const pmp_buffer_t *bufs, size_t nbufs, pmp_error_t *err)
{
    if (pmp_channel_forked(self))
        return pmp_fork_fail(err, "socket interface", self->owner);
    int ok_type =
        self->server ? type == PMP_MSG_TASK : (type == PMP_MSG_RESULT || type == PMP_MSG_ERROR);
    if (!ok_type) {
        pmp_error_set(err, "a %s does not send %s messages", self->server ? "server" : "client",
                      pmp_msg_type_name(type));
        errno = EINVAL;
        return -1;
    }
    if (task_id == 0 || (flags & ~PMP_FLAG_KNOWN_MASK) != 0) {
        pmp_error_set(err, "task id must be non-zero and flags known (got %llu, 0x%x)",
                      (unsigned long long)task_id, (unsigned)flags);
        errno = EINVAL;
        return -1;
    }
    if (!bufs || nbufs < 1 || nbufs > PMP_MAX_FRAMES) {
        pmp_error_set(err, "a message has 1 to %d frames after the header, not %zu", PMP_MAX_FRAMES,
                      nbufs);
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < nbufs; i++) {
        if (!bufs[i].data && bufs[i].size > 0) {
            pmp_error_set(err, "buffer %zu has no data but %zu bytes", i, bufs[i].size);
            errno = EINVAL;
            return -1;
        }
    }
    pmp_header_t hdr = {
        .type = (uint16_t)type, .task_id = task_id, .flags = flags, .nframes = (uint32_t)nbufs};
    unsigned char head[PMP_HEADER_SIZE];
    pmp_header_encode(&hdr, head);
    if (self->send_pause_ms > 0)
        usleep((useconds_t)self->send_pause_ms * 1000);
    int rc;
    do
        rc = zmq_send(self->sock, head, sizeof head, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno == EAGAIN) { /* nothing taken: the caller waits and retries */
        pmp_error_set(err, "the peer is not connected or has no room for a message");
        errno = EAGAIN;
        return -1;
    }
    if (rc < 0) {
        int e = errno;
        pmp_error_set(err, "sending a message failed: %s", zmq_strerror(e));
        s_release_from(bufs, nbufs, 0);
        errno = e;
        return -1;
    }
    for (size_t i = 0; i < nbufs; i++) {
        zmq_msg_t m;
        int more = (i + 1 < nbufs ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT;
        if (bufs[i].free_fn) {
            rc = zmq_msg_init_data(&m, (void *)bufs[i].data, bufs[i].size, bufs[i].free_fn,
                                   bufs[i].hint);
            if (rc < 0) { /* free_fn was not taken over */
                int e = errno;
                pmp_error_set(err, "out of memory sending a message");
                s_release_from(bufs, nbufs, i);
                errno = e;
                return -1;
            }
        } else {
            if (zmq_msg_init_size(&m, bufs[i].size) < 0) {
                pmp_error_set(err, "out of memory sending a message");
                s_release_from(bufs, nbufs, i + 1);
                errno = ENOMEM;
                return -1;
            }
            if (bufs[i].size)
                memcpy(zmq_msg_data(&m), bufs[i].data, bufs[i].size);
        }
        do
            rc = zmq_msg_send(&m, self->sock, more);
        while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            int e = errno;
            zmq_msg_close(&m); /* calls this buffer's free_fn */
            if (e == EAGAIN) { /* the peer left mid-message; ZeroMQ dropped the parts */
                e = ECONNRESET;
                pmp_error_set(err, "the peer went away while a message was being sent; it was "
                                   "not delivered");
            } else {
                pmp_error_set(err, "sending a message failed: %s", zmq_strerror(e));
            }
            s_release_from(bufs, nbufs, i + 1);
            errno = e;
            return -1;
        }
    }
    return 0;
}

void pmp_channel_msg_destroy(pmp_channel_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_channel_msg_t *m = *self_p;
    for (size_t i = 0; i < m->nframes; i++)
        pmp_frame_destroy(&m->frames[i]);
    free(m->frames);
    free(m);
    *self_p = NULL;
}

/* Takes one whole message if one is there.  Returns it, or NULL with
 * errno = EAGAIN when nothing (valid) is pending, or another errno. */
pmp_channel_msg_t *pmp_channel_try_recv(pmp_channel_t *self, pmp_error_t *err)
{
    for (;;) {
        pmp_multipart_t in;
        pmp_multipart_init(&in);
        if (pmp_multipart_recv(&in, self->sock, ZMQ_DONTWAIT, (size_t)PMP_MAX_FRAMES + 1) < 0) {
            int e = errno == EINTR ? EAGAIN : errno;
            if (e == ENOMEM)
                pmp_error_set(err, "out of memory receiving a message");
            else if (e != EAGAIN)
                pmp_error_set(err, "receiving a message failed: %s", zmq_strerror(e));
            errno = e;
            return NULL;
        }
        zmq_msg_t *parts = in.parts;
        size_t n = in.n, dropped = in.dropped;
        pmp_error_t why;
        why.text[0] = '\0';
        pmp_header_t hdr;
        int valid =
            pmp_header_decode(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), &hdr, &why) == 0 &&
            pmp_header_check(&hdr, n - 1 + dropped, self->server, &why) == 0;
        if (valid) {
            int wanted = self->server ? (hdr.type == PMP_MSG_RESULT || hdr.type == PMP_MSG_ERROR)
                                      : hdr.type == PMP_MSG_TASK;
            if (!wanted) {
                pmp_error_set(&why, "unexpected %s message", pmp_msg_type_name(hdr.type));
                valid = 0;
            }
        }
        if (!valid) {
            pmp_log(PMP_LOG_WARNING, "socket interface: dropped a message: %s", why.text);
            pmp_multipart_clear(&in);
            continue;
        }
        /* A valid TASK, RESULT or ERROR carries its payload: n >= 2. */
        pmp_channel_msg_t *m = calloc(1, sizeof *m);
        pmp_frame_t **frames = m ? calloc(n - 1, sizeof *frames) : NULL;
        if (!frames || pmp_frame_take_msgs(frames, parts + 1, n - 1) < 0) {
            pmp_multipart_clear(&in);
            free(frames);
            free(m);
            pmp_error_set(err, "out of memory receiving a message");
            errno = ENOMEM;
            return NULL;
        }
        /* The frames took the messages after the header. */
        m->type = hdr.type;
        m->task_id = hdr.task_id;
        m->flags = hdr.flags;
        m->nframes = n - 1;
        m->frames = frames;
        pmp_multipart_clear(&in); /* the header; the frames were moved out */
        return m;
    }
}
