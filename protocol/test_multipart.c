/*
 * test_multipart.c - unit test of pmp_multipart (unit.multipart): whole
 * messages received in order, the array growing past its inline parts,
 * the bound (parts past it received and closed, the next message intact),
 * an empty socket polled, and the receiver reused.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "pmp_check.h"
#include "pmp_multipart.h"

/* Sends n parts "p0", "p1", ... as one message. */
static void s_send(void *sock, int n, const char *prefix)
{
    for (int i = 0; i < n; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "%s%d", prefix, i);
        CHECK(zmq_send(sock, text, (size_t)len, i + 1 < n ? ZMQ_SNDMORE : 0) == len);
    }
}

/* Part i of m is "<prefix><i>". */
static int s_part_is(pmp_multipart_t *m, size_t i, const char *prefix)
{
    char text[32];
    int len = snprintf(text, sizeof text, "%s%zu", prefix, i);
    return zmq_msg_size(&m->parts[i]) == (size_t)len &&
           memcmp(zmq_msg_data(&m->parts[i]), text, (size_t)len) == 0;
}

int main(void)
{
    void *ctx = zmq_ctx_new();
    void *tx = zmq_socket(ctx, ZMQ_PAIR), *rx = zmq_socket(ctx, ZMQ_PAIR);
    CHECK(zmq_bind(rx, "inproc://multipart") == 0 && zmq_connect(tx, "inproc://multipart") == 0);
    pmp_multipart_t m;
    pmp_multipart_init(&m);

    /* nothing there: EAGAIN, empty */
    errno = 0;
    CHECK(pmp_multipart_recv(&m, rx, ZMQ_DONTWAIT, 8) == -1 && errno == EAGAIN);
    CHECK(m.n == 0 && m.dropped == 0);

    /* a small message, in the inline parts */
    s_send(tx, 3, "a");
    CHECK(pmp_multipart_recv(&m, rx, 0, 8) == 0);
    CHECK(m.n == 3 && m.dropped == 0 && m.parts == m.inline_parts);
    for (size_t i = 0; i < 3; i++)
        CHECK(s_part_is(&m, i, "a"));
    CHECK(zmq_msg_more(&m.parts[0]) && !zmq_msg_more(&m.parts[2]));
    pmp_multipart_clear(&m);
    CHECK(m.n == 0);

    /* a long one: the array grows, the order stays */
    s_send(tx, 100, "b");
    CHECK(pmp_multipart_recv(&m, rx, ZMQ_DONTWAIT, 1000) == 0);
    CHECK(m.n == 100 && m.dropped == 0 && m.parts != m.inline_parts);
    for (size_t i = 0; i < 100; i++)
        CHECK(s_part_is(&m, i, "b"));
    pmp_multipart_clear(&m);

    /* past the bound: kept up to it, the rest drained; the next message
     * arrives whole */
    s_send(tx, 30, "c");
    s_send(tx, 2, "d");
    CHECK(pmp_multipart_recv(&m, rx, 0, 12) == 0);
    CHECK(m.n == 12 && m.dropped == 18);
    for (size_t i = 0; i < 12; i++)
        CHECK(s_part_is(&m, i, "c"));
    pmp_multipart_clear(&m);
    CHECK(m.dropped == 0);
    CHECK(pmp_multipart_recv(&m, rx, ZMQ_DONTWAIT, 12) == 0);
    CHECK(m.n == 2 && m.dropped == 0 && s_part_is(&m, 0, "d") && s_part_is(&m, 1, "d"));

    /* a part moved out by the caller is empty; clearing is still right */
    zmq_msg_t taken;
    zmq_msg_init(&taken);
    zmq_msg_move(&taken, &m.parts[1]);
    CHECK(zmq_msg_size(&taken) == 2);
    zmq_msg_close(&taken);
    pmp_multipart_clear(&m);

    zmq_close(tx);
    zmq_close(rx);
    zmq_ctx_term(ctx);
    return pmp_check_verdict("test_multipart");
}
