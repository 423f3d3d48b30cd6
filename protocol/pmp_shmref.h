/*
 * pmp_shmref.h - segment references: large buffers that travel in shared
 * memory between the caller and the ranks on its host.
 *
 * A TASK or RESULT with PMP_FLAG_SHM carries, as its last frame, a segment
 * table: little-endian u32 count (>= 1), then count entries of
 * PMP_SHM_ENTRY_SIZE bytes:
 *
 *   offset  size  field
 *        0     4  frame   the out-of-band buffer this entry stands for: its
 *                         index among the frames after the header (the
 *                         payload is 0); that frame is sent empty
 *        4     4  fd      the segment's file descriptor in its owner
 *        8     8  pid     the owner's process id (the segment is opened as
 *                         /proc/<pid>/fd/<fd>)
 *       16     8  serial  the segment's serial number in its owner, also
 *                         written in the segment's header (a reused fd
 *                         number is never mistaken for an older segment)
 *       24     8  offset  where the buffer starts in the segment
 *       32     8  length  its size in bytes (>= 1)
 *
 * Entries are in strictly increasing frame order, never name the payload
 * (0) or the table itself (the last frame).  A segment is one memfd; its
 * first PMP_SHM_DATA_OFFSET bytes are its header (magic, serial, and the
 * count of the views receivers hold, at PMP_SHM_COUNT_OFFSET), the data
 * follow.  docs/protocol.md ("Shared memory") says who counts what.
 *
 * Everything here is pure, reentrant and allocation-free; any thread.
 */
#ifndef PMP_SHMREF_H
#define PMP_SHMREF_H

#include <stddef.h>
#include <stdint.h>

#include "pmp_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PMP_SHM_ENTRY_SIZE 40
/* At most this many references per message (one per out-of-band buffer). */
#define PMP_SHM_MAX_REFS 65534u
/* Segment layout: magic "PMPS" at 0, u64 serial at 8 (native order: both
 * sides are on one host), the i64 view count at PMP_SHM_COUNT_OFFSET (its
 * own cache line), the data from PMP_SHM_DATA_OFFSET (page-aligned). */
#define PMP_SHM_MAGIC "PMPS"
#define PMP_SHM_SERIAL_OFFSET 8
#define PMP_SHM_COUNT_OFFSET 64
#define PMP_SHM_DATA_OFFSET 4096

typedef struct {
    uint32_t frame;
    uint32_t fd;
    uint64_t pid;
    uint64_t serial;
    uint64_t offset;
    uint64_t length;
} pmp_shm_ref_t;

/* Bytes of a table of count entries. */
size_t pmp_shm_table_size(size_t count);

/* Writes a table of count entries into buf (pmp_shm_table_size(count)
 * bytes).  Cannot fail; the encoder does not check the entries (the
 * decoder does). */
void pmp_shm_table_encode(const pmp_shm_ref_t *refs, size_t count, unsigned char *buf);

/* Decodes the table of len bytes of a message with nframes frames after
 * its header (the table being the last).  On success returns 0 and sets
 * *count; refs (room for cap entries, may be NULL with cap 0 to count
 * only) receives min(cap, *count) entries.  Returns -1 with errno = EPROTO
 * and a reason in err when the table is truncated or has trailing bytes,
 * is empty, or an entry names the payload, the table, a frame beyond the
 * message or one out of order, has pid 0, an fd above INT32_MAX, a pid
 * above INT32_MAX, length 0 or an offset + length that overflows. */
int pmp_shm_table_decode(const void *buf, size_t len, uint32_t nframes, pmp_shm_ref_t *refs,
                         size_t cap, size_t *count, pmp_error_t *err);

/* The view count of the segment mapped at base: an acquire load, so that
 * whatever a receiver did with the data before it let its view go happens
 * before the owner writes the segment again. */
static inline int64_t pmp_shm_count_load(const void *base)
{
    return __atomic_load_n((const int64_t *)((const char *)base + PMP_SHM_COUNT_OFFSET),
                           __ATOMIC_ACQUIRE);
}

/* Adds delta to the view count of the segment mapped at base (acquire and
 * release); returns the new count. */
static inline int64_t pmp_shm_count_add(void *base, int64_t delta)
{
    return __atomic_add_fetch((int64_t *)((char *)base + PMP_SHM_COUNT_OFFSET), delta,
                              __ATOMIC_ACQ_REL);
}

#ifdef __cplusplus
}
#endif

#endif
