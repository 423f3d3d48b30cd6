/*
 * fuzz_link.c - the local link's reader (pmp_link.c) under the fuzz
 * harness of fuzz_protocol.c, which calls pmp_fuzz_link() for every input.
 *
 * Why: a link reads the bytes of a connection that has proven nothing yet
 * (the greeting is read by the same code), so its framing must hold
 * against any byte stream.  How: the input is written into one end of a
 * socketpair, which is then closed, and the other end is read to its end
 * twice: with the greeting's limit (PMP_LINK_GREETING_MAX, as a new
 * connection is read) and with a larger one (S_TRUSTED_MAX, as an admitted
 * one is; not PMP_LINK_MAX_FRAME, whose allocations AddressSanitizer
 * would refuse).  Invariants (a violation aborts): every message has at
 * least one frame, no frame exceeds the limit, the frames' bytes never
 * exceed the input; the reading ends with -1 and errno ECONNRESET (the
 * end of the input) or EPROTO (a frame over the limit, too many frames);
 * the first frame goes through the greeting decoder, which accepts only
 * what pmp_link_greeting() would write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_protocol.h"
#include "pmp_link.h"

#define S_TRUSTED_MAX (1u << 20)

static void s_fail(const char *what)
{
    fprintf(stderr, "fuzz_link: %s\n", what);
    abort();
}

static void s_read_all(const uint8_t *data, size_t size, uint64_t limit)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return;
    int sndbuf = (int)(size + 4096);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    size_t written = 0;
    while (written < size) { /* what does not fit is left out */
        ssize_t w = write(sv[0], data + written, size - written);
        if (w <= 0)
            break;
        written += (size_t)w;
    }
    close(sv[0]);
    pmp_link_t *link = pmp_link_new(sv[1], limit);
    if (!link)
        return;
    size_t total = 0;
    int first = 1;
    for (;;) {
        zmq_msg_t *parts;
        size_t n;
        int rc = pmp_link_recv(link, &parts, &n);
        if (rc < 0) {
            if (errno != ECONNRESET && errno != EPROTO)
                s_fail("the reading ended with an unexpected errno");
            break;
        }
        if (rc == 0)
            s_fail("a closed connection read as 'nothing yet'");
        if (n < 1)
            s_fail("a message without frames");
        for (size_t i = 0; i < n; i++) {
            size_t len = zmq_msg_size(&parts[i]);
            if (len > limit)
                s_fail("a frame over the limit");
            total += len + PMP_LINK_PREFIX_SIZE;
        }
        if (total > written)
            s_fail("more bytes read than written");
        if (first) {
            const unsigned char *pw;
            size_t pwlen;
            if (pmp_link_greeting_decode(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), &pw,
                                         &pwlen, NULL) == 0) {
                zmq_msg_t again;
                char *text = malloc(pwlen + 1);
                if (!text)
                    s_fail("out of memory");
                memcpy(text, pw, pwlen);
                text[pwlen] = '\0';
                if (strlen(text) == pwlen && pmp_link_greeting(&again, text) == 0) {
                    if (zmq_msg_size(&again) != zmq_msg_size(&parts[0]) ||
                        memcmp(zmq_msg_data(&again), zmq_msg_data(&parts[0]),
                               zmq_msg_size(&again)) != 0)
                        s_fail("an accepted greeting that pmp_link_greeting writes otherwise");
                    zmq_msg_close(&again);
                }
                free(text);
            }
            first = 0;
        }
    }
    pmp_link_destroy(&link);
}

void pmp_fuzz_link(const uint8_t *data, size_t size)
{
    s_read_all(data, size, PMP_LINK_GREETING_MAX);
    s_read_all(data, size, S_TRUSTED_MAX);
}
