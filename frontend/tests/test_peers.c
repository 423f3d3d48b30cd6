/*
 * test_peers.c - the executor with hand-made ZeroMQ peers in place of the
 * runtime (unit.peers.<case>): malformed and foreign messages dropped,
 * groups over TCP with CURVE, a hostname that cannot be bound, a group
 * that becomes unreachable, batches of tasks and replies.  Usage and exit status as
 * test_executor.c.
 */
#include <zmq.h>

#include "executor_harness.h"
#include "pmp_credentials.h"

/* Gives a peer socket the executor's credentials (as the runtime does). */
static void s_peer_auth(void *sock, pmp_executor_t *ex)
{
    pmp_credentials_t c;
    pmp_error_t err = {{0}};
    if (pmp_credentials_read(s_cred_path(ex), &c, &err) < 0)
        fprintf(stderr, "%s\n", err.text);
    CHECK(c.mechanism != 0);
    if (c.mechanism == PMP_CREDENTIALS_PLAIN) {
        CHECK(zmq_setsockopt(sock, ZMQ_PLAIN_USERNAME, PMP_CREDENTIALS_USER,
                             strlen(PMP_CREDENTIALS_USER)) == 0);
        CHECK(zmq_setsockopt(sock, ZMQ_PLAIN_PASSWORD, c.password, 40) == 0);
    } else {
        CHECK(zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c.server_public, 40) == 0);
        CHECK(zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c.client_public, 40) == 0);
        CHECK(zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c.client_secret, 40) == 0);
    }
}

static void s_peer_send(void *sock, int type, uint64_t id, const char *payload, int nframes)
{
    pmp_header_t hdr = {.type = (uint16_t)type, .task_id = id, .nframes = (uint32_t)nframes};
    unsigned char buf[PMP_HEADER_SIZE];
    pmp_header_encode(&hdr, buf);
    CHECK(zmq_send(sock, buf, sizeof buf, payload ? ZMQ_SNDMORE : 0) == sizeof buf);
    if (payload)
        CHECK(zmq_send(sock, payload, strlen(payload), 0) >= 0);
}

/* An executor of one group, launching nothing, listening on TCP loopback
 * (ZeroMQ; a local link's peers are in test_links.c). */
static pmp_executor_t *s_new_tcp(int depth)
{
    pmp_executor_config_t cfg = s_cfg(1, 1, depth, NULL);
    cfg.launch = 0;
    cfg.hostname = "127.0.0.1";
    pmp_executor_t *ex = pmp_executor_new(&cfg, NULL);
    CHECK(ex);
    return ex;
}

static void *s_peer_new(void *ctx, pmp_executor_t *ex, int how);

/* Foreign, malformed and unexpected messages over ZeroMQ (TCP) are dropped
 * without a completion; the executor keeps working for a well-behaved
 * peer. */
static void s_case_malformed(void)
{
    pmp_executor_t *ex = s_new_tcp(1);
    void *ctx = zmq_ctx_new();
    void *sock = s_peer_new(ctx, ex, 1);
    CHECK(zmq_send(sock, "garbage", 7, 0) == 7);                    /* short header */
    CHECK(zmq_send(sock, "XXXXXXXXXXXXXXXXXXXXXXXX", 24, 0) == 24); /* foreign magic */
    s_peer_send(sock, PMP_MSG_RESULT, 1, "r", 1);                   /* no hello yet */
    s_peer_send(sock, PMP_MSG_TASK, 1, "t", 1);                     /* wrong direction */
    s_peer_send(sock, PMP_MSG_HELLO, 0, "group=zero", 1);           /* bad hello */
    s_peer_send(sock, PMP_MSG_HELLO, 0, "x", 3);                    /* frame count */
    CHECK(s_submit_text(ex, 1, "x") == 0);
    CHECK(pmp_executor_wait(ex, 500) == NULL && errno == EAGAIN);
    CHECK(pmp_executor_pending(ex) == 1);
    char text[2048];
    s_hello_text("testhost", text, sizeof text);
    s_peer_send(sock, PMP_MSG_HELLO, 0, text, 1);
    s_wait_hellos(ex, 1);
    s_peer_send(sock, PMP_MSG_HELLO, 0, text, 1); /* a second hello: dropped */
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    CHECK(zmq_poll(&item, 1, 5000) == 1);
    zmq_msg_t m;
    zmq_msg_init(&m);
    CHECK(zmq_msg_recv(&m, sock, 0) == PMP_HEADER_SIZE);
    pmp_header_t hdr;
    CHECK(pmp_header_decode(zmq_msg_data(&m), zmq_msg_size(&m), &hdr, NULL) == 0);
    CHECK(hdr.type == PMP_MSG_TASK && hdr.task_id == 1 && hdr.nframes == 1);
    CHECK(zmq_msg_recv(&m, sock, 0) == 1 && !zmq_msg_more(&m));
    zmq_msg_close(&m);
    s_peer_send(sock, PMP_MSG_RESULT, 2, "wrong task", 1); /* not in flight: dropped */
    s_peer_send(sock, PMP_MSG_RESULT, 1, "done", 1);
    pmp_completion_t *c = s_wait(ex, 5000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_task_id(c) == 1);
    CHECK(s_frame_is(c, 0, "done"));
    pmp_completion_destroy(&c);
    s_peer_send(sock, PMP_MSG_RESULT, 1, "again", 1); /* completed already: dropped */
    pmp_executor_close(ex);
    CHECK(zmq_poll(&item, 1, 5000) == 1); /* SHUTDOWN */
    zmq_msg_init(&m);
    CHECK(zmq_msg_recv(&m, sock, 0) == PMP_HEADER_SIZE);
    CHECK(pmp_header_decode(zmq_msg_data(&m), zmq_msg_size(&m), &hdr, NULL) == 0);
    CHECK(hdr.type == PMP_MSG_SHUTDOWN && hdr.nframes == 1);
    CHECK(zmq_msg_recv(&m, sock, 0) == 0);
    zmq_msg_close(&m);
    CHECK(pmp_executor_wait(ex, 300) == NULL && errno == EAGAIN); /* waits for the goodbye */
    s_peer_send(sock, PMP_MSG_GOODBYE, 0, "", 1);
    c = s_wait(ex, 5000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_CLOSED);
    pmp_completion_destroy(&c);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    s_destroy(&ex, 0);
}

/* A peer socket connected to the executor: how = 0 no security, 1 the
 * executor's credentials, 2 PLAIN with a wrong password, 3 CURVE with a
 * server key of its own, 4 CURVE with the right server key but a foreign
 * client key. */
static void *s_peer_new(void *ctx, pmp_executor_t *ex, int how)
{
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    char key_pub[41], key_sec[41], srv_pub[41], srv_sec[41];
    CHECK(zmq_curve_keypair(key_pub, key_sec) == 0 && zmq_curve_keypair(srv_pub, srv_sec) == 0);
    if (how == 1) {
        s_peer_auth(sock, ex);
    } else if (how == 2) {
        zmq_setsockopt(sock, ZMQ_PLAIN_USERNAME, PMP_CREDENTIALS_USER,
                       strlen(PMP_CREDENTIALS_USER));
        zmq_setsockopt(sock, ZMQ_PLAIN_PASSWORD, key_pub, 40);
    } else if (how == 3 || how == 4) {
        pmp_credentials_t c;
        memset(&c, 0, sizeof c);
        if (how == 4)
            CHECK(pmp_credentials_read(s_cred_path(ex), &c, NULL) == 0);
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, how == 4 ? c.server_public : srv_pub, 40);
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, key_pub, 40);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, key_sec, 40);
    }
    CHECK(zmq_connect(sock, pmp_executor_endpoint(ex)) == 0);
    return sock;
}

/* Sends a HELLO of one group of one rank from host. */
static void s_peer_hello(void *sock, const char *host)
{
    char text[2048];
    s_hello_text(host, text, sizeof text);
    s_peer_send(sock, PMP_MSG_HELLO, 0, text, 1);
}

/* TCP + CURVE on loopback: the (fake) runtime authenticates with the keys
 * of the file and works; the file is gone after start-up; foreign keys are
 * refused. */
static void s_case_tcp(void)
{
    pmp_executor_config_t cfg = s_cfg(2, 1, 1, NULL);
    cfg.hostname = "127.0.0.1";
    pmp_error_t err = {{0}};
    pmp_executor_t *ex = pmp_executor_new(&cfg, &err);
    if (!ex)
        fprintf(stderr, "%s\n", err.text);
    CHECK(ex);
    CHECK(strncmp(pmp_executor_endpoint(ex), "tcp://127.0.0.1:", 16) == 0);
    CHECK(atoi(pmp_executor_endpoint(ex) + 16) > 0);
    s_wait_hellos(ex, 2);
    CHECK(!s_exists(s_cred_path(ex), 0, 5000));
    CHECK(s_submit_text(ex, 1, "over tcp") == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && s_frame_is(c, 0, "over tcp"));
    pmp_completion_destroy(&c);
    s_destroy(&ex, 0);

    /* foreign peers: no security, a server key of their own, the right
     * server key with a foreign client key; then the right keys (no launch,
     * so that the file stays until the hello) */
    cfg.launch = 0;
    cfg.ranks = 1;
    ex = pmp_executor_new(&cfg, &err);
    CHECK(ex);
    CHECK(s_submit_text(ex, 3, "secret task") == 0);
    void *ctx = zmq_ctx_new();
    void *bad[3] = {s_peer_new(ctx, ex, 0), s_peer_new(ctx, ex, 3), s_peer_new(ctx, ex, 4)};
    for (int i = 0; i < 3; i++)
        s_peer_hello(bad[i], "intruder");
    CHECK(pmp_executor_wait(ex, 1500) == NULL && errno == EAGAIN);
    for (int i = 0; i < 3; i++) {
        zmq_pollitem_t item = {.socket = bad[i], .events = ZMQ_POLLIN};
        CHECK(zmq_poll(&item, 1, 100) == 0);
        zmq_close(bad[i]);
    }
    void *good = s_peer_new(ctx, ex, 1);
    s_peer_hello(good, "runtime");
    s_wait_hellos(ex, 1);
    CHECK(!s_exists(s_cred_path(ex), 0, 5000));
    zmq_pollitem_t item = {.socket = good, .events = ZMQ_POLLIN};
    CHECK(zmq_poll(&item, 1, 5000) == 1);
    zmq_close(good);
    zmq_ctx_term(ctx);
    s_destroy(&ex, 0);
}

/* A wildcard or an address that is not this host's is refused clearly. */
static void s_case_hostname_invalid(void)
{
    const char *bad[] = {"*", "0.0.0.0", "::", "", "no-such-interface0", "203.0.113.77"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pmp_executor_config_t cfg = s_cfg(1, 1, 1, NULL);
        cfg.launch = 0;
        cfg.hostname = bad[i];
        pmp_error_t err = {{0}};
        int before = s_tmpdir_entries();
        errno = 0;
        CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL);
        CHECK(strstr(err.text, "hostname") != NULL);
        CHECK(strstr(err.text, bad[i]) != NULL);
        CHECK(i > 1 || strstr(err.text, "wildcard") != NULL);
        CHECK(s_tmpdir_entries() == before); /* nothing left behind */
    }
}

/* A group whose connection vanished (no goodbye, no job to watch) is found
 * out at the next send: its task in flight completes as BROKEN, the task
 * being sent goes back to the queue. */
static void s_case_unreachable(void)
{
    pmp_executor_t *ex = s_new_tcp(2);
    void *ctx = zmq_ctx_new();
    void *sock = s_peer_new(ctx, ex, 1);
    char text[2048];
    s_hello_text("testhost", text, sizeof text);
    s_peer_send(sock, PMP_MSG_HELLO, 0, text, 1);
    s_wait_hellos(ex, 1);
    CHECK(s_submit_text(ex, 1, "x") == 0);
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    CHECK(zmq_poll(&item, 1, 5000) == 1); /* task 1 arrived: in flight */
    zmq_close(sock);
    zmq_ctx_term(ctx);
    usleep(300000); /* the ROUTER notices the disconnection */
    CHECK(s_submit_text(ex, 2, "y") == 0);
    pmp_completion_t *c = s_wait(ex, 5000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_BROKEN && pmp_completion_task_id(c) == 1);
    CHECK(strstr(pmp_completion_text(c), "unreachable"));
    pmp_completion_destroy(&c);
    CHECK(pmp_executor_pending(ex) == 1); /* task 2 waits for another group */
    s_destroy(&ex, 0);
}

/* Receives one ZeroMQ message (up to cap frames) within 5 s into parts;
 * returns its frame count. */
static size_t s_peer_recv(void *sock, zmq_msg_t *parts, size_t cap)
{
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    CHECK(zmq_poll(&item, 1, 5000) == 1);
    size_t n = 0;
    int more = 1;
    while (more) {
        CHECK(n < cap);
        zmq_msg_init(&parts[n]);
        CHECK(zmq_msg_recv(&parts[n], sock, 0) >= 0);
        more = zmq_msg_more(&parts[n]);
        n++;
    }
    return n;
}

/* Splits a received ZeroMQ message into its protocol messages (as the
 * runtime does), storing each TASK's id and payload text (up to max); the
 * ids of a DEFINE are stored negated.  Returns the number of messages. */
static size_t s_split(zmq_msg_t *parts, size_t n, long *ids, char (*texts)[16], size_t max)
{
    size_t k = 0;
    for (size_t at = 0; at < n;) {
        pmp_header_t hdr;
        pmp_error_t err = {{0}};
        CHECK(pmp_header_next(zmq_msg_data(&parts[at]), zmq_msg_size(&parts[at]), n - at, 0, &hdr,
                              &err) == 0);
        CHECK(k < max && hdr.nframes == 1);
        ids[k] = hdr.type == PMP_MSG_DEFINE ? -(long)hdr.task_id : (long)hdr.task_id;
        size_t len = zmq_msg_size(&parts[at + 1]);
        CHECK(len < sizeof texts[k]);
        memcpy(texts[k], zmq_msg_data(&parts[at + 1]), len);
        texts[k][len] = '\0';
        k++;
        at += 1 + hdr.nframes;
    }
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    return k;
}

/* Batches over ZeroMQ: a leader whose hello says batch=N gets the tasks it
 * has room for in one ZeroMQ message, in queue order, never past a
 * broadcast queued after them, and may answer several in one message; a
 * leader that does not say so gets one task a message.  A batch whose
 * second header is malformed delivers the first reply only. */
static void s_case_batch(void)
{
    for (int batching = 1; batching >= 0; batching--) {
        pmp_executor_t *ex = s_new_tcp(8);
        /* tasks 1..3, a DEFINE, tasks 4..10: queued before the group comes */
        char text[2048];
        for (uint64_t id = 1; id <= 10; id++) {
            if (id == 4) {
                pmp_buffer_t b = {.data = "fn", .size = 2};
                CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 77, &b, 1, NULL) == 0);
            }
            snprintf(text, sizeof text, "t%llu", (unsigned long long)id);
            CHECK(s_submit_text(ex, id, text) == 0);
        }
        void *ctx = zmq_ctx_new();
        void *sock = s_peer_new(ctx, ex, 1);
        s_hello_text("testhost", text, sizeof text);
        if (batching)
            strcat(text, "batch=64\n");
        s_peer_send(sock, PMP_MSG_HELLO, 0, text, 1);
        s_wait_hellos(ex, 1);

        /* what arrives: 1..3, the DEFINE, 4..8 (the depth), in this order */
        long want[] = {1, 2, 3, -77, 4, 5, 6, 7, 8};
        long got[16];
        char texts[16][16];
        size_t ngot = 0, nmsgs = 0;
        size_t sizes[16];
        while (ngot < sizeof want / sizeof want[0]) {
            zmq_msg_t parts[64];
            size_t n = s_peer_recv(sock, parts, 64);
            size_t k = s_split(parts, n, got + ngot, texts + ngot, 16 - ngot);
            sizes[nmsgs++] = k;
            ngot += k;
        }
        CHECK(ngot == sizeof want / sizeof want[0]);
        for (size_t i = 0; i < ngot; i++) {
            CHECK(got[i] == want[i]);
            if (got[i] > 0) {
                snprintf(text, sizeof text, "t%ld", got[i]);
                CHECK(strcmp(texts[i], text) == 0);
            }
        }
        if (batching) { /* tasks 1..3; the DEFINE alone; tasks 4..8 */
            CHECK(nmsgs == 3 && sizes[0] == 3 && sizes[1] == 1 && sizes[2] == 5);
        } else {
            CHECK(nmsgs == ngot);
        }

        /* replies: 1..3 in one message, 4 then a malformed header in one */
        for (uint64_t id = 1; id <= 3; id++) {
            pmp_header_t hdr = {.type = PMP_MSG_RESULT, .task_id = id, .nframes = 1};
            unsigned char buf[PMP_HEADER_SIZE];
            pmp_header_encode(&hdr, buf);
            snprintf(text, sizeof text, "r%llu", (unsigned long long)id);
            CHECK(zmq_send(sock, buf, sizeof buf, ZMQ_SNDMORE) == sizeof buf);
            CHECK(zmq_send(sock, text, strlen(text), id < 3 ? ZMQ_SNDMORE : 0) >= 0);
        }
        pmp_header_t hdr = {.type = PMP_MSG_RESULT, .task_id = 4, .nframes = 1};
        unsigned char buf[PMP_HEADER_SIZE];
        pmp_header_encode(&hdr, buf);
        CHECK(zmq_send(sock, buf, sizeof buf, ZMQ_SNDMORE) == sizeof buf);
        CHECK(zmq_send(sock, "r4", 2, ZMQ_SNDMORE) == 2);
        CHECK(zmq_send(sock, "not a header", 12, ZMQ_SNDMORE) == 12);
        CHECK(zmq_send(sock, "x", 1, 0) == 1);
        for (uint64_t id = 1; id <= 4; id++) {
            pmp_completion_t *c = s_wait(ex, 5000);
            snprintf(text, sizeof text, "r%llu", (unsigned long long)id);
            CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_task_id(c) == id);
            CHECK(s_frame_is(c, 0, text));
            pmp_completion_destroy(&c);
        }
        CHECK(pmp_executor_wait(ex, 300) == NULL && errno == EAGAIN);
        /* the 4 freed places: tasks 9 and 10, in one message when batching */
        zmq_msg_t parts[64];
        size_t n = s_peer_recv(sock, parts, 64);
        size_t k = s_split(parts, n, got, texts, 16);
        CHECK(got[0] == 9 && k == (batching ? 2u : 1u));
        zmq_close(sock);
        zmq_ctx_term(ctx);
        s_destroy(&ex, 0);
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* as in a Python process */
    static const s_case_t cases[] = {
        {"malformed", s_case_malformed},
        {"tcp", s_case_tcp},
        {"hostname_invalid", s_case_hostname_invalid},
        {"unreachable", s_case_unreachable},
        {"batch", s_case_batch},
    };
    return s_harness_main(argc, argv, cases, sizeof cases / sizeof cases[0], "unit.peers");
}
