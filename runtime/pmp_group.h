/*
 * pmp_group.h - one group of ranks and the MPI traffic inside it.
 *
 * MPI_COMM_WORLD is split into groups of K consecutive ranks
 * (MPI_Comm_split with color rank / K); group rank 0 is the leader, the only
 * rank with a socket.  Inside a group the runtime moves two things:
 *
 *  - messages from the leader to everybody (pmp_group_bcast_send/recv): a
 *    control block (type, task id, flags, frame count, frame sizes as
 *    uint64) and then every frame, split into chunks of at most 1 GiB so
 *    that frames above INT_MAX bytes work;
 *  - results from the others to the leader: every rank's outcome through
 *    pmp_group_allgather_outcome (with the frames, when they are small),
 *    then the frames that did not fit, only from the ranks whose frames
 *    are needed (pmp_group_send_frames / pmp_group_recv_frames), received
 *    straight into zmq_msg_t buffers so the leader forwards them without
 *    a copy.
 *
 * Every wait is pmp_mpi_waitall (non-blocking MPI, polite backoff).  MPI
 * errors are fatal: they end in MPI_Abort through PMP_ASSERT.
 */
#ifndef PMP_GROUP_H
#define PMP_GROUP_H

#include <mpi.h>
#include <stdint.h>
#include <zmq.h>

#include "pmp_rtmsg.h"

typedef struct pmp_group pmp_group_t;

/* Splits world into groups of ranks_per_group ranks.  Collective over
 * world; the world size must be divisible by ranks_per_group (checked by
 * the caller).  Returns NULL with errno = ENOMEM. */
pmp_group_t *pmp_group_new(MPI_Comm world, int ranks_per_group);

/* Frees the group communicator.  NULL-safe; nulls the pointer. */
void pmp_group_destroy(pmp_group_t **self_p);

MPI_Comm pmp_group_comm(const pmp_group_t *self);
int pmp_group_rank(const pmp_group_t *self);  /* rank in the group (0 = leader) */
int pmp_group_size(const pmp_group_t *self);  /* ranks in the group */
int pmp_group_index(const pmp_group_t *self); /* which group, 0 .. count-1 */
int pmp_group_count(const pmp_group_t *self); /* number of groups */

/* Leader: sends msg (header fields and frames) to every other rank.
 * Returns when the buffers may be reused. */
void pmp_group_bcast_send(pmp_group_t *self, const pmp_rtmsg_t *msg);

/* Other ranks: waits (politely) for the next message from the leader and
 * returns it, frames in malloc'ed memory; caller owns it.  Allocation
 * failure is fatal. */
pmp_rtmsg_t *pmp_group_bcast_recv(pmp_group_t *self);

/* Every rank's outcome of one task, as pmp_group_allgather_outcome
 * gathered it: whether it succeeded, how many frames it has and, when
 * they were small, the frames themselves. */
typedef struct pmp_group_outcomes pmp_group_outcomes_t;

/* Every rank: shares this rank's outcome (ok, and its nframes frames) in
 * one MPI_Iallgather of a fixed block per rank; frames that fit in the
 * block (PMP_GROUP_OUTCOME_INLINE bytes in all, in at most 4 frames) go
 * with it, so that a small result needs no second step.  Returns every
 * rank's outcome (caller frees); allocation failure is fatal. */
#define PMP_GROUP_OUTCOME_INLINE 456
pmp_group_outcomes_t *pmp_group_allgather_outcome(pmp_group_t *self, int ok, uint32_t nframes,
                                                  void *const *data, const size_t *size);
int pmp_group_outcome_ok(const pmp_group_outcomes_t *o, int rank);
uint32_t pmp_group_outcome_nframes(const pmp_group_outcomes_t *o, int rank);
/* Whether rank's frames came with the outcome (then nobody sends them). */
int pmp_group_outcome_inline(const pmp_group_outcomes_t *o, int rank);
/* Copies rank's inline frames into out[0..nframes-1], which it
 * initialises with zmq_msg_init_size. */
void pmp_group_outcome_frames(const pmp_group_outcomes_t *o, int rank, zmq_msg_t *out);
void pmp_group_outcomes_free(pmp_group_outcomes_t **o_p);

/* A non-leader rank: sends nframes frames to rank dest (sizes first). */
void pmp_group_send_frames(pmp_group_t *self, int dest, uint32_t nframes, void *const *data,
                           const size_t *size);

/* The leader: receives the nframes frames that rank src sends with
 * pmp_group_send_frames into out[0..nframes-1], which this function
 * initialises with zmq_msg_init_size (caller closes or sends them).
 * Allocation failure is fatal. */
void pmp_group_recv_frames(pmp_group_t *self, int src, uint32_t nframes, zmq_msg_t *out);

#endif
