/*
 * pmp_multipart.c - one whole ZeroMQ multipart message, received into a
 * bounded array of parts (see pmp_multipart.h).
 *
 * Where it sits: the one receive loop that the frontend's ROUTER, a
 * leader's DEALER and the socket interface's channel share; it knows
 * nothing of the protocol, only of parts and of the bound.
 */
#include "pmp_multipart.h"

#include <errno.h>
#include <stdlib.h>

void pmp_multipart_init(pmp_multipart_t *self)
{
    self->parts = self->inline_parts;
    self->n = 0;
    self->dropped = 0;
    self->cap = PMP_MULTIPART_INLINE;
}

void pmp_multipart_clear(pmp_multipart_t *self)
{
    for (size_t i = 0; i < self->n; i++)
        zmq_msg_close(&self->parts[i]);
    if (self->parts != self->inline_parts)
        free(self->parts);
    pmp_multipart_init(self);
}

/* Room for one more part; 0, or -1 (ENOMEM) with nothing changed. */
static int s_grow(pmp_multipart_t *self)
{
    size_t cap = self->cap * 2;
    zmq_msg_t *bigger = malloc(cap * sizeof *bigger);
    if (!bigger) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < self->n; i++) {
        zmq_msg_init(&bigger[i]);
        zmq_msg_move(&bigger[i], &self->parts[i]);
        zmq_msg_close(&self->parts[i]);
    }
    if (self->parts != self->inline_parts)
        free(self->parts);
    self->parts = bigger;
    self->cap = cap;
    return 0;
}

int pmp_multipart_push(pmp_multipart_t *self, zmq_msg_t *part)
{
    if (self->n == self->cap && s_grow(self) < 0)
        return -1;
    zmq_msg_init(&self->parts[self->n]);
    zmq_msg_move(&self->parts[self->n], part);
    self->n++;
    return 0;
}

int pmp_multipart_recv(pmp_multipart_t *self, void *sock, int flags, size_t max)
{
    int failed = 0; /* errno of a failure after the first part */
    for (int more = 1, first = 1; more; first = 0) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        int rc;
        while ((rc = zmq_msg_recv(&part, sock, first ? flags : 0)) < 0 && errno == EINTR && !first)
            ;
        if (rc < 0) {
            int e = errno;
            zmq_msg_close(&part);
            if (!first) /* cannot happen on a live socket: the message is whole */
                failed = e;
            pmp_multipart_clear(self);
            errno = failed ? failed : e;
            return -1;
        }
        more = zmq_msg_more(&part);
        if (failed || self->n == max || (self->n == self->cap && s_grow(self) < 0)) {
            if (!failed && self->n < max)
                failed = ENOMEM;
            zmq_msg_close(&part); /* past the bound, or no memory: drained */
            self->dropped++;
            continue;
        }
        zmq_msg_init(&self->parts[self->n]);
        zmq_msg_move(&self->parts[self->n], &part);
        zmq_msg_close(&part);
        self->n++;
    }
    if (failed) {
        pmp_multipart_clear(self);
        errno = failed;
        return -1;
    }
    return 0;
}
