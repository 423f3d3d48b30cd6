/*
 * pmp_shmref.c - the segment table of PMP_FLAG_SHM messages (see
 * pmp_shmref.h).
 *
 * Why: a buffer of 128 MiB that arrives as a ZeroMQ frame lands in fresh
 * memory on the receiver, whose pages fault in at about 0.7 GB/s, far
 * slower than a copy into memory already touched.  Between processes on
 * one host the sender instead copies the buffer into a shared segment it
 * keeps mapped and reuses, and the message names the place; the receiver
 * maps the segment once and wraps the bytes without a copy.  This file is
 * the one definition of how the message names it, for C and, through the
 * bindings (pylib/_pmp_shm_py.c), for the Python on both sides.
 *
 * How: the table is a length-prefixed array of fixed-size entries written
 * and read byte by byte in little-endian order, like the header, so its
 * meaning never depends on a compiler's layout.  The decoder checks every
 * field it can without the segment: the frame each entry replaces must be
 * one of the message's buffer frames and the order strict, so that one
 * buffer cannot be named twice.  Whether the segment exists, is the
 * owner's and is large enough is for the receiver to find out when it
 * maps it (its header carries the serial), not for this file.
 */
#include "pmp_shmref.h"

#include <errno.h>
#include <string.h>

#include "pmp_le.h"

size_t pmp_shm_table_size(size_t count)
{
    return 4 + count * PMP_SHM_ENTRY_SIZE;
}

void pmp_shm_table_encode(const pmp_shm_ref_t *refs, size_t count, unsigned char *buf)
{
    pmp_le_put(buf, count, 4);
    unsigned char *p = buf + 4;
    for (size_t i = 0; i < count; i++, p += PMP_SHM_ENTRY_SIZE) {
        pmp_le_put(p, refs[i].frame, 4);
        pmp_le_put(p + 4, refs[i].fd, 4);
        pmp_le_put(p + 8, refs[i].pid, 8);
        pmp_le_put(p + 16, refs[i].serial, 8);
        pmp_le_put(p + 24, refs[i].offset, 8);
        pmp_le_put(p + 32, refs[i].length, 8);
    }
}

int pmp_shm_table_decode(const void *buf, size_t len, uint32_t nframes, pmp_shm_ref_t *refs,
                         size_t cap, size_t *count, pmp_error_t *err)
{
    const unsigned char *p = buf;
    if (p == NULL || len < 4)
        PMP_LE_REJECT(err, "segment table is %zu bytes, too short for its count",
                      p ? len : (size_t)0);
    uint64_t n = pmp_le_get(p, 4);
    if (n == 0)
        PMP_LE_REJECT(err, "segment table has no entries");
    if ((len - 4) % PMP_SHM_ENTRY_SIZE != 0 || (len - 4) / PMP_SHM_ENTRY_SIZE != n)
        PMP_LE_REJECT(err, "segment table of %llu entries is %zu bytes, expected %zu",
                      (unsigned long long)n, len, pmp_shm_table_size((size_t)n));
    if (nframes < 2 || n > (uint64_t)nframes - 2)
        PMP_LE_REJECT(err, "segment table has %llu entries but the message only %u buffer frames",
                      (unsigned long long)n, nframes >= 2 ? (unsigned)(nframes - 2) : 0u);
    uint64_t previous = 0;
    p += 4;
    for (size_t i = 0; i < (size_t)n; i++, p += PMP_SHM_ENTRY_SIZE) {
        pmp_shm_ref_t r = {(uint32_t)pmp_le_get(p, 4), (uint32_t)pmp_le_get(p + 4, 4),
                           pmp_le_get(p + 8, 8),       pmp_le_get(p + 16, 8),
                           pmp_le_get(p + 24, 8),      pmp_le_get(p + 32, 8)};
        if (r.frame == 0)
            PMP_LE_REJECT(err, "segment table entry %zu names the payload (frame 0)", i);
        if (r.frame >= nframes - 1)
            PMP_LE_REJECT(err,
                          "segment table entry %zu names frame %u, but the buffer frames are 1..%u",
                          i, (unsigned)r.frame, (unsigned)(nframes - 2));
        if (r.frame <= previous)
            PMP_LE_REJECT(err,
                          "segment table entry %zu names frame %u after frame %llu (out of order)",
                          i, (unsigned)r.frame, (unsigned long long)previous);
        if (r.pid == 0 || r.pid > INT32_MAX)
            PMP_LE_REJECT(err, "segment table entry %zu has pid %llu", i,
                          (unsigned long long)r.pid);
        if (r.fd > INT32_MAX)
            PMP_LE_REJECT(err, "segment table entry %zu has fd %u", i, (unsigned)r.fd);
        if (r.length == 0)
            PMP_LE_REJECT(err, "segment table entry %zu has length 0", i);
        if (r.offset > UINT64_MAX - r.length || r.offset + r.length > (uint64_t)INT64_MAX)
            PMP_LE_REJECT(err, "segment table entry %zu: offset %llu + length %llu overflows", i,
                          (unsigned long long)r.offset, (unsigned long long)r.length);
        previous = r.frame;
        if (refs != NULL && i < cap)
            refs[i] = r;
    }
    *count = (size_t)n;
    return 0;
}
