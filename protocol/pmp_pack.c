/*
 * pmp_pack.c - several small frames in one ZeroMQ frame (see pmp_pack.h).
 *
 * Where it sits: between the protocol's messages and ZeroMQ, on both
 * sides: the frontend writes packs for a leader that takes them and
 * unpacks what any leader sends (pmp_executor_io.c, pmp_executor_recv.c);
 * a leader unpacks (runtime/pmp_leader.c).  Unpacking copies each frame
 * into a part of its own, because every receiver hands frames on as
 * zmq_msg_t (a result's payload becomes the caller's frame): the frames are
 * small by construction (PMP_PACK_FRAME_MAX), so the copy costs less than
 * the per-frame work of the transport it saves, and a header frame, 24
 * bytes, fits inside its zmq_msg_t without an allocation.
 */
#include "pmp_pack.h"

#include <errno.h>
#include <string.h>

#include "pmp_le.h"
#include "pmp_protocol.h"

size_t pmp_pack_size(size_t nframes, size_t data_bytes)
{
    return PMP_PACK_PREFIX_SIZE + nframes * PMP_PACK_SIZE_BYTES + data_bytes;
}

int pmp_pack_begin(pmp_pack_t *self, size_t nframes, size_t data_bytes)
{
    PMP_ASSERT(nframes >= 1 && nframes <= (size_t)PMP_MAX_FRAMES + 1);
    if (zmq_msg_init_size(&self->msg, pmp_pack_size(nframes, data_bytes)) < 0) {
        errno = ENOMEM;
        return -1;
    }
    unsigned char *p = zmq_msg_data(&self->msg);
    memcpy(p, PMP_PACK_MAGIC, 4);
    pmp_le_put(p + 4, nframes, 4);
    self->next_size = p + PMP_PACK_PREFIX_SIZE;
    self->next_data = self->next_size + nframes * PMP_PACK_SIZE_BYTES;
    self->left = nframes;
    return 0;
}

void pmp_pack_add(pmp_pack_t *self, const void *data, size_t size)
{
    unsigned char *end = (unsigned char *)zmq_msg_data(&self->msg) + zmq_msg_size(&self->msg);
    PMP_ASSERT(self->left > 0 && size <= (size_t)(end - self->next_data));
    pmp_le_put(self->next_size, size, PMP_PACK_SIZE_BYTES);
    self->next_size += PMP_PACK_SIZE_BYTES;
    if (size)
        memcpy(self->next_data, data, size);
    self->next_data += size;
    self->left--;
}

zmq_msg_t *pmp_pack_msg(pmp_pack_t *self)
{
    PMP_ASSERT(self->left == 0 && self->next_data == (unsigned char *)zmq_msg_data(&self->msg) +
                                                         zmq_msg_size(&self->msg));
    return &self->msg;
}

/* Checks the pack of len bytes at p for at most max frames: its count in
 * *n and the offset of its first frame's bytes in *data. */
static int s_check(const unsigned char *p, size_t len, size_t max, size_t *n, size_t *data,
                   pmp_error_t *err)
{
    if (len < PMP_PACK_PREFIX_SIZE)
        PMP_LE_REJECT(err, "pack of %zu bytes is shorter than its %d-byte prefix", len,
                      PMP_PACK_PREFIX_SIZE);
    uint64_t count = pmp_le_get(p + 4, 4);
    if (count == 0 || count > max)
        PMP_LE_REJECT(err, "pack of %llu frames, expected 1 to %zu", (unsigned long long)count,
                      max);
    uint64_t table = PMP_PACK_PREFIX_SIZE + count * PMP_PACK_SIZE_BYTES;
    if (table > len)
        PMP_LE_REJECT(err, "pack announces %llu frames, but its %zu bytes hold no table of them",
                      (unsigned long long)count, len);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < count; i++)
        sum += pmp_le_get(p + PMP_PACK_PREFIX_SIZE + i * PMP_PACK_SIZE_BYTES, PMP_PACK_SIZE_BYTES);
    if (sum != len - table)
        PMP_LE_REJECT(err, "pack's frames add up to %llu bytes, but %llu follow its table",
                      (unsigned long long)sum, (unsigned long long)(len - table));
    *n = (size_t)count;
    *data = (size_t)table;
    return 0;
}

int pmp_pack_unpack(pmp_multipart_t *m, size_t at, size_t max, pmp_error_t *err)
{
    if (m->n != at + 1 || zmq_msg_size(&m->parts[at]) < 4 ||
        memcmp(zmq_msg_data(&m->parts[at]), PMP_PACK_MAGIC, 4) != 0)
        return 0;
    const unsigned char *p = zmq_msg_data(&m->parts[at]);
    size_t n, data;
    if (max <= at)
        PMP_LE_REJECT(err, "no room for a pack's frames");
    if (s_check(p, zmq_msg_size(&m->parts[at]), max - at, &n, &data, err) < 0)
        return -1;
    zmq_msg_t pack;
    zmq_msg_init(&pack);
    zmq_msg_move(&pack, &m->parts[at]);
    zmq_msg_close(&m->parts[--m->n]);
    p = zmq_msg_data(&pack); /* a short frame's bytes live inside its zmq_msg_t */
    int rc = 1;
    for (size_t i = 0; i < n; i++) {
        size_t size = (size_t)pmp_le_get(p + PMP_PACK_PREFIX_SIZE + i * PMP_PACK_SIZE_BYTES,
                                         PMP_PACK_SIZE_BYTES);
        zmq_msg_t frame;
        if (zmq_msg_init_size(&frame, size) < 0) {
            errno = ENOMEM;
            rc = -1;
            break;
        }
        if (size)
            memcpy(zmq_msg_data(&frame), p + data, size);
        data += size;
        if (pmp_multipart_push(m, &frame) < 0) {
            zmq_msg_close(&frame);
            rc = -1;
            break;
        }
    }
    zmq_msg_close(&pack);
    return rc;
}
