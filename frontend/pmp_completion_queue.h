/*
 * pmp_completion_queue.h - the executor's completion queue: the FIFO
 * through which the I/O thread hands every outcome (a result, an error, a
 * lost or timed-out task, a hello, a restart, the job's exit, the end of
 * close()) to the callers of pmp_executor_wait().  Internal to the
 * frontend.
 *
 * Locking.  The queue has no mutex of its own: it is guarded by the mutex
 * given to pmp_completion_queue_new(), the executor's, so that the I/O
 * thread can change the executor's tables and queue the completion that
 * says so in one critical section.  The functions named _locked need that
 * mutex held; pmp_completion_queue_wait_many() takes it itself; wake() works
 * either way.
 *
 * Ownership.  A completion pushed belongs to the queue until wait()
 * returns it; then the caller owns it (pmp_completion_destroy).  Any
 * thread may push (in practice the I/O thread) and any thread may wait.
 *
 * Cost: push and pop are O(1) and never allocate; the queue is unbounded
 * (the executor never holds more completions than tasks it accepted, plus
 * a few events).
 */
#ifndef PMP_COMPLETION_QUEUE_H
#define PMP_COMPLETION_QUEUE_H

#include <pthread.h>
#include <stddef.h>

#include "pmp_completion.h"

typedef struct pmp_completion_queue pmp_completion_queue_t;

/* Returns an empty queue guarded by mtx (which must outlive it), or NULL
 * with errno = ENOMEM. */
pmp_completion_queue_t *pmp_completion_queue_new(pthread_mutex_t *mtx);

/* Destroys the completions still queued and the queue.  Nobody may be
 * waiting.  NULL-safe; nulls *self_p. */
void pmp_completion_queue_destroy(pmp_completion_queue_t **self_p);

/* Appends c without waking anyone (the caller wakes after its unlock:
 * a waiter woken while the mutex is still held would only go back to
 * sleep on it).  c must not be NULL: a completion that could not be built
 * would hang its waiter forever, so that is fatal (PMP_ASSERT). */
void pmp_completion_queue_push_locked(pmp_completion_queue_t *self, pmp_completion_t *c);

/* Wakes every waiter.  With or without the mutex. */
void pmp_completion_queue_wake(pmp_completion_queue_t *self);

/* push_locked and wake. */
void pmp_completion_queue_deliver_locked(pmp_completion_queue_t *self, pmp_completion_t *c);

/* Takes the oldest completions, up to max (>= 1) of them into out, in
 * order, waiting up to timeout_ms for the first (< 0: forever, 0: not at
 * all); the caller owns them.  A PMP_EVENT_CLOSED is the last one taken;
 * once it has been returned, an empty queue fails at once with ESHUTDOWN.
 * Returns how many were taken, or 0 with errno = EAGAIN when the time ran
 * out.  Takes the mutex once, whatever the count: O(taken). */
size_t pmp_completion_queue_wait_many(pmp_completion_queue_t *self, pmp_completion_t **out,
                                      size_t max, int timeout_ms);

#endif
