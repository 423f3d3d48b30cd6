/*
 * pmp_task.h - one message of the executor on its way to the groups: a
 * task, or a broadcast (INIT, DEFINE, FORGET), as the frames ZeroMQ will
 * send, with the zero-copy records of the caller's buffers.  Internal to
 * the frontend.
 *
 * Ownership.  A task is made by a caller of the public API (submit,
 * broadcast) and owned by whoever holds it: the caller until it is queued,
 * then the executor's queues (under the executor's mutex), and the I/O
 * thread once it is popped.  The fields are a plain record that the
 * executor's rooms read and write under those same rules; the functions
 * below touch nothing but the task and need no lock.
 *
 * Zero-copy.  A buffer with a free_fn becomes a zmq_msg_init_data frame
 * whose release calls free_fn(data, hint) exactly once, whenever ZeroMQ is
 * done with the bytes (sent, dropped, the task destroyed, the last shared
 * reference closed).  Until pmp_task_arm() those releases are disarmed, so
 * a submit that fails after building the task never calls free_fn.  A
 * buffer without free_fn is copied into its frame.
 *
 * Cost: new is one allocation for the record and its frames' zmq_msg_t
 * (a queued task of one frame holds that block, about 140 bytes, and
 * ZeroMQ's copy of the payload), plus, for zero-copy buffers only, a
 * release record each and a table of them until armed; each buffer without
 * free_fn is copied once.  Arm and destroy are O(frames); nothing here
 * blocks.
 */
#ifndef PMP_TASK_H
#define PMP_TASK_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "pmp_executor.h"

typedef struct pmp_task_zc pmp_task_zc_t; /* a zero-copy frame's release record */

typedef struct pmp_task {
    uint64_t id;  /* task id; the key of DEFINE and FORGET */
    uint64_t seq; /* submission order, shared by tasks and broadcasts */
    int type;     /* PMP_MSG_* */
    uint32_t flags;
    size_t nmsgs;
    zmq_msg_t *msgs;     /* the frames after the header, payload first; they live in the
                            task's own allocation, right after it */
    pmp_task_zc_t **zcs; /* release records of zero-copy msgs until armed, then NULL;
                            NULL from the start when there are none */
    size_t group;        /* the group holding it while in flight */
    int64_t sent_ms;     /* when it was sent to its group (hard time limit) */
    uint32_t ncalls;     /* calls it carries (CHUNK): its time limit is ncalls times the
                            per-call one */
    int pin;             /* -1: any group (the least loaded).  Otherwise the number of the
                            one group it is for (its hello's group; pmp_executor_submit_to) */
} pmp_task_t;

/* Checks a caller's buffer list for who ("submit", "broadcast"): between
 * min and PMP_MAX_FRAMES buffers, none with a size but no data.  Returns 0,
 * or -1 with errno = EINVAL and a sentence in err. */
int pmp_task_check_bufs(const char *who, const pmp_buffer_t *bufs, size_t nbufs, size_t min,
                        pmp_error_t *err);

/* Builds a task of one call (ncalls 1) from the buffers, with every
 * zero-copy release disarmed; the caller owns it.  Returns NULL with
 * errno = ENOMEM, having called no free_fn. */
pmp_task_t *pmp_task_new(uint64_t id, int type, uint32_t flags, const pmp_buffer_t *bufs,
                         size_t nbufs);

/* A task of the same type, flags, calls and group as task, under another
 * id, whose frames are shared references to task's (zmq_msg_copy: no byte
 * copy; a zero-copy buffer is released once, when the last reference is
 * closed, and only if task was armed).  It has no release records of its
 * own: arm task, not the copy.  Returns NULL with errno = ENOMEM. */
pmp_task_t *pmp_task_share(pmp_task_t *task, uint64_t id);

/* From now on the task owns the zero-copy buffers: their release calls
 * free_fn.  Call once the task is queued for good, before any other thread
 * can see it (inside the critical section that queues it). */
void pmp_task_arm(pmp_task_t *task);

/* Closes the frames (an armed zero-copy buffer is released once ZeroMQ's
 * last reference to it is gone) and frees the task.  NULL-safe; nulls
 * *task_p. */
void pmp_task_destroy(pmp_task_t **task_p);

#endif
