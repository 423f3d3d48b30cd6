/*
 * test_link.c - unit test of pmp_link over a socketpair: frames and
 * message boundaries, a burst read at once, a frame far larger than the
 * socket's buffer written and read in pieces, a zero-copy buffer released
 * once when written, the limits (frame length, frame count), the peer's
 * end, and the greeting.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pmp_check.h"
#include "pmp_link.h"
#include "pmp_protocol.h"

static void s_pair(pmp_link_t **a, pmp_link_t **b, uint64_t max_frame)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    *a = pmp_link_new(sv[0], max_frame);
    *b = pmp_link_new(sv[1], max_frame);
    CHECK(*a && *b);
}

static void s_text(zmq_msg_t *m, const char *text)
{
    CHECK(zmq_msg_init_size(m, strlen(text)) == 0);
    memcpy(zmq_msg_data(m), text, strlen(text));
}

static int s_is(zmq_msg_t *m, const char *text)
{
    return zmq_msg_size(m) == strlen(text) && memcmp(zmq_msg_data(m), text, strlen(text)) == 0;
}

/* Receives the next message on b, flushing a meanwhile (a is the writer). */
static int s_pump(pmp_link_t *a, pmp_link_t *b, zmq_msg_t **parts, size_t *n)
{
    for (int spins = 0; spins < 1000000; spins++) {
        CHECK(pmp_link_flush(a) == 0);
        int rc = pmp_link_recv(b, parts, n);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void s_messages(void)
{
    pmp_link_t *a, *b;
    s_pair(&a, &b, PMP_LINK_MAX_FRAME);
    zmq_msg_t *parts;
    size_t n;
    CHECK(pmp_link_recv(b, &parts, &n) == 0 && errno == EAGAIN); /* nothing yet */
    for (int k = 0; k < 100; k++) {                              /* a burst */
        zmq_msg_t m[3];
        s_text(&m[0], "header");
        zmq_msg_init(&m[1]); /* empty frame */
        char t[32];
        snprintf(t, sizeof t, "message %d", k);
        s_text(&m[2], t);
        CHECK(pmp_link_send(a, m, 3) == 0);
        CHECK(zmq_msg_size(&m[0]) == 0); /* moved in */
    }
    CHECK(pmp_link_unsent(a) == 0);
    for (int k = 0; k < 100; k++) {
        CHECK(pmp_link_recv(b, &parts, &n) == 1 && n == 3);
        char t[32];
        snprintf(t, sizeof t, "message %d", k);
        CHECK(s_is(&parts[0], "header") && zmq_msg_size(&parts[1]) == 0 && s_is(&parts[2], t));
    }
    CHECK(pmp_link_recv(b, &parts, &n) == 0);
    zmq_msg_t one;
    s_text(&one, "single");
    CHECK(pmp_link_send(b, &one, 1) == 0); /* the other way */
    CHECK(pmp_link_recv(a, &parts, &n) == 1 && n == 1 && s_is(&parts[0], "single"));
    pmp_link_destroy(&a);
    CHECK(a == NULL);
    CHECK(pmp_link_recv(b, &parts, &n) == -1 && errno == ECONNRESET); /* the peer's end */
    s_text(&one, "to nobody");
    CHECK(pmp_link_send(b, &one, 1) == -1 && (errno == EPIPE || errno == ECONNRESET));
    pmp_link_destroy(&b);
    pmp_link_destroy(&b); /* NULL-safe */
}

static int s_freed;
static void s_free(void *data, void *hint)
{
    (void)hint;
    free(data);
    s_freed++;
}

static void s_large(void)
{
    pmp_link_t *a, *b;
    s_pair(&a, &b, PMP_LINK_MAX_FRAME);
    size_t size = 32u << 20; /* far beyond the socket's buffer */
    unsigned char *data = malloc(size);
    CHECK(data);
    for (size_t i = 0; i < size; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    zmq_msg_t m[2];
    s_text(&m[0], "big");
    CHECK(zmq_msg_init_data(&m[1], data, size, s_free, NULL) == 0);
    CHECK(pmp_link_send(a, m, 2) == 0);
    CHECK(pmp_link_unsent(a) > 0); /* the rest waits */
    CHECK(s_freed == 0);
    zmq_msg_t *parts;
    size_t n;
    CHECK(s_pump(a, b, &parts, &n) == 1 && n == 2);
    CHECK(s_freed == 1 && pmp_link_unsent(a) == 0); /* released once, when written */
    CHECK(s_is(&parts[0], "big") && zmq_msg_size(&parts[1]) == size);
    const unsigned char *got = zmq_msg_data(&parts[1]);
    for (size_t i = 0; i < size; i += 4093)
        CHECK(got[i] == (unsigned char)(i * 7 + 3));
    CHECK(got[size - 1] == (unsigned char)((size - 1) * 7 + 3));
    /* a frame the receiver moves out stays valid after the next recv */
    zmq_msg_t kept;
    zmq_msg_init(&kept);
    zmq_msg_move(&kept, &parts[1]);
    s_text(&m[0], "next");
    CHECK(pmp_link_send(a, m, 1) == 0);
    CHECK(s_pump(a, b, &parts, &n) == 1 && n == 1 && s_is(&parts[0], "next"));
    CHECK(zmq_msg_size(&kept) == size && ((unsigned char *)zmq_msg_data(&kept))[5] == 38);
    zmq_msg_close(&kept);
    /* queued but never written: released by destroy */
    unsigned char *unsent = malloc(size);
    CHECK(unsent);
    memset(unsent, 1, size);
    CHECK(zmq_msg_init_data(&m[0], unsent, size, s_free, NULL) == 0);
    CHECK(pmp_link_send(a, m, 1) == 0 && pmp_link_unsent(a) > 0);
    pmp_link_destroy(&a);
    CHECK(s_freed == 2);
    pmp_link_destroy(&b);
}

static void s_limits(void)
{
    pmp_link_t *a, *b;
    s_pair(&a, &b, 16);
    zmq_msg_t m;
    s_text(&m, "exactly sixteen!");
    CHECK(pmp_link_send(a, &m, 1) == 0);
    zmq_msg_t *parts;
    size_t n;
    CHECK(pmp_link_recv(b, &parts, &n) == 1 && n == 1);
    s_text(&m, "seventeen bytes!!");
    CHECK(pmp_link_send(a, &m, 1) == 0);
    CHECK(pmp_link_recv(b, &parts, &n) == -1 && errno == EPROTO);
    pmp_link_destroy(&a);
    pmp_link_destroy(&b);

    /* a raised limit applies from then on */
    s_pair(&a, &b, 4);
    pmp_link_set_max_frame(b, 1024);
    s_text(&m, "longer than four");
    CHECK(pmp_link_send(a, &m, 1) == 0);
    CHECK(pmp_link_recv(b, &parts, &n) == 1 && s_is(&parts[0], "longer than four"));
    pmp_link_destroy(&a);
    pmp_link_destroy(&b);

    /* more frames than a message may have */
    s_pair(&a, &b, PMP_LINK_MAX_FRAME);
    size_t count = (size_t)PMP_MAX_FRAMES + 2;
    zmq_msg_t *many = malloc(count * sizeof *many);
    CHECK(many);
    for (size_t i = 0; i < count; i++)
        zmq_msg_init(&many[i]);
    CHECK(pmp_link_send(a, many, count) == 0);
    int rc;
    while ((rc = pmp_link_recv(b, &parts, &n)) == 0)
        CHECK(pmp_link_flush(a) == 0);
    CHECK(rc == -1 && errno == EPROTO);
    free(many);
    pmp_link_destroy(&a);
    pmp_link_destroy(&b);

    /* a prefix that announces more than any memory */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    b = pmp_link_new(sv[1], PMP_LINK_MAX_FRAME);
    CHECK(write(sv[0], "\xff\xff\xff\xff\xff\xff\xff\x7f", 8) == 8);
    CHECK(pmp_link_recv(b, &parts, &n) == -1 && errno == EPROTO);
    close(sv[0]);
    pmp_link_destroy(&b);
}

static void s_greeting(void)
{
    zmq_msg_t g;
    CHECK(pmp_link_greeting(&g, "secret") == 0);
    CHECK(zmq_msg_size(&g) == 14 && memcmp(zmq_msg_data(&g), PMP_LINK_MAGIC, 4) == 0);
    const unsigned char *pw;
    size_t len;
    CHECK(pmp_link_greeting_decode(zmq_msg_data(&g), zmq_msg_size(&g), &pw, &len, NULL) == 0);
    CHECK(len == 6 && memcmp(pw, "secret", 6) == 0);
    unsigned char bad[16];
    memcpy(bad, zmq_msg_data(&g), 14);
    bad[4] = 2; /* another version */
    pmp_error_t err;
    CHECK(pmp_link_greeting_decode(bad, 14, &pw, &len, &err) == -1 && errno == EPROTO);
    CHECK(strstr(err.text, "version 2") != NULL);
    bad[4] = 1;
    bad[0] = 'X'; /* another magic */
    CHECK(pmp_link_greeting_decode(bad, 14, &pw, &len, &err) == -1 && errno == EPROTO);
    CHECK(pmp_link_greeting_decode(bad, 5, &pw, &len, &err) == -1); /* short */
    zmq_msg_close(&g);
    char longpw[PMP_LINK_GREETING_MAX];
    memset(longpw, 'x', sizeof longpw - 1);
    longpw[sizeof longpw - 1] = '\0';
    CHECK(pmp_link_greeting(&g, longpw) == -1 && errno == EINVAL);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    s_messages();
    s_large();
    s_limits();
    s_greeting();
    printf("test_link: ok\n");
    return 0;
}
