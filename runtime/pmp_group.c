/*
 * pmp_group.c - the group communicator and its traffic (see pmp_group.h).
 *
 * The control block of a broadcast has a fixed size (S_CTRL_WORDS uint64:
 * type, task id, flags, frame count, up to S_INLINE_SIZES frame sizes and
 * whether the frames are inline, then S_INLINE_BYTES of room) so that an
 * idle rank can post one MPI_Ibcast for "the next message" and wait on it
 * with backoff.  A small message (a trivial call's pickle) travels whole
 * in the control block: one broadcast per message instead of two, which
 * is most of a small call's traffic inside the group.  Otherwise frame
 * sizes that do not fit inline follow in a second broadcast, and the
 * frames are broadcast in chunks of S_CHUNK bytes, all posted at once and
 * completed together.  Results take the same shortcut: every rank's
 * outcome travels in a fixed block of one allgather (S_OUT_WORDS), with
 * its frames when they fit, so a small call's results need one step
 * inside the group instead of three (status, sizes, frames).  Results
 * that do not fit go point to point with two tags: S_TAG_SIZES for the
 * frame sizes and S_TAG_DATA for the chunks; MPI's non-overtaking rule
 * keeps the chunks of one sender in order.
 */
#include "pmp_group.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_error.h"
#include "pmp_mpiwait.h"
#include "pmp_protocol.h"

#define S_INLINE_SIZES 12
#define S_INLINE_FLAG (4 + S_INLINE_SIZES) /* word: the frames follow inline */
#define S_INLINE_BYTES 1024
#define S_CTRL_WORDS (5 + S_INLINE_SIZES + S_INLINE_BYTES / 8)
/* Chunk size; a build may lower it (-DPMP_GROUP_CHUNK=n) to exercise the
 * chunking with small frames. */
#ifdef PMP_GROUP_CHUNK
#define S_CHUNK ((size_t)(PMP_GROUP_CHUNK))
#else
#define S_CHUNK ((size_t)1 << 30)
#endif
#define S_TAG_SIZES 101
#define S_TAG_DATA 102

struct pmp_group {
    MPI_Comm comm;
    int rank;
    int size;
    int index;
    int count;
};

#define S_MPI(call) PMP_ASSERT((call) == MPI_SUCCESS)

pmp_group_t *pmp_group_new(MPI_Comm world, int ranks_per_group)
{
    pmp_group_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    int wrank = 0, wsize = 0;
    S_MPI(MPI_Comm_rank(world, &wrank));
    S_MPI(MPI_Comm_size(world, &wsize));
    self->index = wrank / ranks_per_group;
    self->count = wsize / ranks_per_group;
    S_MPI(MPI_Comm_split(world, self->index, wrank, &self->comm));
    S_MPI(MPI_Comm_rank(self->comm, &self->rank));
    S_MPI(MPI_Comm_size(self->comm, &self->size));
    return self;
}

void pmp_group_destroy(pmp_group_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_group_t *self = *self_p;
    if (self->comm != MPI_COMM_NULL)
        MPI_Comm_free(&self->comm);
    free(self);
    *self_p = NULL;
}

MPI_Comm pmp_group_comm(const pmp_group_t *self)
{
    return self->comm;
}
int pmp_group_rank(const pmp_group_t *self)
{
    return self->rank;
}
int pmp_group_size(const pmp_group_t *self)
{
    return self->size;
}
int pmp_group_index(const pmp_group_t *self)
{
    return self->index;
}
int pmp_group_count(const pmp_group_t *self)
{
    return self->count;
}

/* Number of chunk requests needed for n frames of the given sizes. */
static size_t s_nchunks(uint32_t n, const size_t *size)
{
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += (size[i] + S_CHUNK - 1) / S_CHUNK;
    return total;
}

typedef enum { S_BCAST, S_SEND, S_RECV } s_op_t;

/* Posts the chunked transfer of n frames and waits for all of it. */
static void s_transfer(pmp_group_t *self, s_op_t op, int peer, uint32_t n, void *const *data,
                       const size_t *size)
{
    size_t nreq = s_nchunks(n, size);
    if (nreq == 0)
        return;
    PMP_ASSERT(nreq <= (size_t)INT32_MAX);
    MPI_Request *reqs = malloc(nreq * sizeof *reqs);
    PMP_ASSERT(reqs != NULL);
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        char *p = data[i];
        for (size_t off = 0; off < size[i]; off += S_CHUNK) {
            size_t len = size[i] - off < S_CHUNK ? size[i] - off : S_CHUNK;
            if (op == S_BCAST)
                S_MPI(MPI_Ibcast(p + off, (int)len, MPI_BYTE, 0, self->comm, &reqs[k]));
            else if (op == S_SEND)
                S_MPI(
                    MPI_Isend(p + off, (int)len, MPI_BYTE, peer, S_TAG_DATA, self->comm, &reqs[k]));
            else
                S_MPI(
                    MPI_Irecv(p + off, (int)len, MPI_BYTE, peer, S_TAG_DATA, self->comm, &reqs[k]));
            k++;
        }
    }
    pmp_mpi_waitall((int)nreq, reqs);
    free(reqs);
}

/* Where the inline frames start in a control block. */
static unsigned char *s_inline(uint64_t *ctrl)
{
    return (unsigned char *)&ctrl[S_INLINE_FLAG + 1];
}

void pmp_group_bcast_send(pmp_group_t *self, const pmp_rtmsg_t *msg)
{
    uint64_t ctrl[S_CTRL_WORDS] = {msg->type, msg->task_id, msg->flags, msg->nframes};
    size_t total = 0;
    for (uint32_t i = 0; i < msg->nframes && i < S_INLINE_SIZES; i++) {
        ctrl[4 + i] = msg->size[i];
        total += msg->size[i];
    }
    int inline_frames = msg->nframes <= S_INLINE_SIZES && total <= S_INLINE_BYTES;
    if (inline_frames) {
        ctrl[S_INLINE_FLAG] = 1;
        unsigned char *p = s_inline(ctrl);
        for (uint32_t i = 0; i < msg->nframes; i++) {
            if (msg->size[i] > 0)
                memcpy(p, msg->data[i], msg->size[i]);
            p += msg->size[i];
        }
    }
    MPI_Request req;
    S_MPI(MPI_Ibcast(ctrl, S_CTRL_WORDS, MPI_UINT64_T, 0, self->comm, &req));
    pmp_mpi_waitall(1, &req);
    if (inline_frames)
        return;
    if (msg->nframes > S_INLINE_SIZES) {
        uint32_t extra = msg->nframes - S_INLINE_SIZES;
        uint64_t *sizes = malloc(extra * sizeof *sizes);
        PMP_ASSERT(sizes != NULL);
        for (uint32_t i = 0; i < extra; i++)
            sizes[i] = msg->size[S_INLINE_SIZES + i];
        S_MPI(MPI_Ibcast(sizes, (int)extra, MPI_UINT64_T, 0, self->comm, &req));
        pmp_mpi_waitall(1, &req);
        free(sizes);
    }
    s_transfer(self, S_BCAST, 0, msg->nframes, msg->data, msg->size);
}

pmp_rtmsg_t *pmp_group_bcast_recv(pmp_group_t *self)
{
    uint64_t ctrl[S_CTRL_WORDS] = {0};
    MPI_Request req;
    S_MPI(MPI_Ibcast(ctrl, S_CTRL_WORDS, MPI_UINT64_T, 0, self->comm, &req));
    pmp_mpi_waitall(1, &req);
    PMP_ASSERT(ctrl[3] <= PMP_MAX_FRAMES);
    pmp_rtmsg_t *msg = pmp_rtmsg_new((uint32_t)ctrl[3], 0);
    PMP_ASSERT(msg != NULL);
    msg->type = (uint32_t)ctrl[0];
    msg->task_id = ctrl[1];
    msg->flags = (uint32_t)ctrl[2];
    for (uint32_t i = 0; i < msg->nframes && i < S_INLINE_SIZES; i++)
        msg->size[i] = (size_t)ctrl[4 + i];
    if (ctrl[S_INLINE_FLAG]) {
        PMP_ASSERT(msg->nframes <= S_INLINE_SIZES);
        PMP_ASSERT(pmp_rtmsg_alloc_heap(msg) == 0);
        const unsigned char *p = s_inline(ctrl);
        for (uint32_t i = 0; i < msg->nframes; i++) {
            PMP_ASSERT(p + msg->size[i] <= s_inline(ctrl) + S_INLINE_BYTES);
            if (msg->size[i] > 0)
                memcpy(msg->data[i], p, msg->size[i]);
            p += msg->size[i];
        }
        return msg;
    }
    if (msg->nframes > S_INLINE_SIZES) {
        uint32_t extra = msg->nframes - S_INLINE_SIZES;
        uint64_t *sizes = malloc(extra * sizeof *sizes);
        PMP_ASSERT(sizes != NULL);
        S_MPI(MPI_Ibcast(sizes, (int)extra, MPI_UINT64_T, 0, self->comm, &req));
        pmp_mpi_waitall(1, &req);
        for (uint32_t i = 0; i < extra; i++)
            msg->size[S_INLINE_SIZES + i] = (size_t)sizes[i];
        free(sizes);
    }
    PMP_ASSERT(pmp_rtmsg_alloc_heap(msg) == 0);
    s_transfer(self, S_BCAST, 0, msg->nframes, msg->data, msg->size);
    return msg;
}

/* An outcome block: ok, nframes, inline, S_OUT_SIZES frame sizes, then
 * PMP_GROUP_OUTCOME_INLINE bytes of room. */
#define S_OUT_SIZES 4
#define S_OUT_HEAD (3 + S_OUT_SIZES)
#define S_OUT_WORDS (S_OUT_HEAD + PMP_GROUP_OUTCOME_INLINE / 8)

struct pmp_group_outcomes {
    uint64_t *blocks; /* size * S_OUT_WORDS */
};

pmp_group_outcomes_t *pmp_group_allgather_outcome(pmp_group_t *self, int ok, uint32_t nframes,
                                                  void *const *data, const size_t *size)
{
    uint64_t mine[S_OUT_WORDS] = {(uint64_t)(ok != 0), nframes, 0};
    size_t total = 0;
    for (uint32_t i = 0; i < nframes && i < S_OUT_SIZES; i++)
        total += size[i];
    if (nframes <= S_OUT_SIZES && total <= PMP_GROUP_OUTCOME_INLINE) {
        mine[2] = 1;
        unsigned char *p = (unsigned char *)&mine[S_OUT_HEAD];
        for (uint32_t i = 0; i < nframes; i++) {
            mine[3 + i] = size[i];
            if (size[i] > 0)
                memcpy(p, data[i], size[i]);
            p += size[i];
        }
    }
    pmp_group_outcomes_t *o = malloc(sizeof *o);
    PMP_ASSERT(o != NULL);
    o->blocks = malloc((size_t)self->size * S_OUT_WORDS * sizeof *o->blocks);
    PMP_ASSERT(o->blocks != NULL);
    MPI_Request req;
    S_MPI(MPI_Iallgather(mine, S_OUT_WORDS, MPI_UINT64_T, o->blocks, S_OUT_WORDS, MPI_UINT64_T,
                         self->comm, &req));
    pmp_mpi_waitall(1, &req);
    return o;
}

int pmp_group_outcome_ok(const pmp_group_outcomes_t *o, int rank)
{
    return o->blocks[(size_t)rank * S_OUT_WORDS] != 0;
}

uint32_t pmp_group_outcome_nframes(const pmp_group_outcomes_t *o, int rank)
{
    return (uint32_t)o->blocks[(size_t)rank * S_OUT_WORDS + 1];
}

int pmp_group_outcome_inline(const pmp_group_outcomes_t *o, int rank)
{
    return o->blocks[(size_t)rank * S_OUT_WORDS + 2] != 0;
}

void pmp_group_outcome_frames(const pmp_group_outcomes_t *o, int rank, zmq_msg_t *out)
{
    const uint64_t *b = &o->blocks[(size_t)rank * S_OUT_WORDS];
    PMP_ASSERT(b[2] && b[1] <= S_OUT_SIZES);
    const unsigned char *p = (const unsigned char *)&b[S_OUT_HEAD];
    const unsigned char *end = p + PMP_GROUP_OUTCOME_INLINE;
    for (uint32_t i = 0; i < (uint32_t)b[1]; i++) {
        size_t len = (size_t)b[3 + i];
        PMP_ASSERT(len <= (size_t)(end - p));
        PMP_ASSERT(zmq_msg_init_size(&out[i], len) == 0);
        if (len > 0)
            memcpy(zmq_msg_data(&out[i]), p, len);
        p += len;
    }
}

void pmp_group_outcomes_free(pmp_group_outcomes_t **o_p)
{
    if (!o_p || !*o_p)
        return;
    free((*o_p)->blocks);
    free(*o_p);
    *o_p = NULL;
}

void pmp_group_send_frames(pmp_group_t *self, int dest, uint32_t nframes, void *const *data,
                           const size_t *size)
{
    uint64_t *sizes = malloc((nframes ? nframes : 1) * sizeof *sizes);
    PMP_ASSERT(sizes != NULL);
    for (uint32_t i = 0; i < nframes; i++)
        sizes[i] = size[i];
    MPI_Request req;
    S_MPI(MPI_Isend(sizes, (int)nframes, MPI_UINT64_T, dest, S_TAG_SIZES, self->comm, &req));
    pmp_mpi_waitall(1, &req);
    free(sizes);
    s_transfer(self, S_SEND, dest, nframes, data, size);
}

void pmp_group_recv_frames(pmp_group_t *self, int src, uint32_t nframes, zmq_msg_t *out)
{
    size_t n = nframes ? nframes : 1;
    uint64_t *sizes = malloc(n * sizeof *sizes);
    size_t *size = malloc(n * sizeof *size);
    void **data = malloc(n * sizeof *data);
    PMP_ASSERT(sizes && size && data);
    MPI_Request req;
    S_MPI(MPI_Irecv(sizes, (int)nframes, MPI_UINT64_T, src, S_TAG_SIZES, self->comm, &req));
    pmp_mpi_waitall(1, &req);
    for (uint32_t i = 0; i < nframes; i++) {
        size[i] = (size_t)sizes[i];
        PMP_ASSERT(zmq_msg_init_size(&out[i], size[i]) == 0);
        data[i] = zmq_msg_data(&out[i]);
    }
    s_transfer(self, S_RECV, src, nframes, data, size);
    free(sizes);
    free(size);
    free(data);
}
