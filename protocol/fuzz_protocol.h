/*
 * fuzz_protocol.h - the fuzz harness of the wire-format decoder, shared by
 * the libFuzzer target (fuzz_protocol, built with -DPYMPIPOOL_FUZZ=ON and
 * clang) and by fuzz_replay, the plain driver every build has, which
 * replays the checked-in corpus (protocol/fuzz_corpus/) and writes or
 * checks its seed files.
 *
 * Input format: a sequence of frames, each a little-endian u16 length L
 * followed by L bytes; a length that runs past the end of the input takes
 * what is left, and at most PMP_FUZZ_MAX_FRAMES frames are read.  The
 * harness feeds these frames to every decoder the way the two sides
 * receive them (see fuzz_protocol.c), and aborts on any broken invariant,
 * so that libFuzzer (or the replay driver) reports it as a crash.
 */
#ifndef PMP_FUZZ_PROTOCOL_H
#define PMP_FUZZ_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PMP_FUZZ_MAX_FRAMES 64

/* The libFuzzer entry point: runs one input through every decoder.
 * Always returns 0; aborts (after printing what broke) on a violated
 * invariant. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the input as the byte stream of a local link (fuzz_link.c). */
void pmp_fuzz_link(const uint8_t *data, size_t size);

/* One seed input: a name (a file name in the corpus) and its bytes. */
typedef struct {
    char name[64];
    unsigned char *data; /* owned by the seed list */
    size_t size;
} pmp_fuzz_seed_t;

/* Builds the seed corpus with the real encoders: valid messages of every
 * type as each side receives them, and near-valid variants of each (one
 * field wrong).  Returns a malloc'ed array of *count seeds that the caller
 * releases with pmp_fuzz_seeds_free(), or NULL with errno on failure. */
pmp_fuzz_seed_t *pmp_fuzz_seeds_new(size_t *count);

/* Frees what pmp_fuzz_seeds_new() returned; NULL is allowed. */
void pmp_fuzz_seeds_free(pmp_fuzz_seed_t *seeds, size_t count);

#ifdef __cplusplus
}
#endif

#endif
