/*
 * pmp_window.h - how many tasks a group may hold right now: the executor's
 * pipeline window, wide while the tasks are short, narrow once they are
 * long.  Internal to the frontend.
 *
 * A group always may hold base tasks (the configured pipeline depth: the
 * one it runs and the next, so that it never waits for a round trip).
 * Tasks that take microseconds need more in flight: then the transport,
 * not the work, sets the pace, and several tasks written at once share
 * one system call and one wake-up on each side.  But a task sent to a
 * group waits there behind the ones before it, even when another group
 * falls idle, so the window only holds about budget of work: the limit is
 * budget divided by the time a group takes per task, between base and
 * max.  That time is estimated from the results: a result of a group
 * that was busy since its previous one measures one task (the time
 * between them); of a group that was idle, one round trip.  The estimate
 * is a moving average of the samples (each weighs 1/8): unbiased when
 * results arrive in bursts (several read at once give samples near zero
 * and one long one), so that the window follows the mean.  One task much
 * longer than the estimate closes the window at once (a task of a second
 * after tasks of microseconds makes the estimate 1/8 s), while short tasks
 * after long ones open it over a few dozen results.  Until
 * PMP_WINDOW_WARM results have come back the limit stays at base: a
 * window that opened on the first quick answer would let the calls
 * submitted right behind a long one queue up behind it.
 *
 * What it cannot see: a task is known to be long only once it finished.
 * Tasks sent while a group runs a long one after many short ones (at most
 * the window, about budget of the short ones) wait behind it.
 *
 * Cost: every call is O(1) (sent and done may grow a per-group array);
 * limit is a load.  Not thread-safe: the executor's I/O thread owns it.
 * Out of memory is fatal (PMP_ASSERT).  Groups are numbered as in
 * pmp_sched.
 */
#ifndef PMP_WINDOW_H
#define PMP_WINDOW_H

#include <stddef.h>
#include <stdint.h>

typedef struct pmp_window pmp_window_t;

/* Results before the window may open. */
#define PMP_WINDOW_WARM 8

/* A window between base >= 1 and max >= base tasks, holding about
 * budget_ns of work (0: always max).  The limit starts at base.  NULL
 * with errno = EINVAL (base 0 or max < base) or ENOMEM. */
pmp_window_t *pmp_window_new(size_t base, size_t max, int64_t budget_ns);

/* NULL-safe; nulls *self_p. */
void pmp_window_destroy(pmp_window_t **self_p);

/* The tasks a group may hold now. */
size_t pmp_window_limit(const pmp_window_t *self);

/* A task was sent at now_ns to group, which held load tasks before it. */
void pmp_window_sent(pmp_window_t *self, size_t group, size_t load, int64_t now_ns);

/* Group completed a task at now_ns: a sample of the time per task. */
void pmp_window_done(pmp_window_t *self, size_t group, int64_t now_ns);

/* The estimated time per task (ns; 0 before the first result). */
int64_t pmp_window_task_ns(const pmp_window_t *self);

/* Forget the groups and the estimate (a new job): the limit is base. */
void pmp_window_reset(pmp_window_t *self);

#endif
