/*
 * pmp_mpiwait.h - the one way the runtime waits for MPI.
 *
 * Ranks of a group spend most of their life waiting: non-leaders for the
 * next broadcast, the leader for the results of the others.  MPI's blocking
 * calls (and MPI_Wait) spin at 100% of a core in both MPICH and Open MPI,
 * which would make an idle runtime burn one core per rank.  Every internal
 * wait therefore goes through pmp_mpi_waitall(): non-blocking requests
 * completed by MPI_Testall with a backoff - a short busy phase so that
 * back-to-back messages keep their latency, then sleeps growing to about
 * 1 ms (4 ms once a wait has lasted a second), so an idle rank costs well
 * under 1% of a core.
 *
 * The ranks of a group that share a host also share a doorbell (one futex
 * word per rank in a shared memory segment): every wait first rings the
 * doorbells of the sleeping local peers, since the requests it waits for
 * were just posted and may carry what a peer waits for, and a sleeping rank
 * sleeps on its own doorbell, so a message from a local peer ends its sleep
 * at once instead of at the end of the current backoff step.  Ranks on
 * other hosts, and traffic inside MPI that no rank posts, are still caught
 * by the backoff.
 *
 * All of it is for the runtime's one thread that talks to MPI at a time
 * (the main thread, or a user task's thread holding the group through
 * pmp_comm.c); the doorbell is process-wide state.
 */
#ifndef PMP_MPIWAIT_H
#define PMP_MPIWAIT_H

#include <mpi.h>

/* Waits until all n requests are complete (MPI_Testall with backoff).
 * Completed requests become MPI_REQUEST_NULL.  MPI errors are fatal
 * (PMP_ASSERT, which ends in MPI_Abort). */
void pmp_mpi_waitall(int n, MPI_Request *reqs);

/* A wait that pmp_mpi_waitall() cannot do itself (a probe, which has no
 * request): call pmp_mpi_backoff_start() once, then pmp_mpi_backoff_nap()
 * after every unsuccessful test.  A nap returns at once during the busy
 * phase, otherwise after the current backoff step or when a local peer
 * rings, whichever comes first. */
typedef struct {
    long start_ns; /* when the wait (or its busy phase) began */
    long sleep_ns; /* the next sleep; 0 while busy */
    unsigned seen; /* this rank's doorbell count when the wait began */
} pmp_mpi_backoff_t;

void pmp_mpi_backoff_start(pmp_mpi_backoff_t *b);
void pmp_mpi_backoff_nap(pmp_mpi_backoff_t *b);

/* Wakes every local peer of the group that sleeps in a wait.  Cheap when
 * nobody sleeps (one atomic add per peer, no system call). */
void pmp_mpi_ring(void);

/* Sets up the doorbells of the group's ranks on this host.  Collective over
 * group (every rank of it calls it once, after start-up succeeded).  On any
 * failure (no shared memory) the doorbell is simply absent and waits use the
 * backoff alone; returns 1 with doorbells, 0 without. */
int pmp_mpi_doorbell_open(MPI_Comm group);

/* Unmaps the segment (not collective); waits go on without doorbells. */
void pmp_mpi_doorbell_close(void);

#endif
