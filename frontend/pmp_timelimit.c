/*
 * pmp_timelimit.c - the clock of the hard time limit (see pmp_timelimit.h).
 *
 * Place in the design: the executor's I/O thread stamps every task it
 * sends (sent) and every completion per group (done), and before each poll
 * asks whether a scan is due (next); the scan marks the expired tasks and
 * the executor acts on them.  The earliest deadline also bounds the poll's
 * timeout, so an expired call is noticed on time without a timer thread.
 *
 * How: a scan walks the in-flight queue in the order the tasks were sent.
 * The first task seen of each group is the one it runs (a per-group pass
 * number tells first from later ones without clearing anything between
 * scans); its deadline is its start plus ncalls * limit + grace.  A scan
 * costs O(tasks in flight), but runs only when next says the earliest
 * deadline may have passed; sending a task makes a scan due at once, so
 * the new task's deadline is planned in.
 */
#include "pmp_timelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pmp_error.h"
#include "pmp_task.h"

typedef struct {
    int64_t last_done_ms; /* when it last completed a task (start of its next one) */
    uint64_t scan;        /* the pass that saw this group's oldest task */
    int timed_out;        /* its running task completed as TIMEOUT; the job is being killed */
} s_group_t;

struct pmp_timelimit {
    int64_t limit_ms; /* per call, 0: none */
    int grace_ms;
    int64_t next_check; /* when a scan must look again (INT64_MAX: nothing runs) */
    uint64_t scan;      /* pass counter */
    s_group_t *groups;  /* by group number, zero until touched */
    size_t cap;
    /* the scan in progress */
    int64_t now, next;
    size_t expired;
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

pmp_timelimit_t *pmp_timelimit_new(int64_t limit_ms, int grace_ms)
{
    pmp_timelimit_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->limit_ms = limit_ms;
    self->grace_ms = grace_ms;
    self->next_check = INT64_MAX;
    return self;
}

void pmp_timelimit_destroy(pmp_timelimit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->groups);
    free(*self_p);
    *self_p = NULL;
}

/* Group i's record, made (zeroed) if it is new. */
static s_group_t *s_group(pmp_timelimit_t *self, size_t i)
{
    if (i >= self->cap) {
        size_t cap = self->cap ? self->cap : 8;
        while (cap <= i)
            cap *= 2;
        s_group_t *groups = realloc(self->groups, cap * sizeof *groups);
        PMP_ASSERT(groups != NULL);
        memset(groups + self->cap, 0, (cap - self->cap) * sizeof *groups);
        self->groups = groups;
        self->cap = cap;
    }
    return &self->groups[i];
}

int64_t pmp_timelimit_limit_ms(const pmp_timelimit_t *self)
{
    return self->limit_ms;
}

int pmp_timelimit_grace_ms(const pmp_timelimit_t *self)
{
    return self->grace_ms;
}

int64_t pmp_timelimit_sent(pmp_timelimit_t *self)
{
    if (self->next_check == INT64_MAX)
        self->next_check = 0; /* something runs now */
    return self->limit_ms ? s_now_ms() : 0;
}

void pmp_timelimit_done(pmp_timelimit_t *self, size_t group)
{
    if (self->limit_ms)
        s_group(self, group)->last_done_ms = s_now_ms();
}

int64_t pmp_timelimit_next(const pmp_timelimit_t *self)
{
    return self->next_check;
}

static void s_scan_task(uint64_t id, void *item, void *arg)
{
    (void)id;
    pmp_timelimit_t *self = arg;
    pmp_task_t *task = item;
    s_group_t *g = s_group(self, task->group);
    if (g->scan == self->scan)
        return; /* not the oldest task of its group: it has not started */
    g->scan = self->scan;
    int64_t start = task->sent_ms > g->last_done_ms ? task->sent_ms : g->last_done_ms;
    int64_t deadline = start + (int64_t)task->ncalls * self->limit_ms + self->grace_ms;
    if (deadline <= self->now) {
        task->sent_ms = PMP_TIMELIMIT_EXPIRED;
        self->expired++;
    } else if (deadline < self->next) {
        self->next = deadline;
    }
}

size_t pmp_timelimit_scan_locked(pmp_timelimit_t *self, const pmp_queue_t *inflight, int64_t now)
{
    self->scan++;
    self->now = now;
    self->next = INT64_MAX;
    self->expired = 0;
    pmp_queue_foreach(inflight, s_scan_task, self);
    self->next_check = self->next;
    return self->expired;
}

void pmp_timelimit_expire(pmp_timelimit_t *self, size_t group)
{
    s_group(self, group)->timed_out = 1;
}

int pmp_timelimit_timed_out(const pmp_timelimit_t *self, size_t group)
{
    return group < self->cap && self->groups[group].timed_out;
}

void pmp_timelimit_idle(pmp_timelimit_t *self)
{
    self->next_check = INT64_MAX;
}

void pmp_timelimit_clear(pmp_timelimit_t *self)
{
    if (self->cap)
        memset(self->groups, 0, self->cap * sizeof *self->groups);
    self->next_check = INT64_MAX;
}
