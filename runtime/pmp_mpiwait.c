/*
 * pmp_mpiwait.c - MPI_Testall with backoff and doorbells (see pmp_mpiwait.h).
 *
 * The busy phase lasts S_BUSY_NS of wall time (not a count of calls, whose
 * cost differs by MPI library) and yields the CPU between two tests, so
 * that a busy rank never keeps a runnable thread of the same CPU (the
 * caller's threads, another rank) waiting: on a machine with as many cores
 * as ranks, two ranks spinning without yielding made a two-rank call's
 * round trip jump from about 300 to about 900 us every other run, while
 * yielding keeps it at 350-400 us; after it the sleep starts at S_SLEEP_MIN_NS
 * and doubles up to S_SLEEP_MAX_NS, so a message that arrives while a rank
 * sleeps waits at most about 1 ms more.  A wait that has lasted longer than
 * S_DEEP_AFTER_NS (a rank with nothing to do) sleeps up to S_DEEP_SLEEP_NS:
 * one wake-up (an MPI_Testall that drives the MPI progress engine, about
 * 15 us with MPICH/UCX here) per millisecond costs 1.5% of a core, which is
 * too much for ranks that may sit idle for hours; at 4 ms it is under 0.5%,
 * and only the first message after a second of silence would pay up to 4 ms.
 *
 * The doorbells remove that price for ranks on one host.  Sleeping is
 * FUTEX_WAIT on the rank's own word with the backoff step as its timeout;
 * every wait, after its first MPI_Testall (which hands eager messages to
 * MPI's shared-memory queues), rings: it adds one to the word of each local
 * peer and calls FUTEX_WAKE for those whose "sleeping" flag is set.  A rank
 * woken by a ring starts a new busy phase, since what it waits for is on its
 * way.  The race between a sleeper and a ringer is closed by the futex
 * itself: the sleeper reads its word before its last test and FUTEX_WAIT
 * returns at once if the word changed since.  A wait that completes after
 * its first test rings again, so that peers waiting on what it only now
 * pushed (a large broadcast's later chunks) are woken too.  The segment is
 * made by the group's first rank on the host (shm_open under a fresh name,
 * unlinked as soon as every local rank mapped it), one cache line per rank.
 * Without it (no /dev/shm), everything works as before on the backoff.
 */
#include "pmp_mpiwait.h"

#include <fcntl.h>
#include <sched.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pmp_error.h"

#define S_BUSY_NS 200000L           /* 200 us of MPI_Testall before sleeping */
#define S_SLEEP_MIN_NS 2000L        /* first sleep: 2 us */
#define S_SLEEP_MAX_NS 1000000L     /* longest sleep: 1 ms */
#define S_DEEP_AFTER_NS 1000000000L /* after 1 s of waiting ... */
#define S_DEEP_SLEEP_NS 4000000L    /* ... sleep 4 ms between tests */

/* One rank's doorbell, alone on its cache line. */
typedef struct {
    _Atomic uint32_t count;    /* rings so far (the futex word) */
    _Atomic uint32_t sleeping; /* 1 while its rank is in FUTEX_WAIT */
    char pad[56];
} s_bell_t;

static struct {
    s_bell_t *bells; /* NULL: no doorbells */
    size_t len;      /* bytes mapped */
    int n;           /* local ranks of the group */
    int me;          /* this rank's index among them */
} s_db;

static long s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

void pmp_mpi_ring(void)
{
    s_bell_t *bells = s_db.bells;
    if (bells == NULL)
        return;
    for (int i = 0; i < s_db.n; i++) {
        if (i == s_db.me)
            continue;
        atomic_fetch_add(&bells[i].count, 1);
        if (atomic_load(&bells[i].sleeping))
            syscall(SYS_futex, &bells[i].count, FUTEX_WAKE, 1, NULL, NULL, 0);
    }
}

void pmp_mpi_backoff_start(pmp_mpi_backoff_t *b)
{
    b->start_ns = s_now_ns();
    b->sleep_ns = 0;
    b->seen = s_db.bells ? atomic_load(&s_db.bells[s_db.me].count) : 0;
}

/* Sleeps up to ns, or until a local peer rings; 1 when it rang. */
static int s_sleep(pmp_mpi_backoff_t *b, long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    s_bell_t *bells = s_db.bells;
    if (bells == NULL) {
        nanosleep(&ts, NULL);
        return 0;
    }
    s_bell_t *mine = &bells[s_db.me];
    atomic_store(&mine->sleeping, 1);
    /* FUTEX_WAIT returns at once when the count moved since b->seen: a ring
     * between the caller's last test and this line is never lost. */
    syscall(SYS_futex, &mine->count, FUTEX_WAIT, b->seen, &ts, NULL, 0);
    atomic_store(&mine->sleeping, 0);
    unsigned now = atomic_load(&mine->count);
    if (now == b->seen)
        return 0;
    b->seen = now;
    return 1;
}

void pmp_mpi_backoff_nap(pmp_mpi_backoff_t *b)
{
    long now = s_now_ns();
    if (b->sleep_ns == 0) {
        if (now - b->start_ns < S_BUSY_NS) {
            sched_yield(); /* busy, but a thread waiting for this CPU goes first */
            return;
        }
        b->sleep_ns = S_SLEEP_MIN_NS;
    }
    long waited = now - b->start_ns;
    if (s_sleep(b, b->sleep_ns)) { /* rung: what we wait for is on its way */
        b->start_ns = s_now_ns();
        b->sleep_ns = 0;
        return;
    }
    if (b->sleep_ns < S_SLEEP_MAX_NS) {
        b->sleep_ns *= 2;
        if (b->sleep_ns > S_SLEEP_MAX_NS)
            b->sleep_ns = S_SLEEP_MAX_NS;
    } else if (b->sleep_ns < S_DEEP_SLEEP_NS && waited > S_DEEP_AFTER_NS) {
        b->sleep_ns = S_DEEP_SLEEP_NS;
    }
}

/* A real status array rather than MPI_STATUSES_IGNORE: MPICH declares
 * MPI_Testall with an access attribute that GCC 12 checks against the
 * ignore sentinel, and warnings are errors. */
#define S_STATUS_STACK 16

static void s_waitall(int n, MPI_Request *reqs, MPI_Status *st);

void pmp_mpi_waitall(int n, MPI_Request *reqs)
{
    if (n <= 0)
        return;
    if (n <= S_STATUS_STACK) {
        MPI_Status st[S_STATUS_STACK];
        s_waitall(n, reqs, st);
        return;
    }
    MPI_Status *st = malloc((size_t)n * sizeof *st);
    PMP_ASSERT(st != NULL);
    s_waitall(n, reqs, st);
    free(st);
}

static void s_waitall(int n, MPI_Request *reqs, MPI_Status *st)
{
    pmp_mpi_backoff_t b;
    pmp_mpi_backoff_start(&b); /* before the test: a ring after it counts */
    int done = 0;
    PMP_ASSERT(MPI_Testall(n, reqs, &done, st) == MPI_SUCCESS);
    pmp_mpi_ring();
    if (done)
        return;
    for (;;) {
        pmp_mpi_backoff_nap(&b);
        PMP_ASSERT(MPI_Testall(n, reqs, &done, st) == MPI_SUCCESS);
        if (done)
            break;
    }
    pmp_mpi_ring();
}

/* Makes, maps and unlinks the shared segment: node rank 0 creates it under
 * a fresh name, tells the others the name (or "" on failure), everybody maps
 * it, and once all did (a barrier) the name is removed. */
int pmp_mpi_doorbell_open(MPI_Comm group)
{
    MPI_Comm node;
    if (MPI_Comm_split_type(group, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return 0;
    int n = 0, me = 0;
    MPI_Comm_size(node, &n);
    MPI_Comm_rank(node, &me);
    if (n < 2) {
        MPI_Comm_free(&node);
        return 0;
    }
    size_t len = (size_t)n * sizeof(s_bell_t);
    char name[64] = "";
    if (me == 0) {
        snprintf(name, sizeof name, "/pympipool-bell-%ld-%ld", (long)getpid(), s_now_ns());
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)len) != 0) {
            if (fd >= 0) {
                close(fd);
                shm_unlink(name);
            }
            name[0] = '\0';
        } else {
            close(fd);
        }
    }
    MPI_Request req;
    PMP_ASSERT(MPI_Ibcast(name, (int)sizeof name, MPI_CHAR, 0, node, &req) == MPI_SUCCESS);
    pmp_mpi_waitall(1, &req);
    void *map = MAP_FAILED;
    if (name[0] != '\0') {
        int fd = shm_open(name, O_RDWR, 0600);
        if (fd >= 0) {
            map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
        }
    }
    int mapped = map != MAP_FAILED, all = 0;
    PMP_ASSERT(MPI_Iallreduce(&mapped, &all, 1, MPI_INT, MPI_MIN, node, &req) == MPI_SUCCESS);
    pmp_mpi_waitall(1, &req);
    if (me == 0 && name[0] != '\0')
        shm_unlink(name);
    MPI_Comm_free(&node);
    if (!all) {
        if (mapped)
            munmap(map, len);
        return 0;
    }
    s_db.bells = map;
    s_db.len = len;
    s_db.n = n;
    s_db.me = me;
    return 1;
}

void pmp_mpi_doorbell_close(void)
{
    if (s_db.bells == NULL)
        return;
    munmap(s_db.bells, s_db.len);
    s_db.bells = NULL;
}
