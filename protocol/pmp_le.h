/*
 * pmp_le.h - little-endian integers, one byte at a time, and the decoders'
 * way of refusing input: internal to protocol/ (pmp_protocol.c,
 * pmp_shmref.c, pmp_link.c), so that every wire format of the project
 * writes and reads its integers the same way, independent of the host's
 * byte order and alignment.  Header-only; no state; cannot fail.
 */
#ifndef PMP_LE_H
#define PMP_LE_H

#include <errno.h>
#include <stdint.h>

#include "pmp_error.h"

/* Writes the n low bytes of v at p, least significant first. */
static inline void pmp_le_put(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Reads n bytes at p, least significant first. */
static inline uint64_t pmp_le_get(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* In a decoder returning int: fails with EPROTO and a reason in err. */
#define PMP_LE_REJECT(err, ...)                                                                    \
    do {                                                                                           \
        pmp_error_set((err), __VA_ARGS__);                                                         \
        errno = EPROTO;                                                                            \
        return -1;                                                                                 \
    } while (0)

#endif
