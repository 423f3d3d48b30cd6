/*
 * pmp_timelimit.h - the executor's hard time limit: which task each group
 * runs, since when, and whether it has run too long.  Internal to the
 * frontend.
 *
 * The runtime stops a call at run_time_max by itself (SIGALRM in the
 * worker); this is the frontend's backstop for a call that does not stop.
 * Groups run their tasks in order, so the task a group runs is the oldest
 * one it holds; it started when it was sent or when the group finished the
 * task before it, whichever came later.  It has expired once it ran longer
 * than ncalls * limit + grace.  The executor then completes it as
 * PMP_DONE_TIMEOUT and kills the job (pmp_job.c); this module only keeps
 * the clock.
 *
 * Ownership and threads: the executor's I/O thread alone.  scan_locked
 * reads the executor's in-flight queue and so runs under the executor's
 * mutex; nothing here takes a lock.  Groups are numbered as in the
 * executor's group table, in hello order since the last clear.
 *
 * Cost: sent, done, next and the rest are O(1) (done may grow a per-group
 * array); scan_locked is O(tasks in flight) and runs only when the
 * earliest deadline may have passed, so a poll round usually costs one
 * comparison.  Out of memory is fatal (PMP_ASSERT).
 */
#ifndef PMP_TIMELIMIT_H
#define PMP_TIMELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "pmp_queue.h"

/* The sent_ms of a task that scan_locked found expired. */
#define PMP_TIMELIMIT_EXPIRED INT64_MIN

typedef struct pmp_timelimit pmp_timelimit_t;

/* Returns a clock for limit_ms per call (0: no limit: every call below is
 * then cheap and finds nothing) with grace_ms on top, or NULL with errno =
 * ENOMEM. */
pmp_timelimit_t *pmp_timelimit_new(int64_t limit_ms, int grace_ms);

/* NULL-safe; nulls *self_p. */
void pmp_timelimit_destroy(pmp_timelimit_t **self_p);

int64_t pmp_timelimit_limit_ms(const pmp_timelimit_t *self);
int pmp_timelimit_grace_ms(const pmp_timelimit_t *self);

/* A task is being sent now: returns the sent_ms to record in it (0
 * without a limit) and makes the next check due at once. */
int64_t pmp_timelimit_sent(pmp_timelimit_t *self);

/* Group completed a task now (so its next task starts now). */
void pmp_timelimit_done(pmp_timelimit_t *self, size_t group);

/* When the next scan is due (monotonic ms; INT64_MAX: nothing runs). */
int64_t pmp_timelimit_next(const pmp_timelimit_t *self);

/* Looks at the tasks in flight (pmp_task_t items of inflight, oldest
 * first) at now: marks every task that a group runs and that has expired
 * (sent_ms = PMP_TIMELIMIT_EXPIRED), returns how many, and plans the next
 * scan at the earliest deadline left.  The caller holds the lock that
 * guards inflight. */
size_t pmp_timelimit_scan_locked(pmp_timelimit_t *self, const pmp_queue_t *inflight, int64_t now);

/* Group's running task completed as TIMEOUT: it is stuck in that call,
 * so the tasks it holds behind it never started. */
void pmp_timelimit_expire(pmp_timelimit_t *self, size_t group);

int pmp_timelimit_timed_out(const pmp_timelimit_t *self, size_t group);

/* Nothing runs any more (the job is being killed): no scan is due until
 * the next task is sent. */
void pmp_timelimit_idle(pmp_timelimit_t *self);

/* Forgets every group (the job is gone; the next job's groups say hello
 * afresh) and goes idle. */
void pmp_timelimit_clear(pmp_timelimit_t *self);

#endif
