/*
 * test_links.c - the executor's local links (pmp_executor_links.c over
 * pmp_link.h) seen from a peer: who gets in, what is dropped, and what
 * happens when a group's leader closes its end.  The peers here are links
 * made by hand in this process; the executor launches nothing (launch 0).
 *
 *   test_links <case> <fake_runtime> <mpiexec> <flavour>   (harness args)
 */
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <zmq.h>

#include "executor_harness.h"
#include "pmp_credentials.h"
#include "pmp_link.h"
#include "pmp_protocol.h"

/* A connection to the executor's socket, not greeted yet. */
static pmp_link_t *s_connect(pmp_executor_t *ex)
{
    const char *endpoint = pmp_executor_endpoint(ex);
    CHECK(strncmp(endpoint, "ipc://", 6) == 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", endpoint + 6);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    pmp_link_t *link = pmp_link_new(fd, PMP_LINK_MAX_FRAME);
    CHECK(link);
    return link;
}

/* Sends the greeting with password (NULL: the executor's own). */
static void s_greet(pmp_link_t *link, pmp_executor_t *ex, const char *password)
{
    pmp_credentials_t c;
    memset(&c, 0, sizeof c);
    if (!password) {
        CHECK(pmp_credentials_read(s_cred_path(ex), &c, NULL) == 0);
        password = c.password;
    }
    zmq_msg_t g;
    CHECK(pmp_link_greeting(&g, password) == 0);
    CHECK(pmp_link_send(link, &g, 1) == 0 && pmp_link_flush_wait(link, 5000) == 0);
}

/* Sends frames (n >= 1 byte strings) as one message. */
static int s_send_frames(pmp_link_t *link, const char *const *frames, const size_t *sizes, size_t n)
{
    zmq_msg_t parts[8];
    for (size_t i = 0; i < n; i++) {
        CHECK(zmq_msg_init_size(&parts[i], sizes[i]) == 0);
        memcpy(zmq_msg_data(&parts[i]), frames[i], sizes[i]);
    }
    if (pmp_link_send(link, parts, n) < 0)
        return -1;
    return pmp_link_flush_wait(link, 5000);
}

/* Sends a protocol message of type with one payload frame (or none);
 * returns 0, or -1 when the executor has closed the link. */
static int s_try_send(pmp_link_t *link, int type, uint64_t id, const char *payload, int nframes)
{
    pmp_header_t hdr = {.type = (uint16_t)type, .task_id = id, .nframes = (uint32_t)nframes};
    char buf[PMP_HEADER_SIZE];
    pmp_header_encode(&hdr, (unsigned char *)buf);
    const char *frames[2] = {buf, payload};
    size_t sizes[2] = {sizeof buf, payload ? strlen(payload) : 0};
    return s_send_frames(link, frames, sizes, payload ? 2 : 1);
}

/* s_try_send, which must succeed. */
static void s_send(pmp_link_t *link, int type, uint64_t id, const char *payload, int nframes)
{
    CHECK(s_try_send(link, type, id, payload, nframes) == 0);
}

/* Says hello as the only group of one rank on host; returns 0, or -1
 * when the executor has closed the link. */
static int s_try_hello(pmp_link_t *link, const char *host)
{
    char text[2048];
    s_hello_text(host, text, sizeof text);
    return s_try_send(link, PMP_MSG_HELLO, 0, text, 1);
}

static void s_hello(pmp_link_t *link, const char *host)
{
    CHECK(s_try_hello(link, host) == 0);
}

/* The next message within timeout_ms: 1 (its header decoded into *hdr and
 * its payload, if any, copied into payload), 0 (none came), -1 (the
 * executor closed the link). */
static int s_recv(pmp_link_t *link, int timeout_ms, pmp_header_t *hdr, char *payload, size_t cap)
{
    int64_t end = s_now_ms() + timeout_ms;
    for (;;) {
        zmq_msg_t *parts;
        size_t n;
        int rc = pmp_link_recv(link, &parts, &n);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            CHECK(pmp_header_decode(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), hdr, NULL) ==
                  0);
            if (payload) {
                size_t l = n > 1 ? zmq_msg_size(&parts[1]) : 0;
                l = l < cap - 1 ? l : cap - 1;
                memcpy(payload, n > 1 ? zmq_msg_data(&parts[1]) : "", l);
                payload[l] = '\0';
            }
            return 1;
        }
        int64_t left = end - s_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = pmp_link_fd(link), .events = POLLIN};
        poll(&p, 1, (int)left);
    }
}

/* ---- cases ---------------------------------------------------------------- */

/* Only a connection that greets with the executor's password gets
 * anything: one that says hello without greeting, one with a wrong
 * password and one that sends bytes of no format are closed without a
 * byte; the right one gets the queued task; the credentials file goes
 * with the only group's hello. */
static void s_case_auth(void)
{
    pmp_executor_t *ex = s_new_unlaunched(1, 1, 1);
    const char *cred = s_cred_path(ex);
    CHECK(s_exists(cred, 1, 0));
    CHECK(s_submit_text(ex, 7, "task") == 0);
    pmp_link_t *bad[3];
    bad[0] = s_connect(ex);
    s_hello(bad[0], "intruder"); /* no greeting */
    bad[1] = s_connect(ex);
    s_greet(bad[1], ex, "0123456789012345678901234567890123456789");
    s_try_hello(bad[1], "intruder"); /* may find the link closed already */
    bad[2] = s_connect(ex);
    CHECK(write(pmp_link_fd(bad[2]), "\xff\xff\xff\xff\xff\xff\xff\x7fGET / HTTP/1.0\r\n", 24) ==
          24);
    CHECK(pmp_executor_wait(ex, 1000) == NULL && errno == EAGAIN); /* no hello, no task */
    pmp_header_t hdr;
    for (int i = 0; i < 3; i++) {
        CHECK(s_recv(bad[i], 2000, &hdr, NULL, 0) == -1); /* closed, nothing sent */
        pmp_link_destroy(&bad[i]);
    }
    CHECK(s_exists(cred, 1, 0)); /* still there: nobody said hello */

    pmp_link_t *good = s_connect(ex);
    s_greet(good, ex, NULL);
    s_hello(good, "runtime");
    s_wait_hellos(ex, 1);
    CHECK(!s_exists(cred, 0, 5000));
    char payload[64];
    CHECK(s_recv(good, 5000, &hdr, payload, sizeof payload) == 1);
    CHECK(hdr.type == PMP_MSG_TASK && hdr.task_id == 7 && strcmp(payload, "task") == 0);
    s_send(good, PMP_MSG_RESULT, 7, "done", 1);
    pmp_completion_t *c = s_wait(ex, 5000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && s_frame_is(c, 0, "done"));
    pmp_completion_destroy(&c);
    pmp_link_destroy(&good);
    s_destroy(&ex, 0);
}

/* After the greeting, malformed and unexpected messages are dropped
 * without a completion and the link stays; a first message that is not a
 * hello closes it; a well-behaved group works, and close() ends with its
 * goodbye. */
static void s_case_malformed(void)
{
    pmp_executor_t *ex = s_new_unlaunched(1, 1, 1);
    pmp_header_t hdr;
    pmp_link_t *rude = s_connect(ex);
    s_greet(rude, ex, NULL);
    s_send(rude, PMP_MSG_RESULT, 1, "r", 1); /* no hello first: closed */
    CHECK(s_recv(rude, 2000, &hdr, NULL, 0) == -1);
    pmp_link_destroy(&rude);

    pmp_link_t *link = s_connect(ex);
    s_greet(link, ex, NULL);
    s_hello(link, "testhost");
    s_wait_hellos(ex, 1);
    const char *garbage[] = {"garbage"};
    size_t gsize[] = {7};
    CHECK(s_send_frames(link, garbage, gsize, 1) == 0);  /* short header */
    s_send(link, PMP_MSG_TASK, 1, "t", 1);               /* wrong direction */
    s_send(link, PMP_MSG_HELLO, 0, "group=zero", 1);     /* a second hello */
    s_send(link, PMP_MSG_RESULT, 2, "not in flight", 1); /* no such task */
    s_send(link, PMP_MSG_RESULT, 1, "x", 3);             /* frame count */
    CHECK(s_submit_text(ex, 1, "x") == 0);
    char payload[64];
    CHECK(s_recv(link, 5000, &hdr, payload, sizeof payload) == 1);
    CHECK(hdr.type == PMP_MSG_TASK && hdr.task_id == 1 && strcmp(payload, "x") == 0);
    s_send(link, PMP_MSG_RESULT, 1, "done", 1);
    pmp_completion_t *c = s_wait(ex, 5000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_task_id(c) == 1);
    CHECK(s_frame_is(c, 0, "done"));
    pmp_completion_destroy(&c);
    s_send(link, PMP_MSG_RESULT, 1, "again", 1); /* completed already: dropped */
    pmp_executor_close(ex);
    CHECK(s_recv(link, 5000, &hdr, NULL, 0) == 1 && hdr.type == PMP_MSG_SHUTDOWN);
    CHECK(pmp_executor_wait(ex, 300) == NULL && errno == EAGAIN); /* waits for the goodbye */
    s_send(link, PMP_MSG_GOODBYE, 0, "", 1);
    c = s_wait(ex, 5000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_CLOSED);
    pmp_completion_destroy(&c);
    pmp_link_destroy(&link);
    s_destroy(&ex, 0);
}

/* A group whose leader closes its link without a goodbye (no job to
 * watch): its task in flight completes as BROKEN at once, saying so, and
 * the next task waits in the queue for another group. */
static void s_case_closed(void)
{
    pmp_executor_t *ex = s_new_unlaunched(1, 1, 1);
    pmp_link_t *link = s_connect(ex);
    s_greet(link, ex, NULL);
    s_hello(link, "testhost");
    s_wait_hellos(ex, 1);
    CHECK(s_submit_text(ex, 1, "x") == 0);
    pmp_header_t hdr;
    CHECK(s_recv(link, 5000, &hdr, NULL, 0) == 1 && hdr.task_id == 1); /* in flight */
    pmp_link_destroy(&link);
    pmp_completion_t *c = s_wait(ex, 5000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_BROKEN && pmp_completion_task_id(c) == 1);
    CHECK(strstr(pmp_completion_text(c), "closed its connection"));
    pmp_completion_destroy(&c);
    CHECK(s_submit_text(ex, 2, "y") == 0);
    CHECK(pmp_executor_wait(ex, 300) == NULL && errno == EAGAIN);
    CHECK(pmp_executor_pending(ex) == 1); /* queued, for the next group */
    s_destroy(&ex, 0);
}

/* The pipeline window opens only once every group of the job said hello:
 * with one of two groups there, after more results than the window needs
 * to open, a group still holds no more than the base depth (2), and the
 * rest waits for the second group. */
static void s_case_window(void)
{
    pmp_executor_config_t cfg = s_cfg(2, 1, 2, NULL);
    cfg.launch = 0;
    cfg.pipeline_depth_max = 32;
    pmp_error_t err = {{0}};
    pmp_executor_t *ex = pmp_executor_new(&cfg, &err);
    CHECK(ex != NULL);
    pmp_link_t *link = s_connect(ex);
    s_greet(link, ex, NULL);
    s_hello(link, "testhost");
    s_wait_hellos(ex, 1);
    uint64_t id = 1;
    for (int i = 0; i < 24; i++, id++) { /* quick answers: the window would open */
        CHECK(s_submit_text(ex, id, "x") == 0);
        pmp_header_t hdr;
        CHECK(s_recv(link, 5000, &hdr, NULL, 0) == 1 && hdr.task_id == id);
        s_send(link, PMP_MSG_RESULT, id, "r", 1);
        pmp_completion_t *c = s_wait(ex, 5000);
        CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT);
        pmp_completion_destroy(&c);
    }
    for (int i = 0; i < 6; i++)
        CHECK(s_submit_text(ex, id + (uint64_t)i, "x") == 0);
    pmp_header_t hdr;
    CHECK(s_recv(link, 5000, &hdr, NULL, 0) == 1 && hdr.task_id == id);
    CHECK(s_recv(link, 5000, &hdr, NULL, 0) == 1 && hdr.task_id == id + 1);
    CHECK(s_recv(link, 300, &hdr, NULL, 0) == 0); /* nothing more */
    CHECK(pmp_executor_pending(ex) == 4);
    pmp_link_destroy(&link);
    s_destroy(&ex, 0);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* as in a Python process */
    static const s_case_t cases[] = {
        {"auth", s_case_auth},
        {"malformed", s_case_malformed},
        {"closed", s_case_closed},
        {"window", s_case_window},
    };
    return s_harness_main(argc, argv, cases, sizeof cases / sizeof cases[0], "unit.links");
}
