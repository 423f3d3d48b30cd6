/*
 * pmp_protocol.h - the wire format shared by the frontend and the runtime.
 *
 * Every message between the frontend (ROUTER) and a group leader (DEALER)
 * is one ZeroMQ multipart message:
 *
 *   frame 0   header, PMP_HEADER_SIZE bytes, encoded field by field in
 *             little-endian order (never by copying a struct):
 *               offset  size  field
 *                    0     4  magic "PMPX"
 *                    4     2  protocol version (PMP_PROTOCOL_VERSION)
 *                    6     2  message type (pmp_msg_type_t)
 *                    8     8  task id
 *                   16     4  flags (PMP_FLAG_*)
 *                   20     4  number of frames that follow the header
 *   frame 1   payload: a pickle (task, init, result, error), a hello text,
 *             a rank table (per-rank results) or nothing (shutdown, goodbye)
 *   frame 2.. pickle-protocol-5 out-of-band buffers, one frame each
 *
 * The ROUTER side additionally sees the peer identity frame in front of
 * frame 0; that frame belongs to ZeroMQ routing and is not part of this
 * format.
 *
 * A batch: over ZeroMQ, several protocol messages may follow each other in
 * one multipart message, each a header and the frames it announces, so
 * that a group with room for several tasks gets them with one message's
 * cost (routing, wake-ups, system calls).  A receiver splits it with
 * pmp_header_next.  The frontend accepts batches from any leader; it sends
 * them only to a leader whose HELLO says "batch=N" (N > 1, at most
 * PMP_BATCH_MAX messages in one), so a leader that does not say so gets
 * one message at a time.  Local links (pmp_link.h) carry one protocol
 * message per link message and batch by writing several at once instead.  The decoder never trusts
 * a length it has not checked: a header that is short, long, foreign, of another version, of an
 * unknown type or announcing a frame count that does not match what arrived is rejected with a
 * reason in a pmp_error_t, and neither side crashes on it.
 *
 * docs/protocol.md describes every message and its payload.
 */
#ifndef PMP_PROTOCOL_H
#define PMP_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "pmp_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PMP_PROTOCOL_VERSION 1
#define PMP_HEADER_SIZE 24
/* A contiguous buffer of at least this many bytes in a pickle travels as a
 * frame of its own (pickle protocol 5, out of band) and is sent without a
 * copy; smaller ones stay inside the pickle. */
#define PMP_OOB_THRESHOLD (64 * 1024)
/* Upper bound on frames after the header (payload + out-of-band buffers). */
#define PMP_MAX_FRAMES 65536
/* Most protocol messages a sender puts into one ZeroMQ message (a batch),
 * and the most a HELLO may announce. */
#define PMP_BATCH_MAX 64
#define PMP_MAGIC_0 'P'
#define PMP_MAGIC_1 'M'
#define PMP_MAGIC_2 'P'
#define PMP_MAGIC_3 'X'

typedef enum {
    PMP_MSG_HELLO = 1,    /* leader -> frontend: who this group is (hello text) */
    PMP_MSG_TASK = 2,     /* frontend -> leader: call a function (pickle + buffers) */
    PMP_MSG_INIT = 3,     /* frontend -> leader: run init_function on every rank */
    PMP_MSG_RESULT = 4,   /* leader -> frontend: a task's return value */
    PMP_MSG_ERROR = 5,    /* leader -> frontend: a task's exception */
    PMP_MSG_SHUTDOWN = 6, /* frontend -> leader: finish and exit */
    PMP_MSG_GOODBYE = 7,  /* leader -> frontend: the group is leaving */
    PMP_MSG_DEFINE = 8,   /* frontend -> leader: keep a function under key task_id
                             (payload: pickled callable) for tasks with PMP_FLAG_FN_KEY */
    PMP_MSG_FORGET = 9    /* frontend -> leader: drop the function kept under task_id */
} pmp_msg_type_t;

/* Task flags (TASK, INIT). */
/* Return every rank's result (a rank table), not only the leader's. */
#define PMP_FLAG_ALL_RANKS 0x1u
/* The payload names its function by the key of an earlier DEFINE instead of
 * carrying it: (key, args, kwargs) or, with PMP_FLAG_CHUNK, (key, calls). */
#define PMP_FLAG_FN_KEY 0x2u
/* The payload is (fn_or_key, calls), calls a list of (args, kwargs); the
 * result is the list of their return values in order, or the first error. */
#define PMP_FLAG_CHUNK 0x4u
/* With PMP_FLAG_CHUNK: calls is a plain list of items, one call fn(item)
 * each (a map), instead of (args, kwargs) pairs. */
#define PMP_FLAG_MAP 0x8u
/* With PMP_FLAG_CHUNK: calls is a plain list of argument tuples, one call
 * fn(*args) each (a starmap).  Not together with PMP_FLAG_MAP. */
#define PMP_FLAG_STARMAP 0x10u
/* TASK and RESULT: the last frame is a segment table (pmp_shmref.h): some
 * out-of-band buffers travel in shared memory on this host and their own
 * frames are empty.  Not together with PMP_FLAG_PER_RANK. */
#define PMP_FLAG_SHM 0x20u
/* TASK: a call of several groups' ranks together (FlexExecutor).  The
 * payload is a small pickle (members, tag, cwd, threads_per_core); the
 * first buffer is the call's own payload, (fn, args, kwargs) as for a
 * plain TASK, and its out-of-band buffers follow.  members lists the world
 * ranks of the call, this rank among them, in the order of their ranks in
 * the call's communicator, which they build with MPI_Comm_create_group
 * under tag; cwd (or None) and threads_per_core (or None: OMP_NUM_THREADS)
 * hold for the call only.  Not with CHUNK, FN_KEY, ALL_RANKS or SHM. */
#define PMP_FLAG_CALL_COMM 0x40u
/* Result flags (RESULT). */
/* The payload is a rank table, followed by each rank's pickle and buffers. */
#define PMP_FLAG_PER_RANK 0x1u
/* Flags a receiver does not know are rejected. */
#define PMP_FLAG_KNOWN_MASK 0x7fu

typedef struct {
    uint16_t version;
    uint16_t type;    /* pmp_msg_type_t */
    uint64_t task_id; /* 0 for HELLO, SHUTDOWN, GOODBYE; the key for DEFINE, FORGET */
    uint32_t flags;
    uint32_t nframes; /* frames after the header: payload + buffers */
} pmp_header_t;

/* Writes the header into buf, which must hold PMP_HEADER_SIZE bytes;
 * hdr->version is ignored and PMP_PROTOCOL_VERSION is written.
 * Cannot fail. */
void pmp_header_encode(const pmp_header_t *hdr, unsigned char buf[PMP_HEADER_SIZE]);

/* Decodes a header frame of len bytes into *hdr.  Returns 0 on success,
 * -1 with errno = EPROTO and a reason in err (if err is not NULL) when the
 * frame is truncated, oversized, has a foreign magic, another protocol
 * version, an unknown message type, unknown flags or a frame count above
 * PMP_MAX_FRAMES.  *hdr is unspecified on failure. */
int pmp_header_decode(const void *buf, size_t len, pmp_header_t *hdr, pmp_error_t *err);

/* Checks that a decoded header fits the number of frames that actually
 * arrived after it (nreceived) and that its type is one this side accepts:
 * from_worker != 0 accepts HELLO, RESULT, ERROR, GOODBYE; from_worker == 0
 * accepts TASK, INIT, SHUTDOWN, DEFINE, FORGET.  HELLO, TASK, INIT, RESULT,
 * ERROR and DEFINE must carry at least a payload frame (HELLO and ERROR
 * exactly one); SHUTDOWN, GOODBYE and FORGET at most one.  TASK, INIT,
 * RESULT and ERROR need a non-zero task id, DEFINE and FORGET a non-zero
 * key (in the task id field).  Returns 0 or -1 with errno = EPROTO and a
 * reason in err. */
int pmp_header_check(const pmp_header_t *hdr, size_t nreceived, int from_worker, pmp_error_t *err);

/* The protocol message that starts at a frame of a received ZeroMQ
 * message: buf/len is that frame (its header), nleft the frames of the
 * ZeroMQ message from it on, itself included.  Decodes the header
 * (pmp_header_decode) and checks it (pmp_header_check, from_worker as
 * there) against the frames it announces, which must all be among nleft.
 * On success the message takes 1 + hdr->nframes frames and the next one of
 * a batch, if any, starts after them.  Returns 0, or -1 with errno = EPROTO
 * and a reason in err: a receiver then drops the rest of the ZeroMQ
 * message, since no later frame can be trusted to start a header. */
int pmp_header_next(const void *buf, size_t len, size_t nleft, int from_worker, pmp_header_t *hdr,
                    pmp_error_t *err);

/* Name of a message type for logs ("task", "result", ...), "unknown" for
 * anything else.  Returns a static string. */
const char *pmp_msg_type_name(int type);

/* ---- hello ---------------------------------------------------------------
 * The HELLO payload is UTF-8 text, one "key=value" per line, so that the
 * frontend can read it without Python and a human can read it in a log.
 * Unknown keys are ignored (forward compatibility); the keys below are
 * required, except "batch" and "pack". */
#define PMP_HELLO_TEXT_MAX 256

typedef struct {
    int32_t group;      /* index of this group, 0 .. ngroups-1 */
    int32_t ngroups;    /* number of groups in the job */
    int32_t group_size; /* ranks in this group */
    int32_t world_size; /* ranks in the job */
    int32_t world_rank; /* MPI_COMM_WORLD rank of the leader */
    int64_t pid;        /* leader's process id */
    char host[PMP_HELLO_TEXT_MAX];
    char python_version[PMP_HELLO_TEXT_MAX];  /* e.g. "3.11.2" */
    char mpi_version[PMP_HELLO_TEXT_MAX];     /* first line of MPI_Get_library_version */
    char runtime_version[PMP_HELLO_TEXT_MAX]; /* pympipool version of the runtime */
    /* Protocol messages the leader accepts in one ZeroMQ message (a batch,
     * above), 1..PMP_BATCH_MAX: the optional key "batch", 1 when absent
     * and then not written by pmp_hello_encode (0 is encoded as 1). */
    int32_t batch;
    /* Protocol messages the leader accepts in one pack (pmp_pack.h: their
     * frames in one ZeroMQ frame), 1..PMP_BATCH_MAX: the optional key
     * "pack", 1 (no packs) when absent and then not written. */
    int32_t pack;
} pmp_hello_t;

/* Formats *hello into buf (size bytes).  Returns the number of bytes written
 * (no terminating NUL is part of the payload), or -1 with errno = ENOSPC if
 * buf is too small.  Newlines in text fields are replaced by spaces. */
int pmp_hello_encode(const pmp_hello_t *hello, char *buf, size_t size);

/* Parses a hello payload of len bytes.  Returns 0, or -1 with errno = EPROTO
 * and a reason in err when a required key is missing, a number is malformed
 * or out of range, or the text contains a NUL byte.  Text values longer than
 * PMP_HELLO_TEXT_MAX - 1 are truncated. */
int pmp_hello_decode(const void *buf, size_t len, pmp_hello_t *hello, pmp_error_t *err);

/* ---- the group's ranks in a hello ----------------------------------------
 * A HELLO may carry the optional line "ranks=R:PID:HOST,R:PID:HOST,..."
 * naming every rank of the group in group-rank order: its MPI_COMM_WORLD
 * rank, process id and host name.  The frontend uses it to say which
 * process of the job died and to watch the ranks that run on its own host.
 * A runtime that does not send the line is still understood (n = 0). */
#define PMP_HELLO_RANKS_KEY "ranks"

typedef struct {
    int32_t world_rank;
    int64_t pid;
    char host[PMP_HELLO_TEXT_MAX];
} pmp_hello_rank_t;

/* Formats the line "ranks=...\n" for n >= 1 ranks into buf (size bytes,
 * NUL-terminated).  ':', ',' and line breaks in a host name become '_'.
 * Returns the number of bytes written (without the NUL), or -1 with errno =
 * ENOSPC (buf too small) or EINVAL (n == 0); buf is then "". */
int pmp_hello_ranks_encode(const pmp_hello_rank_t *ranks, size_t n, char *buf, size_t size);

/* Finds the "ranks" line in a hello payload of len bytes and decodes it into
 * a malloc'ed array (*ranks, caller frees) of *n entries.  Returns 0, with
 * *ranks = NULL and *n = 0 when there is no such line; -1 with errno =
 * EPROTO and a reason in err when the line is repeated or empty, an entry is
 * not R:PID:HOST (R >= 0 a 32-bit and PID >= 1 a 64-bit decimal, HOST
 * non-empty), or there are more than max_ranks entries; -1 with errno =
 * ENOMEM.  Nothing is allocated on failure. */
int pmp_hello_ranks_decode(const void *buf, size_t len, size_t max_ranks, pmp_hello_rank_t **ranks,
                           size_t *n, pmp_error_t *err);

/* ---- rank table ----------------------------------------------------------
 * The payload of a RESULT with PMP_FLAG_PER_RANK: little-endian u32 nranks,
 * then nranks u32 values, the number of out-of-band buffers of each rank.
 * The frames after it are rank 0's pickle, rank 0's buffers, rank 1's
 * pickle, ... so the message has 1 + nranks + sum(nbuffers) frames after the
 * header. */

/* Bytes needed for a table of nranks entries. */
size_t pmp_rank_table_size(uint32_t nranks);

/* Writes the table into buf (pmp_rank_table_size(nranks) bytes).  Cannot
 * fail. */
void pmp_rank_table_encode(uint32_t nranks, const uint32_t *nbuffers, unsigned char *buf);

/* Decodes a table of len bytes.  On success returns 0, sets *nranks and
 * *nbuffers to a malloc'ed array the caller frees.  Returns -1 with
 * errno = EPROTO and a reason in err when the table is truncated, has
 * trailing bytes, zero ranks, or its frame count (1 + nranks + sum of
 * buffers) is not nframes (the header's count); -1 with errno = ENOMEM when
 * allocation fails. */
int pmp_rank_table_decode(const void *buf, size_t len, uint32_t nframes, uint32_t *nranks,
                          uint32_t **nbuffers, pmp_error_t *err);

/* ---- the crash line ------------------------------------------------------
 * Not a message: what a rank that a fatal signal kills writes to stderr,
 * from its signal handler, before it dies, and what the frontend looks for
 * in the job's stderr to say how a rank died.  One line:
 *   "<program>: rank R of N on host H (pid P) was killed by signal S (NAME)"
 * The runtime formats everything up to "signal " with
 * PMP_CRASH_LINE_FORMAT (program, rank, size, host, pid as long) ahead of
 * time and appends the number and name in the handler. */
#define PMP_CRASH_LINE_FORMAT "%s: rank %d of %d on host %s (pid %ld) " PMP_CRASH_HOW
#define PMP_CRASH_HOW "was killed by signal "

/* Finds the crash line of process pid in text (NUL-terminated) and copies
 * its part from PMP_CRASH_HOW to the end of the line ("was killed by signal
 * 11 (Segmentation fault)") into how, at most size - 1 bytes, NUL-terminated.
 * Returns 1, or 0 when text has no crash line of that pid. */
int pmp_crash_line_find(const char *text, long pid, char *how, size_t size);

#ifdef __cplusplus
}
#endif

#endif
