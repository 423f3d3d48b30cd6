/*
 * pmp_window.c - the executor's pipeline window (see pmp_window.h).
 *
 * Why: a fixed depth of two tasks a group keeps a group busy while its
 * next task travels, which is all that long tasks need; but for tasks of
 * a few microseconds every task then costs its own system calls and
 * wake-ups on both sides, and the pool runs at the speed of its
 * transport (docs/performance.md, "Where one call's time goes").  A deep
 * fixed window would fix that and spoil the balance of long tasks: a task
 * queued behind a long one on a busy group waits there while another
 * group idles.  Sizing the window by the work it holds gives each case
 * what it needs.
 *
 * How: per group, mark is when its current task began to count: the later
 * of its previous result and the send that found it idle.  A result's
 * sample is now - mark; the estimate moves an eighth of the way to it
 * (integer arithmetic on nanoseconds), and the limit is recomputed from
 * it once, here, so that the I/O thread's hot path reads one field.
 */
#include "pmp_window.h"

#include <errno.h>
#include <stdlib.h>

#include "pmp_error.h"

struct pmp_window {
    size_t base, max, limit;
    int64_t budget_ns;
    int64_t estimate_ns; /* 0: no sample yet */
    unsigned samples;    /* up to PMP_WINDOW_WARM */
    int64_t *mark;       /* per group */
    size_t nmarks;
};

pmp_window_t *pmp_window_new(size_t base, size_t max, int64_t budget_ns)
{
    if (base < 1 || max < base || budget_ns < 0) {
        errno = EINVAL;
        return NULL;
    }
    pmp_window_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->base = base;
    self->max = max;
    self->budget_ns = budget_ns;
    pmp_window_reset(self);
    return self;
}

void pmp_window_destroy(pmp_window_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->mark);
    free(*self_p);
    *self_p = NULL;
}

size_t pmp_window_limit(const pmp_window_t *self)
{
    return self->limit;
}

int64_t pmp_window_task_ns(const pmp_window_t *self)
{
    return self->estimate_ns;
}

void pmp_window_reset(pmp_window_t *self)
{
    self->estimate_ns = 0;
    self->samples = 0;
    self->limit = self->budget_ns == 0 ? self->max : self->base;
    for (size_t i = 0; i < self->nmarks; i++)
        self->mark[i] = 0;
}

static int64_t *s_mark(pmp_window_t *self, size_t group)
{
    if (group >= self->nmarks) {
        size_t n = group + 1 > self->nmarks * 2 ? group + 1 : self->nmarks * 2;
        int64_t *mark = realloc(self->mark, n * sizeof *mark);
        PMP_ASSERT(mark != NULL);
        for (size_t i = self->nmarks; i < n; i++)
            mark[i] = 0;
        self->mark = mark;
        self->nmarks = n;
    }
    return &self->mark[group];
}

void pmp_window_sent(pmp_window_t *self, size_t group, size_t load, int64_t now_ns)
{
    int64_t *mark = s_mark(self, group);
    if (load == 0) /* it was idle: its time starts now */
        *mark = now_ns;
}

void pmp_window_done(pmp_window_t *self, size_t group, int64_t now_ns)
{
    int64_t *mark = s_mark(self, group);
    int64_t sample = *mark > 0 && now_ns > *mark ? now_ns - *mark : 0;
    *mark = now_ns;
    if (self->budget_ns == 0)
        return;
    if (self->estimate_ns == 0)
        self->estimate_ns = sample > 0 ? sample : 1;
    else
        self->estimate_ns += (sample - self->estimate_ns) / 8;
    if (self->estimate_ns < 1)
        self->estimate_ns = 1;
    if (self->samples < PMP_WINDOW_WARM && ++self->samples < PMP_WINDOW_WARM)
        return; /* too early to tell */
    int64_t fit = self->budget_ns / self->estimate_ns;
    size_t limit = fit >= (int64_t)self->max ? self->max : (size_t)fit;
    self->limit = limit < self->base ? self->base : limit;
}
