/*
 * pmp_multipart.h - receiving one whole ZeroMQ multipart message, with a
 * bound on the parts kept.
 *
 * Place in the design: every ZeroMQ receiver of the project reads a
 * message the same way before it decodes anything: the frontend's ROUTER
 * (pmp_executor_recv.c: the peer identity, then one protocol message or a
 * batch), a group leader's DEALER (runtime/pmp_leader.c) and the socket
 * interface's channel (pmp_channel_msg.c).  A peer decides how many parts
 * it sends, so the receiver must not keep an unbounded number: parts past
 * the bound are still received (a multipart message arrives whole or not
 * at all, and what is left of it would otherwise be read as the next
 * message) but closed at once, and counted.  The caller then drops the
 * message, saying why.
 *
 * How: the parts go into an array that starts inside the struct (eight
 * parts, the common case costs no allocation) and doubles on the heap; a
 * part is moved into it (zmq_msg_t is moved, never copied byte-wise).  The
 * first part is received with the caller's flags (ZMQ_DONTWAIT to poll);
 * the later parts of a message are always there once its first is, and
 * are received blocking, retrying on EINTR.
 *
 * Ownership and threads: the struct owns the parts it holds until
 * pmp_multipart_clear, or until the caller moves them out (a moved-out
 * zmq_msg_t is empty, and closing it is harmless).  It must not be copied
 * (parts may point into it).  One thread at a time, like the socket.
 */
#ifndef PMP_MULTIPART_H
#define PMP_MULTIPART_H

#include <stddef.h>
#include <zmq.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PMP_MULTIPART_INLINE 8

typedef struct {
    zmq_msg_t *parts; /* n received parts, kept in order */
    size_t n;
    size_t dropped; /* parts past the bound: received and closed */
    size_t cap;
    zmq_msg_t inline_parts[PMP_MULTIPART_INLINE];
} pmp_multipart_t;

/* An empty receiver.  Cannot fail. */
void pmp_multipart_init(pmp_multipart_t *self);

/* Receives one whole multipart message from sock into self, which must be
 * empty (just initialised or cleared), keeping at most max (>= 1) parts.
 * The first part is received with flags (0 or ZMQ_DONTWAIT), the rest
 * blocking.  Returns 0 with self->n >= 1 (and self->dropped > 0 when the
 * message was longer than max); or -1 with errno: EAGAIN (nothing there,
 * with ZMQ_DONTWAIT) or EINTR before the first part, ENOMEM (the rest of
 * the message was received and closed), or ZeroMQ's errno of a failed
 * receive; self is then empty. */
int pmp_multipart_recv(pmp_multipart_t *self, void *sock, int flags, size_t max);

/* Appends part to self, moving it in (part is empty afterwards), for a
 * receiver that rewrites a message (pmp_pack_unpack).  Returns 0, or -1
 * with errno = ENOMEM and part untouched. */
int pmp_multipart_push(pmp_multipart_t *self, zmq_msg_t *part);

/* Closes every part held and frees the array; self is empty again and can
 * receive the next message.  Cannot fail. */
void pmp_multipart_clear(pmp_multipart_t *self);

#ifdef __cplusplus
}
#endif

#endif
