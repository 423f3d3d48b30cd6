/*
 * pmp_pack.h - a pack: the frames of several small protocol messages in
 * one ZeroMQ frame.
 *
 * Why it exists: over TCP, ZeroMQ's CURVE encrypts and authenticates every
 * frame on its own, and libzmq's I/O threads do work per frame (a message
 * object, a pipe entry, an encoder step, a decryption).  A small task is two
 * frames (header and payload) each way, and that per-frame work, not the
 * bytes, is what limits how many tasks a second the frontend can move to
 * remote groups (docs/performance.md, "The frontend at scale").  A batch
 * (pmp_protocol.h) already puts several protocol messages into one ZeroMQ
 * message; a pack puts their frames into one frame, so that the transport
 * handles one frame for the whole batch.
 *
 * Wire format (docs/protocol.md, "Packs"): the magic "PMPK", a u32 count n
 * (1 .. PMP_MAX_FRAMES + 1), n u32 frame sizes, then the n frames' bytes
 * back to back; integers little-endian, written and read byte by byte.  A
 * ZeroMQ message that carries a pack carries nothing else: the pack is its
 * only frame (after the routing identity, on the ROUTER).  Unpacked, the n
 * frames are read exactly as the frames of an ordinary message: one
 * protocol message or a batch.  A header frame (magic "PMPX", 24 bytes)
 * can never be taken for a pack, and a message of one frame that is not a
 * header is not a protocol message, so the rule is unambiguous.
 *
 * Who sends one: the frontend, to a leader whose hello says "pack=N"
 * (N > 1: at most N protocol messages in a pack), only for messages whose
 * frames are all at most PMP_PACK_FRAME_MAX bytes (large frames keep their
 * own frames, never copied); any ZeroMQ receiver of the protocol accepts
 * packs (the frontend from every leader, the runtime's leader).  Local
 * links (pmp_link.h) have no per-frame cost to save and never carry packs.
 *
 * Ownership and threads: a writer owns its frame until the caller sends or
 * closes it; pmp_pack_unpack replaces the pack in the caller's multipart
 * by copies of its frames.  No shared state; any thread.
 */
#ifndef PMP_PACK_H
#define PMP_PACK_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "pmp_error.h"
#include "pmp_multipart.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PMP_PACK_MAGIC "PMPK"
/* The magic and the count, before the sizes. */
#define PMP_PACK_PREFIX_SIZE 8
/* Bytes of each frame's size. */
#define PMP_PACK_SIZE_BYTES 4
/* The largest frame a sender copies into a pack: a larger frame leaves
 * in a message of its own frames, without a copy. */
#define PMP_PACK_FRAME_MAX 4096

/* A pack being written.  Not to be copied once begun. */
typedef struct {
    zmq_msg_t msg;
    unsigned char *next_size; /* where the next frame's size goes */
    unsigned char *next_data; /* where its bytes go */
    size_t left;              /* frames still to add */
} pmp_pack_t;

/* The size of a pack of nframes frames holding data_bytes bytes in all. */
size_t pmp_pack_size(size_t nframes, size_t data_bytes);

/* Begins a pack of exactly nframes (>= 1) frames of data_bytes bytes in
 * all.  Returns 0, or -1 with errno = ENOMEM (nothing to release then). */
int pmp_pack_begin(pmp_pack_t *self, size_t nframes, size_t data_bytes);

/* Appends a frame: called exactly nframes times, with sizes that add up
 * to data_bytes (asserted).  Cannot fail. */
void pmp_pack_add(pmp_pack_t *self, const void *data, size_t size);

/* The finished frame (all frames added, asserted): the caller sends it
 * with zmq_msg_send, which takes it, or closes it. */
zmq_msg_t *pmp_pack_msg(pmp_pack_t *self);

/* If the message in m is a pack (m->n == at + 1, and part at begins with
 * the magic), replaces that part by the frames it carries, each copied into
 * a part of its own, so that m holds at most max parts.  Returns 1 when it
 * did, 0 when m is not a pack (m untouched), or -1 with errno: EPROTO
 * with a reason in err for a malformed pack or one of more frames than max
 * allows (m untouched), ENOMEM (m then holds part of the frames: the
 * caller drops the message). */
int pmp_pack_unpack(pmp_multipart_t *m, size_t at, size_t max, pmp_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
