/*
 * test_pack.c - unit test of pmp_pack (unit.pack): a pack written and
 * read back over a ZeroMQ socket gives the same frames in order (empty
 * ones, the largest a sender packs, more than the multipart's inline
 * parts), at the start of a message or after a routing identity; a message
 * that is not a pack is left alone; every malformed pack is refused with a
 * reason and leaves the message untouched; the hello's optional "pack" key.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "pmp_check.h"
#include "pmp_multipart.h"
#include "pmp_pack.h"
#include "pmp_protocol.h"

#define S_FRAMES 20

/* Frame i of the test: i bytes of value i (frame 0 empty), and frame 3 the
 * largest a sender packs. */
static size_t s_size(size_t i)
{
    return i == 3 ? PMP_PACK_FRAME_MAX : i;
}

static void s_fill(unsigned char *buf, size_t i)
{
    memset(buf, (int)i, s_size(i));
}

/* Sends n test frames as one pack, after an identity frame when id. */
static void s_send_pack(void *sock, size_t n, const char *id)
{
    static unsigned char buf[PMP_PACK_FRAME_MAX];
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += s_size(i);
    pmp_pack_t pack;
    CHECK(pmp_pack_begin(&pack, n, bytes) == 0);
    for (size_t i = 0; i < n; i++) {
        s_fill(buf, i);
        pmp_pack_add(&pack, buf, s_size(i));
    }
    CHECK(zmq_msg_size(pmp_pack_msg(&pack)) == pmp_pack_size(n, bytes));
    if (id)
        CHECK(zmq_send(sock, id, strlen(id), ZMQ_SNDMORE) == (int)strlen(id));
    CHECK(zmq_msg_send(pmp_pack_msg(&pack), sock, 0) >= 0);
}

/* m holds the n test frames from part at on. */
static int s_frames_are(pmp_multipart_t *m, size_t at, size_t n)
{
    static unsigned char want[PMP_PACK_FRAME_MAX];
    if (m->n != at + n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        s_fill(want, i);
        if (zmq_msg_size(&m->parts[at + i]) != s_size(i) ||
            memcmp(zmq_msg_data(&m->parts[at + i]), want, s_size(i)) != 0)
            return 0;
    }
    return 1;
}

/* Sends len bytes as a one-frame message and receives it into m. */
static void s_roundtrip_raw(void *tx, void *rx, pmp_multipart_t *m, const void *bytes, size_t len)
{
    CHECK(zmq_send(tx, bytes, len, 0) == (int)len);
    CHECK(pmp_multipart_recv(m, rx, 0, 100) == 0 && m->n == 1);
}

static void test_malformed(void *tx, void *rx)
{
    pmp_multipart_t m;
    pmp_error_t err;
    pmp_multipart_init(&m);
    /* magic, count 2, sizes 1 and 2, then 3 bytes */
    unsigned char good[] = {'P', 'M', 'P', 'K', 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 7, 8, 9};
    unsigned char bad[sizeof good];
    struct {
        size_t len;
        size_t at; /* a byte changed, or SIZE_MAX */
        unsigned char value;
        size_t max;
        const char *reason;
    } cases[] = {
        {6, SIZE_MAX, 0, 100, "shorter than its 8-byte prefix"},
        {sizeof good, 4, 0, 100, "pack of 0 frames, expected 1 to 100"},
        {sizeof good, 4, 2, 1, "pack of 2 frames, expected 1 to 1"},
        {sizeof good, 4, 200, 1000, "hold no table of them"},
        {sizeof good, 12, 3, 100, "add up to 4 bytes, but 3 follow"},
        {sizeof good - 1, SIZE_MAX, 0, 100, "add up to 3 bytes, but 2 follow"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(bad, good, sizeof good);
        if (cases[c].at != SIZE_MAX)
            bad[cases[c].at] = cases[c].value;
        s_roundtrip_raw(tx, rx, &m, bad, cases[c].len);
        CHECK_REJECT(pmp_pack_unpack(&m, 0, cases[c].max, &err), err, cases[c].reason);
        /* refused: the message is as it came */
        CHECK(m.n == 1 && zmq_msg_size(&m.parts[0]) == cases[c].len &&
              memcmp(zmq_msg_data(&m.parts[0]), bad, cases[c].len) == 0);
        pmp_multipart_clear(&m);
    }
    /* no room left after the identity */
    s_roundtrip_raw(tx, rx, &m, good, sizeof good);
    CHECK_REJECT(pmp_pack_unpack(&m, 0, 0, &err), err, "no room");
    pmp_multipart_clear(&m);
    /* the good one */
    s_roundtrip_raw(tx, rx, &m, good, sizeof good);
    CHECK(pmp_pack_unpack(&m, 0, 3, &err) == 1 && m.n == 2);
    CHECK(zmq_msg_size(&m.parts[0]) == 1 && *(unsigned char *)zmq_msg_data(&m.parts[0]) == 7);
    CHECK(zmq_msg_size(&m.parts[1]) == 2 && memcmp(zmq_msg_data(&m.parts[1]), "\x08\x09", 2) == 0);
    pmp_multipart_clear(&m);
}

static void test_hello_key(void)
{
    pmp_hello_t in, out;
    pmp_error_t err;
    char buf[1024];
    memset(&in, 0, sizeof in);
    in.group_size = in.world_size = in.ngroups = 1;
    in.pid = 1;
    snprintf(in.host, sizeof in.host, "h");
    /* optional: absent means 1 (no packs), and 1 is not written */
    in.pack = 1;
    int len = pmp_hello_encode(&in, buf, sizeof buf);
    CHECK(len > 0 && strstr(buf, "pack=") == NULL);
    CHECK(pmp_hello_decode(buf, (size_t)len, &out, &err) == 0 && out.pack == 1);
    in.pack = PMP_BATCH_MAX;
    len = pmp_hello_encode(&in, buf, sizeof buf);
    CHECK(len > 0 && strstr(buf, "\npack=64\n") != NULL);
    CHECK(pmp_hello_decode(buf, (size_t)len, &out, &err) == 0 && out.pack == PMP_BATCH_MAX);
    in.pack = 1;
    len = pmp_hello_encode(&in, buf, sizeof buf);
    const char *bad[] = {"pack=0\n", "pack=65\n", "pack=2\npack=2\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1100];
        int n = snprintf(text, sizeof text, "%s%s", buf, bad[i]);
        CHECK_REJECT(pmp_hello_decode(text, (size_t)n, &out, &err), err, "'pack'");
    }
}

int main(void)
{
    void *ctx = zmq_ctx_new();
    void *tx = zmq_socket(ctx, ZMQ_PAIR), *rx = zmq_socket(ctx, ZMQ_PAIR);
    CHECK(zmq_bind(rx, "inproc://pack") == 0 && zmq_connect(tx, "inproc://pack") == 0);
    pmp_multipart_t m;
    pmp_error_t err;
    pmp_multipart_init(&m);

    /* a pack alone: its frames, in order, past the inline parts */
    s_send_pack(tx, S_FRAMES, NULL);
    CHECK(pmp_multipart_recv(&m, rx, 0, 100) == 0 && m.n == 1);
    CHECK(pmp_pack_unpack(&m, 0, 100, &err) == 1);
    CHECK(s_frames_are(&m, 0, S_FRAMES) && m.parts != m.inline_parts);
    pmp_multipart_clear(&m);

    /* after a routing identity; a pack of one (empty) frame */
    s_send_pack(tx, 5, "id");
    CHECK(pmp_multipart_recv(&m, rx, 0, 100) == 0 && m.n == 2);
    CHECK(pmp_pack_unpack(&m, 1, 100, &err) == 1);
    CHECK(zmq_msg_size(&m.parts[0]) == 2 && memcmp(zmq_msg_data(&m.parts[0]), "id", 2) == 0);
    CHECK(s_frames_are(&m, 1, 5));
    pmp_multipart_clear(&m);
    s_send_pack(tx, 1, NULL);
    CHECK(pmp_multipart_recv(&m, rx, 0, 100) == 0);
    CHECK(pmp_pack_unpack(&m, 0, 100, &err) == 1 && s_frames_are(&m, 0, 1));
    pmp_multipart_clear(&m);

    /* the bound counts the parts before the pack */
    s_send_pack(tx, 5, "id");
    CHECK(pmp_multipart_recv(&m, rx, 0, 100) == 0);
    CHECK_REJECT(pmp_pack_unpack(&m, 1, 5, &err), err, "pack of 5 frames, expected 1 to 4");
    CHECK(m.n == 2);
    pmp_multipart_clear(&m);

    /* not packs: left alone.  A header (magic PMPX), a message of two
     * frames even if one starts with the pack's magic, a pack not at the
     * position asked for */
    unsigned char hbuf[PMP_HEADER_SIZE];
    pmp_header_t hdr = {.type = PMP_MSG_SHUTDOWN};
    pmp_header_encode(&hdr, hbuf);
    s_roundtrip_raw(tx, rx, &m, hbuf, sizeof hbuf);
    CHECK(pmp_pack_unpack(&m, 0, 100, &err) == 0 && m.n == 1);
    pmp_multipart_clear(&m);
    CHECK(zmq_send(tx, hbuf, sizeof hbuf, ZMQ_SNDMORE) == (int)sizeof hbuf);
    CHECK(zmq_send(tx, "PMPK\1\0\0\0\0\0\0\0", 12, 0) == 12);
    CHECK(pmp_multipart_recv(&m, rx, 0, 100) == 0 && m.n == 2);
    CHECK(pmp_pack_unpack(&m, 0, 100, &err) == 0);
    CHECK(m.n == 2 && zmq_msg_size(&m.parts[1]) == 12);
    /* (after a routing frame the same part is a pack of one empty frame) */
    CHECK(pmp_pack_unpack(&m, 1, 100, &err) == 1);
    CHECK(m.n == 2 && zmq_msg_size(&m.parts[0]) == sizeof hbuf && zmq_msg_size(&m.parts[1]) == 0);
    pmp_multipart_clear(&m);
    s_send_pack(tx, 3, NULL);
    CHECK(pmp_multipart_recv(&m, rx, 0, 100) == 0);
    CHECK(pmp_pack_unpack(&m, 1, 100, &err) == 0 && m.n == 1);
    pmp_multipart_clear(&m);

    test_malformed(tx, rx);
    test_hello_key();

    zmq_close(tx);
    zmq_close(rx);
    zmq_ctx_term(ctx);
    return pmp_check_verdict("test_pack");
}
