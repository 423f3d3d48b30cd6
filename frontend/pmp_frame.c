/*
 * pmp_frame.c - received frames (see pmp_frame.h and pmp_frame_internal.h).
 *
 * A frame wraps one zmq_msg_t moved out of the socket, so the bytes of a
 * 1 GiB result are never copied between the wire and the caller: the
 * frame owns ZeroMQ's buffer and closing the message frees it.  Taking a
 * batch of messages is all or nothing, so that a caller that runs out of
 * memory still holds every message and can close them in one place.
 */
#include "pmp_frame_internal.h"

#include <errno.h>
#include <stdlib.h>

int pmp_frame_take_msgs(pmp_frame_t **frames, zmq_msg_t *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        frames[i] = malloc(sizeof *frames[i]);
        if (!frames[i]) {
            while (i-- > 0)
                free(frames[i]);
            errno = ENOMEM;
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init(&frames[i]->msg);
        zmq_msg_move(&frames[i]->msg, &msgs[i]);
    }
    return 0;
}

void *pmp_frame_data(pmp_frame_t *f)
{
    return zmq_msg_data(&f->msg);
}

size_t pmp_frame_size(const pmp_frame_t *f)
{
    /* zmq_msg_size takes a non-const pointer but does not modify */
    return zmq_msg_size((zmq_msg_t *)&f->msg);
}

void pmp_frame_destroy(pmp_frame_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zmq_msg_close(&(*self_p)->msg);
    free(*self_p);
    *self_p = NULL;
}
