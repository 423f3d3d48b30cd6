/*
 * pmp_mpiwait.c - MPI_Testall with backoff (see pmp_mpiwait.h).
 *
 * The busy phase lasts S_BUSY_NS of wall time (not a count of calls, whose
 * cost differs by MPI library); after it the sleep starts at S_SLEEP_MIN_NS
 * and doubles up to S_SLEEP_MAX_NS, so a message that arrives while a rank
 * sleeps waits at most about 1 ms more.  A wait that has lasted longer than
 * S_DEEP_AFTER_NS (a rank with nothing to do) sleeps up to S_DEEP_SLEEP_NS:
 * one wake-up (an MPI_Testall that drives the MPI progress engine, about
 * 15 us with MPICH/UCX here) per millisecond costs 1.5% of a core, which is
 * too much for ranks that may sit idle for hours; at 4 ms it is under 0.5%,
 * and only the first message after a second of silence pays up to 4 ms.
 */
#include "pmp_mpiwait.h"

#include <stdlib.h>
#include <time.h>

#include "pmp_error.h"

#define S_BUSY_NS 200000L           /* 200 us of MPI_Testall before sleeping */
#define S_SLEEP_MIN_NS 2000L        /* first sleep: 2 us */
#define S_SLEEP_MAX_NS 1000000L     /* longest sleep: 1 ms */
#define S_DEEP_AFTER_NS 1000000000L /* after 1 s of waiting ... */
#define S_DEEP_SLEEP_NS 4000000L    /* ... sleep 4 ms between tests */

static long s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
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
    int done = 0;
    PMP_ASSERT(MPI_Testall(n, reqs, &done, st) == MPI_SUCCESS);
    if (done)
        return;
    long start = s_now_ns();
    while (s_now_ns() - start < S_BUSY_NS) {
        PMP_ASSERT(MPI_Testall(n, reqs, &done, st) == MPI_SUCCESS);
        if (done)
            return;
    }
    long sleep_ns = S_SLEEP_MIN_NS;
    for (;;) {
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        PMP_ASSERT(MPI_Testall(n, reqs, &done, st) == MPI_SUCCESS);
        if (done)
            return;
        if (sleep_ns < S_SLEEP_MAX_NS) {
            sleep_ns *= 2;
            if (sleep_ns > S_SLEEP_MAX_NS)
                sleep_ns = S_SLEEP_MAX_NS;
        } else if (sleep_ns < S_DEEP_SLEEP_NS && s_now_ns() - start > S_DEEP_AFTER_NS) {
            sleep_ns = S_DEEP_SLEEP_NS;
        }
    }
}
