/*
 * pmp_rtmsg.c - a message's frames owned by the runtime (see pmp_rtmsg.h).
 *
 * Frames are owned by the message until the interpreter takes them: taking
 * a zmq frame moves it (zmq_msg_move leaves an empty message behind that
 * zmq_msg_close frees nothing), taking a heap frame sets heap[i] to NULL.
 * Destroy therefore frees exactly what was not taken.
 */
#include "pmp_rtmsg.h"

#include <errno.h>
#include <stdlib.h>

#include "pmp_error.h"

pmp_rtmsg_t *pmp_rtmsg_new(uint32_t nframes, int zmq_backed)
{
    pmp_rtmsg_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->nframes = nframes;
    size_t n = nframes ? nframes : 1;
    self->data = calloc(n, sizeof *self->data);
    self->size = calloc(n, sizeof *self->size);
    if (zmq_backed) {
        self->zmsgs = calloc(n, sizeof *self->zmsgs);
        if (self->zmsgs)
            for (uint32_t i = 0; i < nframes; i++)
                zmq_msg_init(&self->zmsgs[i]);
    } else {
        self->heap = calloc(n, sizeof *self->heap);
    }
    if (!self->data || !self->size || (zmq_backed ? !self->zmsgs : !self->heap)) {
        pmp_rtmsg_destroy(&self);
        errno = ENOMEM;
        return NULL;
    }
    return self;
}

void pmp_rtmsg_sync_zmq(pmp_rtmsg_t *self)
{
    for (uint32_t i = 0; i < self->nframes; i++) {
        self->data[i] = zmq_msg_data(&self->zmsgs[i]);
        self->size[i] = zmq_msg_size(&self->zmsgs[i]);
    }
}

int pmp_rtmsg_alloc_heap(pmp_rtmsg_t *self)
{
    for (uint32_t i = 0; i < self->nframes; i++) {
        self->heap[i] = malloc(self->size[i] ? self->size[i] : 1);
        if (!self->heap[i]) {
            errno = ENOMEM;
            return -1;
        }
        self->data[i] = self->heap[i];
    }
    return 0;
}

void pmp_rtmsg_destroy(pmp_rtmsg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_rtmsg_t *self = *self_p;
    if (self->zmsgs)
        for (uint32_t i = 0; i < self->nframes; i++)
            zmq_msg_close(&self->zmsgs[i]);
    if (self->heap)
        for (uint32_t i = 0; i < self->nframes; i++)
            free(self->heap[i]);
    free(self->zmsgs);
    free(self->heap);
    free(self->data);
    free(self->size);
    free(self);
    *self_p = NULL;
}
