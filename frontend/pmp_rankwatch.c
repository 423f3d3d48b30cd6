/*
 * pmp_rankwatch.c - pidfds of the job's local ranks (see pmp_rankwatch.h).
 *
 * Place in the design: the first of the three sources of a fault report
 * (docs/architecture.md, "Faults: what died, and how the error says so"):
 * which process died.  The executor's I/O thread adds each group's ranks
 * at its hello, polls the pidfds with everything else, and asks here for
 * the exit text when mpiexec has exited.  The exit status of a rank is not
 * ours to read (mpiexec's proxies are its parents): how it died comes from
 * the rank's own fatal-signal line in the job's stderr, matched by pid.
 *
 * How: one entry per group, in hello order, with the decoded ranks and a
 * pidfd per rank (-1: not on this host, not launched here, or already
 * exited).  pollitems() lays the open pidfds out after the I/O thread's
 * fixed poll items and notes (group, rank) per item, so a fired item maps
 * back in O(1).  pidfd_open works for processes that are not our
 * children; where the kernel lacks it nothing is watched and a death is
 * seen when mpiexec exits.
 */
#include "pmp_rankwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pmp_error.h"

typedef struct {
    int group, world_size;   /* from the hello, for the death's text */
    pmp_hello_rank_t *ranks; /* the hello's "ranks" (NULL from an older runtime) */
    int *pidfds;             /* per rank: a pidfd of a rank on this host, or -1 */
    size_t nranks;
} s_group_t;

struct pmp_rankwatch {
    int local; /* the job was launched here: its ranks on this host are ours to watch */
    char local_host[PMP_HELLO_TEXT_MAX];
    s_group_t *groups;
    size_t ngroups, groups_cap;
    size_t (*watched)[2]; /* per poll item of the last pollitems(): (group, rank) */
    int *watched_fds;     /* and its pidfd */
    size_t nwatched, watched_cap;
    size_t open; /* pidfds open now (count()) */
    int dirty;   /* a pidfd was opened or closed since watched was made */
    char *death; /* "rank R of N (pid P on host H, group G)" of the first rank that died */
    long death_pid;
    int64_t death_deadline; /* then the job is killed if it has not exited by itself */
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

pmp_rankwatch_t *pmp_rankwatch_new(int local)
{
    pmp_rankwatch_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->local = local;
    return self;
}

/* Closes pidfd r of group g. */
static void s_close(pmp_rankwatch_t *self, s_group_t *g, size_t r)
{
    close(g->pidfds[r]);
    g->pidfds[r] = -1;
    self->open--;
    self->dirty = 1;
}

/* Closes the pidfds of group g's ranks. */
static void s_unwatch(pmp_rankwatch_t *self, s_group_t *g)
{
    for (size_t i = 0; i < g->nranks; i++)
        if (g->pidfds[i] >= 0)
            s_close(self, g, i);
}

void pmp_rankwatch_clear(pmp_rankwatch_t *self)
{
    for (size_t i = 0; i < self->ngroups; i++) {
        s_unwatch(self, &self->groups[i]);
        free(self->groups[i].ranks);
        free(self->groups[i].pidfds);
    }
    self->ngroups = 0;
}

void pmp_rankwatch_destroy(pmp_rankwatch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_rankwatch_t *self = *self_p;
    pmp_rankwatch_clear(self);
    free(self->groups);
    free(self->watched);
    free(self->watched_fds);
    free(self->death);
    free(self);
    *self_p = NULL;
}

void pmp_rankwatch_add(pmp_rankwatch_t *self, size_t group, const pmp_hello_t *hello,
                       const void *payload, size_t len)
{
    PMP_ASSERT(group == self->ngroups);
    if (self->ngroups == self->groups_cap) {
        size_t cap = self->groups_cap ? self->groups_cap * 2 : 8;
        s_group_t *groups = realloc(self->groups, cap * sizeof *groups);
        PMP_ASSERT(groups != NULL);
        self->groups = groups;
        self->groups_cap = cap;
    }
    s_group_t *g = &self->groups[self->ngroups++];
    memset(g, 0, sizeof *g);
    g->group = hello->group;
    g->world_size = hello->world_size;

    pmp_error_t err;
    pmp_hello_rank_t *ranks = NULL;
    size_t n = 0;
    if (pmp_hello_ranks_decode(payload, len, (size_t)hello->group_size, &ranks, &n, &err) < 0) {
        pmp_log(PMP_LOG_WARNING, "frontend: ignored the ranks of group %d's hello: %s",
                (int)hello->group, err.text);
        return;
    }
    if (n == 0)
        return;
    int *pidfds = malloc(n * sizeof *pidfds);
    PMP_ASSERT(pidfds != NULL);
    if (!self->local_host[0] && gethostname(self->local_host, sizeof self->local_host - 1) < 0)
        snprintf(self->local_host, sizeof self->local_host, "?");
    for (size_t i = 0; i < n; i++) {
        pidfds[i] = -1;
#ifdef SYS_pidfd_open
        if (self->local && strcmp(ranks[i].host, self->local_host) == 0 &&
            ranks[i].pid <= (int64_t)INT_MAX) {
            pidfds[i] = (int)syscall(SYS_pidfd_open, (pid_t)ranks[i].pid, 0);
            if (pidfds[i] >= 0) {
                fcntl(pidfds[i], F_SETFD, FD_CLOEXEC);
                self->open++;
                self->dirty = 1;
            }
        }
#endif
    }
    g->ranks = ranks;
    g->pidfds = pidfds;
    g->nranks = n;
}

size_t pmp_rankwatch_count(const pmp_rankwatch_t *self)
{
    return self->open;
}

/* The list of open pidfds (watched, watched_fds), made again after a pidfd
 * was opened or closed: O(groups + ranks), but only then. */
static void s_rebuild(pmp_rankwatch_t *self)
{
    if (self->open > self->watched_cap) {
        size_t cap = self->open * 2;
        size_t(*watched)[2] = realloc(self->watched, cap * sizeof *watched);
        PMP_ASSERT(watched != NULL);
        self->watched = watched;
        int *fds = realloc(self->watched_fds, cap * sizeof *fds);
        PMP_ASSERT(fds != NULL);
        self->watched_fds = fds;
        self->watched_cap = cap;
    }
    size_t n = 0;
    for (size_t i = 0; i < self->ngroups && n < self->open; i++)
        for (size_t r = 0; r < self->groups[i].nranks; r++)
            if (self->groups[i].pidfds[r] >= 0) {
                self->watched[n][0] = i;
                self->watched[n][1] = r;
                self->watched_fds[n] = self->groups[i].pidfds[r];
                n++;
            }
    PMP_ASSERT(n == self->open);
    self->nwatched = n;
    self->dirty = 0;
}

int pmp_rankwatch_pollitems(pmp_rankwatch_t *self, zmq_pollitem_t *items)
{
    if (self->dirty)
        s_rebuild(self);
    for (size_t k = 0; k < self->nwatched; k++)
        items[k] = (zmq_pollitem_t){.fd = self->watched_fds[k], .events = ZMQ_POLLIN};
    return (int)self->nwatched;
}

size_t pmp_rankwatch_item_group(const pmp_rankwatch_t *self, int k)
{
    return self->watched[k][0];
}

void pmp_rankwatch_on_exit(pmp_rankwatch_t *self, int k, int expected)
{
    s_group_t *g = &self->groups[self->watched[k][0]];
    size_t ri = self->watched[k][1];
    s_close(self, g, ri);
    if (expected || self->death)
        return;
    const pmp_hello_rank_t *r = &g->ranks[ri];
    char text[PMP_ERROR_TEXT];
    snprintf(text, sizeof text, "rank %d of %d (pid %lld on host %s, group %d)", (int)r->world_rank,
             g->world_size, (long long)r->pid, r->host, g->group);
    self->death = strdup(text);
    PMP_ASSERT(self->death != NULL);
    self->death_pid = (long)r->pid;
    self->death_deadline = s_now_ms() + PMP_RANKWATCH_DEATH_GRACE_MS;
    pmp_log(PMP_LOG_INFO, "frontend: %s died while the job was running", text);
}

const char *pmp_rankwatch_death(const pmp_rankwatch_t *self)
{
    return self->death;
}

int64_t pmp_rankwatch_left(const pmp_rankwatch_t *self)
{
    if (!self->death || self->death_deadline == INT64_MAX)
        return -1;
    int64_t left = self->death_deadline - s_now_ms();
    return left < 0 ? 0 : left;
}

int pmp_rankwatch_kill_due(pmp_rankwatch_t *self)
{
    if (!self->death || self->death_deadline == INT64_MAX || s_now_ms() < self->death_deadline)
        return 0;
    self->death_deadline = INT64_MAX;
    return 1;
}

int pmp_rankwatch_signal(pmp_rankwatch_t *self, size_t group, int sig)
{
    int n = 0;
    if (group >= self->ngroups)
        return 0;
#ifdef SYS_pidfd_send_signal
    s_group_t *g = &self->groups[group];
    for (size_t r = 0; r < g->nranks; r++)
        if (g->pidfds[r] >= 0 && syscall(SYS_pidfd_send_signal, g->pidfds[r], sig, NULL, 0) == 0)
            n++;
#else
    (void)sig;
#endif
    return n;
}

char *pmp_rankwatch_exit_text(pmp_rankwatch_t *self, char *base)
{
    for (size_t i = 0; i < self->ngroups; i++)
        s_unwatch(self, &self->groups[i]);
    if (!self->death)
        return base;
    /* How it died, if the rank said so before dying (its crash line,
     * pmp_protocol.h: "... (pid P) was killed by signal 11 (Segmentation
     * fault)"). */
    char how[160] = "died";
    if (!pmp_crash_line_find(base, self->death_pid, how, sizeof how))
        snprintf(how, sizeof how, "died");
    size_t size = strlen(self->death) + strlen(how) + strlen(base) + 64;
    char *text = malloc(size);
    PMP_ASSERT(text != NULL);
    snprintf(text, size, "%s %s; the %s", self->death, how, base);
    free(base);
    free(self->death);
    self->death = NULL;
    return text;
}
