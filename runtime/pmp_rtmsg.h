/*
 * pmp_rtmsg.h - one message as the runtime holds it between the socket,
 * the group broadcast and the embedded interpreter.
 *
 * On the group leader the frames are the zmq_msg_t parts exactly as they
 * came off the DEALER socket (no copy); on the other ranks they are
 * malloc'ed blocks the broadcast wrote into.  Either way data[i]/size[i]
 * give the bytes, and the Python side (pmp_python.c) takes ownership of
 * each frame when it wraps it in a Buffer - zmq_msg_move out of zmsgs[i],
 * or heap[i] set to NULL - so a frame is never copied between the socket
 * and pickle.loads.
 */
#ifndef PMP_RTMSG_H
#define PMP_RTMSG_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct {
    uint32_t type; /* pmp_msg_type_t */
    uint64_t task_id;
    uint32_t flags;
    uint32_t nframes; /* frames after the header */
    void **data;      /* nframes pointers to the bytes (NULL once taken) */
    size_t *size;     /* nframes sizes */
    zmq_msg_t *zmsgs; /* leader: the received frames, or NULL */
    void **heap;      /* other ranks: malloc'ed frames, or NULL */
} pmp_rtmsg_t;

/* Makes an empty message of nframes frames.  With zmq_backed the frames are
 * zmq_msg_t (initialised empty, filled by the caller with zmq_msg_move);
 * otherwise heap blocks allocated by pmp_rtmsg_alloc_heap.  Returns NULL
 * with errno = ENOMEM. */
pmp_rtmsg_t *pmp_rtmsg_new(uint32_t nframes, int zmq_backed);

/* Sets data[i]/size[i] from the zmq frames (call after filling them). */
void pmp_rtmsg_sync_zmq(pmp_rtmsg_t *self);

/* Allocates the heap frames for the sizes in size[] (at least 1 byte each).
 * Returns 0 or -1 with errno = ENOMEM (already allocated frames stay owned
 * by the message). */
int pmp_rtmsg_alloc_heap(pmp_rtmsg_t *self);

/* Frees the message and every frame still owned by it.  NULL-safe; nulls
 * the pointer. */
void pmp_rtmsg_destroy(pmp_rtmsg_t **self_p);

#endif
