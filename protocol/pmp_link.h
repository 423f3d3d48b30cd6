/*
 * pmp_link.h - one connection between the frontend and a group leader on
 * the same host: a Unix stream socket that carries the messages of
 * pmp_protocol.h, frame by frame, without ZeroMQ.
 *
 * Why it exists: libzmq moves every message through an I/O thread of its
 * own on each side, two more thread wake-ups per message and end, and on
 * this kind of machine a wake-up costs more than the work of a small call
 * (docs/performance.md, "Where one call's time goes").  On one host the
 * kernel already gives what the frontend needs from a transport: ordered,
 * reliable bytes, the peer's uid (SO_PEERCRED) and an end-of-file the
 * moment the peer dies.  TCP peers keep ZeroMQ (CURVE, heartbeats,
 * reconnects).
 *
 * Wire format (docs/protocol.md, "Local links"): a message is a run of
 * frames; each frame is an 8-byte little-endian word, its length in the
 * low 63 bits and PMP_LINK_MORE set when another frame of the same
 * message follows, then that many bytes.  The frames are exactly the
 * ZeroMQ frames of the same message (header, payload, buffers).  The
 * client's first message is the greeting: one frame of PMP_LINK_MAGIC, a
 * little-endian u16 PMP_LINK_VERSION, two zero bytes and the PLAIN
 * password of the credentials file (pmp_credentials.h).  The server says
 * nothing until the greeting has been checked, and closes the connection
 * when it is wrong.
 *
 * Ownership and threads: a link is used by one thread at a time and owns
 * its file descriptor (set non-blocking) and every frame queued on it.
 * Frames are zmq_msg_t used as plain containers (no ZeroMQ socket is
 * involved): sending moves them in and closes each, which releases a
 * zero-copy buffer, once the kernel has taken all of its bytes; receiving
 * hands out frames the link allocated.
 *
 * Cost: a small message is read with one read() into a 64 KiB buffer
 * (several messages at a time when they queue up) and written with one
 * sendmsg() of its frames; a frame of 64 KiB or more is read straight into
 * its own memory, never copied in user space.  Nothing here blocks except
 * pmp_link_flush_wait(), which is meant for a thread that has nothing else
 * to do.
 *
 * Failure: a peer that closes, resets, sends a frame longer than the
 * link's limit or a message of more than PMP_MAX_FRAMES + 1 frames ends
 * the link: the call returns -1 and the link is of no further use.
 */
#ifndef PMP_LINK_H
#define PMP_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "pmp_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PMP_LINK_PREFIX_SIZE 8
#define PMP_LINK_MORE_BIT 63
#define PMP_LINK_MORE (UINT64_C(1) << PMP_LINK_MORE_BIT)
/* The longest frame a link accepts once the greeting was checked. */
#define PMP_LINK_MAX_FRAME (UINT64_C(1) << 48)
#define PMP_LINK_MAGIC "PMPL"
#define PMP_LINK_VERSION 1
/* The longest greeting: magic, version, two zero bytes, a password. */
#define PMP_LINK_GREETING_MAX 128

typedef struct pmp_link pmp_link_t;

/* Makes a link of fd (a connected stream socket), which it owns from now
 * on and sets non-blocking and close-on-exec.  Frames longer than
 * max_frame bytes end the link (PMP_LINK_GREETING_MAX until a peer is
 * trusted).  Returns NULL with errno = ENOMEM (fd is closed then too). */
pmp_link_t *pmp_link_new(int fd, uint64_t max_frame);

/* Closes the descriptor and every frame still queued or received (their
 * zero-copy buffers are released).  NULL-safe; nulls the pointer. */
void pmp_link_destroy(pmp_link_t **self_p);

/* The descriptor, for poll(). */
int pmp_link_fd(const pmp_link_t *self);

/* Raises (or lowers) the longest frame accepted from now on. */
void pmp_link_set_max_frame(pmp_link_t *self, uint64_t max_frame);

/* Queues one message of n >= 1 frames, which it takes over whatever
 * happens (zmq_msg_move: parts are left empty), and writes as much as the
 * socket takes now.  Returns 0 (what did not fit waits for
 * pmp_link_flush), or -1 with errno (EPIPE, ECONNRESET, ENOMEM): the peer
 * is gone and the frames were closed. */
int pmp_link_send(pmp_link_t *self, zmq_msg_t *parts, size_t n);

/* As pmp_link_send, but only queues: nothing is written until
 * pmp_link_flush (so that several messages leave in one write).  Returns
 * 0, or -1 with errno (EPIPE: the link ended; ENOMEM), the frames closed. */
int pmp_link_queue(pmp_link_t *self, zmq_msg_t *parts, size_t n);

/* Writes queued bytes until the socket is full or the queue empty.
 * Returns 0, or -1 with errno when the peer is gone. */
int pmp_link_flush(pmp_link_t *self);

/* Bytes queued and not yet written; poll for POLLOUT while non-zero. */
size_t pmp_link_unsent(const pmp_link_t *self);

/* Blocks (poll) until everything queued is written, at most timeout_ms
 * (-1: no limit).  Returns 0, or -1 with errno (ETIMEDOUT, or the peer is
 * gone). */
int pmp_link_flush_wait(pmp_link_t *self, int timeout_ms);

/* Reads what the socket holds and returns the next complete message, if
 * there is one: 1 with *parts pointing to its *n frames, which belong to
 * the link until the next pmp_link_recv or destroy (the caller may
 * zmq_msg_move them out); 0 when no message is complete yet (poll for
 * POLLIN); -1 when the link ended: errno ECONNRESET (the peer closed or
 * died), EPROTO (a frame over the limit, too many frames) or ENOMEM. */
int pmp_link_recv(pmp_link_t *self, zmq_msg_t **parts, size_t *n);

/* Writes the greeting for password (NUL-terminated, at most
 * PMP_LINK_GREETING_MAX - 8 bytes) into part.  Returns 0, or -1 with
 * errno = EINVAL (too long) or ENOMEM. */
int pmp_link_greeting(zmq_msg_t *part, const char *password);

/* Checks a received greeting frame: magic, version and the two zero
 * bytes.  On success returns 0 with *password and *password_len pointing
 * into data; -1 with errno = EPROTO and a reason in err otherwise. */
int pmp_link_greeting_decode(const void *data, size_t len, const unsigned char **password,
                             size_t *password_len, pmp_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
