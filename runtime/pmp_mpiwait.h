/*
 * pmp_mpiwait.h - the one way the runtime waits for MPI.
 *
 * Ranks of a group spend most of their life waiting: non-leaders for the
 * next broadcast, the leader for the results of the others.  MPI's blocking
 * calls (and MPI_Wait) spin at 100% of a core in both MPICH and Open MPI,
 * which would make an idle runtime burn one core per rank.  Every internal
 * wait therefore goes through pmp_mpi_waitall(): non-blocking requests
 * completed by MPI_Testall with a backoff - a short busy phase so that
 * back-to-back messages keep their latency, then nanosleep() growing to
 * about 1 ms (4 ms once a wait has lasted a second), so an idle rank costs
 * well under 1% of a core.
 */
#ifndef PMP_MPIWAIT_H
#define PMP_MPIWAIT_H

#include <mpi.h>

/* Waits until all n requests are complete (MPI_Testall with backoff).
 * Completed requests become MPI_REQUEST_NULL.  MPI errors are fatal
 * (PMP_ASSERT, which ends in MPI_Abort). */
void pmp_mpi_waitall(int n, MPI_Request *reqs);

#endif
