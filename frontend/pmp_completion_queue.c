/*
 * pmp_completion_queue.c - the executor's completion queue (see
 * pmp_completion_queue.h).
 *
 * Place in the design: the one way back from the I/O thread to the
 * callers.  The dispatcher thread of the Python binding sleeps in
 * pmp_completion_queue_wait_many() (GIL released) and the I/O thread appends;
 * a singly linked list through pmp_completion_t.next, so a push never
 * allocates and cannot fail once the completion exists.
 *
 * How it waits: a condition variable on CLOCK_MONOTONIC (a wall clock
 * change neither shortens nor stretches a timeout) with the owner's mutex.
 * The I/O thread's hot path, a result, pushes under the mutex and wakes
 * after unlocking it; events that are rare push and wake under it.
 */
#include "pmp_completion_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "pmp_error.h"

struct pmp_completion_queue {
    pthread_mutex_t *mtx; /* the owner's; guards everything below */
    pthread_cond_t cv;    /* signalled when a completion arrives */
    pmp_completion_t *head, *tail;
    int closed_returned; /* wait() has returned PMP_EVENT_CLOSED */
};

pmp_completion_queue_t *pmp_completion_queue_new(pthread_mutex_t *mtx)
{
    pmp_completion_queue_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->mtx = mtx;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cv, &ca);
    pthread_condattr_destroy(&ca);
    return self;
}

void pmp_completion_queue_destroy(pmp_completion_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_completion_queue_t *self = *self_p;
    while (self->head) {
        pmp_completion_t *c = self->head;
        self->head = c->next;
        pmp_completion_destroy(&c);
    }
    pthread_cond_destroy(&self->cv);
    free(self);
    *self_p = NULL;
}

void pmp_completion_queue_push_locked(pmp_completion_queue_t *self, pmp_completion_t *c)
{
    PMP_ASSERT(c != NULL);
    c->next = NULL;
    if (self->tail)
        self->tail->next = c;
    else
        self->head = c;
    self->tail = c;
}

void pmp_completion_queue_wake(pmp_completion_queue_t *self)
{
    pthread_cond_broadcast(&self->cv);
}

void pmp_completion_queue_deliver_locked(pmp_completion_queue_t *self, pmp_completion_t *c)
{
    pmp_completion_queue_push_locked(self, c);
    pthread_cond_broadcast(&self->cv);
}

size_t pmp_completion_queue_wait_many(pmp_completion_queue_t *self, pmp_completion_t **out,
                                      size_t max, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(self->mtx);
    for (;;) {
        if (self->head)
            break;
        if (self->closed_returned) {
            pthread_mutex_unlock(self->mtx);
            errno = ESHUTDOWN;
            return 0;
        }
        int rc = 0;
        if (timeout_ms < 0)
            rc = pthread_cond_wait(&self->cv, self->mtx);
        else if (timeout_ms == 0)
            rc = ETIMEDOUT;
        else
            rc = pthread_cond_timedwait(&self->cv, self->mtx, &deadline);
        if (rc == ETIMEDOUT && !self->head) {
            pthread_mutex_unlock(self->mtx);
            errno = EAGAIN;
            return 0;
        }
    }
    size_t n = 0;
    while (n < max && self->head) {
        pmp_completion_t *c = self->head;
        self->head = c->next;
        c->next = NULL;
        out[n++] = c;
        if (c->kind == PMP_EVENT_CLOSED) {
            self->closed_returned = 1; /* nothing follows it */
            break;
        }
    }
    if (!self->head)
        self->tail = NULL;
    pthread_mutex_unlock(self->mtx);
    return n;
}
