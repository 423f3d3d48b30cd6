/*
 * pmp_completion.h - how the I/O thread builds the completions and frames
 * whose public accessors are declared in pmp_executor.h.  Internal to the
 * frontend.
 */
#ifndef PMP_COMPLETION_H
#define PMP_COMPLETION_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "pmp_executor.h"
#include "pmp_frame_internal.h"

struct pmp_completion {
    struct pmp_completion *next; /* link in the executor's completion list */
    int kind;                    /* pmp_completion_kind_t */
    uint64_t task_id;
    uint32_t flags;
    int status;
    char *text; /* never NULL; a shared "" when empty (a result's), not allocated */
    size_t nframes;
    pmp_frame_t **frames; /* entries become NULL when taken; points to few_frames when
                             nframes <= PMP_COMPLETION_FEW_FRAMES */
    pmp_frame_t *few_frames[2];
};

/* A completion of at most this many frames (most results: the payload) needs
 * no array of its own. */
#define PMP_COMPLETION_FEW_FRAMES 2

/* Returns a completion with a copy of text (NULL means ""), or NULL with
 * errno = ENOMEM. */
pmp_completion_t *pmp_completion_new(int kind, uint64_t task_id, uint32_t flags, const char *text,
                                     int status);

/* Moves n received messages into c as its frames (each msgs[i] is left
 * empty, as after zmq_msg_init).  Returns 0, or -1 with errno = ENOMEM (the
 * messages are then untouched). */
int pmp_completion_take_msgs(pmp_completion_t *c, zmq_msg_t *msgs, size_t n);

#endif
