/*
 * pmp_frame_internal.h - how the frontend makes the frames of pmp_frame.h
 * out of received ZeroMQ messages.  Internal to the frontend: the
 * executor's I/O thread (completions, pmp_completion.c) and the socket
 * interface's channel (pmp_channel_msg.c) both hand out frames made here.
 */
#ifndef PMP_FRAME_INTERNAL_H
#define PMP_FRAME_INTERNAL_H

#include <stddef.h>
#include <zmq.h>

#include "pmp_frame.h"

struct pmp_frame {
    zmq_msg_t msg; /* received as is: no copy */
};

/* Makes frames[0..n-1], each taking one of msgs[0..n-1] (which is left
 * empty, as after zmq_msg_init).  All or nothing: returns 0, or -1 with
 * errno = ENOMEM, the messages untouched and no frame made.  Cost: one
 * allocation per frame. */
int pmp_frame_take_msgs(pmp_frame_t **frames, zmq_msg_t *msgs, size_t n);

#endif
