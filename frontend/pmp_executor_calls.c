/*
 * pmp_executor_calls.c - the callers' side of the executor (part of it,
 * see pmp_executor_internal.h): submit in its forms, broadcast, cancel,
 * pending, close, interrupt and wait, the public calls that any thread
 * makes while the I/O thread runs.  pmp_executor.c builds and destroys the
 * executor; its essay says how the two sides share the mutex.
 *
 * Every call here checks the fork generation first (a forked child's copy
 * is left alone), then its arguments, then allocates what it can outside
 * the mutex, changes the tables in one short critical section, and wakes
 * the I/O thread after the unlock.  A submit of many tasks does that once
 * for all of them; a wait of many completions takes them in one critical
 * section.  Nothing here blocks on the I/O thread except interrupt(),
 * which waits for its answer, and wait(), for a completion.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "pmp_executor_internal.h"
#include "pmp_fork.h"

/* ---- submit and friends -------------------------------------------------- */

/* The end of submit() and broadcast(), after the mutex was let go: task
 * was queued (e == 0: the I/O thread is woken) or refused with errno e (it
 * is destroyed: disarmed, it calls no free_fn).  Returns 0 or -1. */
static int s_queued(pmp_executor_t *self, pmp_task_t *task, int e)
{
    if (e) {
        pmp_task_destroy(&task);
        errno = e;
        return -1;
    }
    pmp_executor_wake(self);
    return 0;
}

/* Queues a built broadcast behind everything submitted so far; mtx held.
 * Returns 0 or ENOMEM (task untouched). */
static int s_queue_broadcast_locked(pmp_executor_t *self, pmp_task_t *task)
{
    task->seq = self->next_seq;
    if (pmp_queue_push(self->bcasts, task->seq, task) < 0)
        return ENOMEM;
    self->next_seq++;
    pmp_task_arm(task);
    return 0;
}

int pmp_executor_submit(pmp_executor_t *self, uint64_t task_id, int type, uint32_t flags,
                        const pmp_buffer_t *bufs, size_t nbufs, pmp_error_t *err)
{
    return pmp_executor_submit_calls(self, task_id, type, flags, bufs, nbufs, 1, err);
}

/* What every submit checks first: type, id and flags.  0, or -1 with
 * errno = EINVAL and a sentence in err. */
static int s_check_task(int type, uint64_t task_id, uint32_t flags, pmp_error_t *err)
{
    if (type != PMP_MSG_TASK && type != PMP_MSG_INIT) {
        pmp_error_set(err, "submit: type must be TASK (%d) or INIT (%d), not %d", PMP_MSG_TASK,
                      PMP_MSG_INIT, type);
        errno = EINVAL;
        return -1;
    }
    if (task_id == 0) {
        pmp_error_set(err, "submit: task_id must not be 0");
        errno = EINVAL;
        return -1;
    }
    if (flags & ~PMP_FLAG_KNOWN_MASK) {
        pmp_error_set(err, "submit: unknown flags 0x%x", (unsigned)(flags & ~PMP_FLAG_KNOWN_MASK));
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* Why a task cannot be queued now (ESHUTDOWN, EPIPE, EINVAL for an id in
 * use), with the sentence in err, or 0.  mtx held. */
static int s_refuse_locked(pmp_executor_t *self, uint64_t task_id, pmp_error_t *err)
{
    if (self->closing) {
        pmp_error_set(err, "submit: the executor is shut down (close() was called)");
        return ESHUTDOWN;
    }
    if (self->exited) {
        pmp_error_set(err, "submit: %s", self->exit_text);
        return EPIPE;
    }
    /* Callers count their ids up: a new largest id needs no look-up in
     * tables of thousands of tasks, each a cache miss. */
    if (task_id > self->top_id) {
        self->top_id = task_id;
        return 0;
    }
    pmp_queue_prefetch(self->pinned, task_id); /* its miss overlaps the queue's */
    if (pmp_queue_find(self->queue, task_id) || pmp_queue_find(self->pinned, task_id) ||
        pmp_queue_find(self->inflight, task_id)) {
        pmp_error_set(err, "submit: task id %llu is already in use", (unsigned long long)task_id);
        return EINVAL;
    }
    return 0;
}

/* The end of a submit of n tasks (the array from calloc, NULL when that
 * failed), after the mutex was let go: all were queued (e == 0: the I/O
 * thread is woken) or none, with errno e (those built are destroyed:
 * disarmed, they call no free_fn).  Frees the array.  Returns 0 or -1. */
static int s_queued_all(pmp_executor_t *self, pmp_task_t **tasks, size_t n, int e)
{
    for (size_t i = 0; e && tasks && i < n; i++)
        pmp_task_destroy(&tasks[i]); /* NULL-safe: those never built */
    free(tasks);
    if (e) {
        errno = e;
        return -1;
    }
    pmp_executor_wake(self);
    return 0;
}

int pmp_executor_submit_to(pmp_executor_t *self, const int *groups, const uint64_t *task_ids,
                           size_t n, uint32_t flags, const pmp_buffer_t *bufs, size_t nbufs,
                           pmp_error_t *err)
{
    if (pmp_executor_in_child(self))
        return pmp_fork_fail(err, "executor", self->owner);
    int ngroups = self->ranks / self->ranks_per_group;
    if (n == 0 || !groups || !task_ids) {
        pmp_error_set(err, "submit: no group to submit to");
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (groups[i] < 0 || groups[i] >= ngroups) {
            pmp_error_set(err, "submit: group %d does not exist (the job has groups 0 to %d)",
                          groups[i], ngroups - 1);
            errno = EINVAL;
            return -1;
        }
        if (s_check_task(PMP_MSG_TASK, task_ids[i], flags, err) < 0)
            return -1;
    }
    if (pmp_task_check_bufs("submit", bufs, nbufs, 1, err) < 0)
        return -1;
    pmp_task_t **tasks = calloc(n, sizeof *tasks);
    if (tasks && (tasks[0] = pmp_task_new(task_ids[0], PMP_MSG_TASK, flags, bufs, nbufs)))
        for (size_t i = 1; i < n && (tasks[i] = pmp_task_share(tasks[0], task_ids[i])); i++)
            ;
    int e = 0;
    for (size_t i = 0; i < n && !e; i++)
        if (!tasks || !tasks[i]) {
            pmp_error_set(err, "submit: out of memory");
            e = ENOMEM;
        }
    size_t queued = 0;
    pthread_mutex_lock(&self->mtx);
    for (; queued < n && !e; queued++) {
        tasks[queued]->pin = groups[queued];
        if ((e = s_refuse_locked(self, task_ids[queued], err)) != 0)
            break;
        if (pmp_queue_push(self->pinned, task_ids[queued], tasks[queued]) < 0) {
            pmp_error_set(err, "submit: out of memory");
            e = ENOMEM;
            break;
        }
    }
    if (e) { /* none of them */
        while (queued > 0)
            pmp_queue_remove(self->pinned, task_ids[--queued]);
    } else {
        for (size_t i = 0; i < n; i++)
            tasks[i]->seq = self->next_seq++;
        pmp_task_arm(tasks[0]); /* the others share its frames */
        self->any_task = 1;
    }
    pthread_mutex_unlock(&self->mtx);
    return s_queued_all(self, tasks, n, e);
}

int pmp_executor_submit_calls(pmp_executor_t *self, uint64_t task_id, int type, uint32_t flags,
                              const pmp_buffer_t *bufs, size_t nbufs, uint32_t ncalls,
                              pmp_error_t *err)
{
    if (pmp_executor_in_child(self))
        return pmp_fork_fail(err, "executor", self->owner);
    if (ncalls < 1)
        ncalls = 1;
    if (s_check_task(type, task_id, flags, err) < 0 ||
        pmp_task_check_bufs("submit", bufs, nbufs, 1, err) < 0)
        return -1;

    pmp_task_t *task = pmp_task_new(task_id, type, flags, bufs, nbufs);
    if (!task) {
        pmp_error_set(err, "submit: out of memory");
        errno = ENOMEM;
        return -1;
    }
    task->ncalls = ncalls;
    int e = 0;
    pthread_mutex_lock(&self->mtx);
    if (type == PMP_MSG_INIT && (self->closing || self->exited)) {
        e = s_refuse_locked(self, 0, err);
    } else if (type == PMP_MSG_INIT && self->init_submitted) {
        pmp_error_set(err, "submit: an init message was already submitted; only one is allowed");
        e = EINVAL;
    } else if (type == PMP_MSG_INIT && self->any_task) {
        pmp_error_set(err, "submit: the init message must come before the first task");
        e = EINVAL;
    } else if (type == PMP_MSG_INIT) {
        /* an INIT is a broadcast that late groups get too */
        if ((e = s_queue_broadcast_locked(self, task)) == 0)
            self->init_submitted = 1;
        else
            pmp_error_set(err, "submit: out of memory");
    } else if ((e = s_refuse_locked(self, task_id, err)) != 0) {
        /* err says why */
    } else if (pmp_queue_push(self->queue, task_id, task) < 0) {
        pmp_error_set(err, "submit: out of memory");
        e = ENOMEM;
    } else {
        task->seq = self->next_seq++;
        pmp_task_arm(task);
        self->any_task = 1;
    }
    pthread_mutex_unlock(&self->mtx);
    return s_queued(self, task, e);
}

int pmp_executor_submit_many(pmp_executor_t *self, const pmp_submission_t *subs, size_t n,
                             pmp_error_t *err)
{
    if (pmp_executor_in_child(self))
        return pmp_fork_fail(err, "executor", self->owner);
    if (n == 0 || !subs) {
        pmp_error_set(err, "submit: no task to submit");
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (s_check_task(PMP_MSG_TASK, subs[i].task_id, subs[i].flags, err) < 0 ||
            pmp_task_check_bufs("submit", subs[i].bufs, subs[i].nbufs, 1, err) < 0)
            return -1;
    pmp_task_t **tasks = calloc(n, sizeof *tasks);
    size_t built = 0;
    while (tasks && built < n) {
        const pmp_submission_t *sub = &subs[built];
        if (!(tasks[built] =
                  pmp_task_new(sub->task_id, PMP_MSG_TASK, sub->flags, sub->bufs, sub->nbufs)))
            break;
        tasks[built++]->ncalls = sub->ncalls > 1 ? sub->ncalls : 1;
    }
    int e = 0;
    if (built < n) {
        pmp_error_set(err, "submit: out of memory");
        e = ENOMEM;
    }
    size_t queued = 0;
    pthread_mutex_lock(&self->mtx);
    for (; queued < n && !e; queued++) {
        if ((e = s_refuse_locked(self, subs[queued].task_id, err)) != 0)
            break; /* the id may be one of this batch's: they are queued one by one */
        if (pmp_queue_push(self->queue, subs[queued].task_id, tasks[queued]) < 0) {
            pmp_error_set(err, "submit: out of memory");
            e = ENOMEM;
            break;
        }
    }
    if (e) { /* none of them */
        while (queued > 0)
            pmp_queue_remove(self->queue, subs[--queued].task_id);
    } else {
        for (size_t i = 0; i < n; i++) {
            tasks[i]->seq = self->next_seq++;
            pmp_task_arm(tasks[i]);
        }
        self->any_task = 1;
    }
    pthread_mutex_unlock(&self->mtx);
    return s_queued_all(self, tasks, n, e);
}

int pmp_executor_broadcast(pmp_executor_t *self, int type, uint64_t key, const pmp_buffer_t *bufs,
                           size_t nbufs, pmp_error_t *err)
{
    if (pmp_executor_in_child(self))
        return pmp_fork_fail(err, "executor", self->owner);
    if (type != PMP_MSG_DEFINE && type != PMP_MSG_FORGET) {
        pmp_error_set(err, "broadcast: type must be DEFINE (%d) or FORGET (%d), not %d",
                      PMP_MSG_DEFINE, PMP_MSG_FORGET, type);
        errno = EINVAL;
        return -1;
    }
    if (key == 0) {
        pmp_error_set(err, "broadcast: the key must not be 0");
        errno = EINVAL;
        return -1;
    }
    int define = type == PMP_MSG_DEFINE;
    if (pmp_task_check_bufs("broadcast", bufs, nbufs, define ? 1 : 0, err) < 0)
        return -1;
    if (!define && nbufs > 1) {
        pmp_error_set(err, "broadcast: a forget carries at most one (empty) buffer, not %zu",
                      nbufs);
        errno = EINVAL;
        return -1;
    }

    pmp_task_t *task = pmp_task_new(key, type, 0, bufs, nbufs);
    if (!task) {
        pmp_error_set(err, "broadcast: out of memory");
        errno = ENOMEM;
        return -1;
    }
    int e = 0;
    pthread_mutex_lock(&self->mtx);
    int known = pmp_keyset_has(self->defined, key);
    if (define && self->closing) {
        pmp_error_set(err, "broadcast: the executor is shut down (close() was called)");
        e = ESHUTDOWN;
    } else if (define && self->exited) {
        pmp_error_set(err, "broadcast: %s", self->exit_text);
        e = EPIPE;
    } else if (define && known) {
        pmp_error_set(err, "broadcast: key %llu is already defined; forget it first",
                      (unsigned long long)key);
        e = EINVAL;
    } else if (!define && !known) {
        pmp_error_set(err, "broadcast: key %llu is not defined, so it cannot be forgotten",
                      (unsigned long long)key);
        e = EINVAL;
    } else if (define && pmp_keyset_add(self->defined, key) < 0) {
        pmp_error_set(err, "broadcast: out of memory");
        e = ENOMEM;
    } else if ((e = s_queue_broadcast_locked(self, task)) != 0) {
        if (define)
            pmp_keyset_del(self->defined, key);
        pmp_error_set(err, "broadcast: out of memory");
    } else if (!define) {
        pmp_keyset_del(self->defined, key);
    }
    pthread_mutex_unlock(&self->mtx);
    return s_queued(self, task, e);
}

int pmp_executor_cancel(pmp_executor_t *self, uint64_t task_id)
{
    if (pmp_executor_in_child(self))
        return pmp_fork_fail(NULL, "executor", self->owner);
    pthread_mutex_lock(&self->mtx);
    pmp_task_t *task = pmp_queue_remove(self->queue, task_id);
    if (!task)
        task = pmp_queue_remove(self->pinned, task_id);
    pthread_mutex_unlock(&self->mtx);
    if (!task)
        return 0;
    pmp_task_destroy(&task);
    pmp_executor_wake(self); /* close() may now be able to proceed */
    return 1;
}

int pmp_executor_cancel_all(pmp_executor_t *self, uint64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (pmp_executor_in_child(self))
        return pmp_fork_fail(NULL, "executor", self->owner);
    pthread_mutex_lock(&self->mtx);
    size_t nfree = pmp_queue_size(self->queue);
    size_t count = nfree + pmp_queue_size(self->pinned);
    if (count == 0) {
        pthread_mutex_unlock(&self->mtx);
        return 0;
    }
    uint64_t *out = malloc(count * sizeof *out);
    pmp_task_t **tasks = malloc(count * sizeof *tasks);
    if (!out || !tasks) {
        pthread_mutex_unlock(&self->mtx);
        free(out);
        free(tasks);
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        tasks[i] = pmp_queue_pop(i < nfree ? self->queue : self->pinned, &out[i]);
    pthread_mutex_unlock(&self->mtx);
    for (size_t i = 0; i < count; i++)
        pmp_task_destroy(&tasks[i]);
    free(tasks);
    *ids = out;
    *n = count;
    pmp_executor_wake(self);
    return 0;
}

size_t pmp_executor_pending(pmp_executor_t *self)
{
    if (pmp_executor_in_child(self)) {
        pmp_fork_fail(NULL, "executor", self->owner);
        return 0;
    }
    pthread_mutex_lock(&self->mtx);
    size_t n = pmp_queue_size(self->queue) + pmp_queue_size(self->pinned);
    pthread_mutex_unlock(&self->mtx);
    return n;
}

int pmp_executor_close(pmp_executor_t *self)
{
    if (pmp_executor_in_child(self))
        return pmp_fork_fail(NULL, "executor", self->owner);
    pthread_mutex_lock(&self->mtx);
    self->closing = 1;
    pthread_mutex_unlock(&self->mtx);
    pmp_executor_wake(self);
    return 0;
}

int pmp_executor_interrupt(pmp_executor_t *self)
{
    if (pmp_executor_in_child(self))
        return pmp_fork_fail(NULL, "executor", self->owner);
    pthread_mutex_lock(&self->mtx);
    if (self->exited || self->stop || self->io_done) {
        pthread_mutex_unlock(&self->mtx);
        return 0;
    }
    /* read by the I/O thread without the lock, as a hint */
    uint64_t ticket = __atomic_add_fetch(&self->intr_asked, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&self->mtx);
    pmp_executor_wake(self);
    pthread_mutex_lock(&self->mtx);
    while (self->intr_served < ticket && !self->io_done)
        pthread_cond_wait(&self->intr_cv, &self->mtx);
    int n = self->intr_served >= ticket ? self->intr_count : 0;
    pthread_mutex_unlock(&self->mtx);
    return n;
}

pmp_completion_t *pmp_executor_wait(pmp_executor_t *self, int timeout_ms)
{
    pmp_completion_t *c = NULL;
    return pmp_executor_wait_many(self, &c, 1, timeout_ms) == 1 ? c : NULL;
}

size_t pmp_executor_wait_many(pmp_executor_t *self, pmp_completion_t **out, size_t max,
                              int timeout_ms)
{
    if (pmp_executor_in_child(self)) {
        pmp_fork_fail(NULL, "executor", self->owner);
        return 0;
    }
    if (!out || max == 0) {
        errno = EINVAL;
        return 0;
    }
    return pmp_completion_queue_wait_many(self->done, out, max, timeout_ms);
}
