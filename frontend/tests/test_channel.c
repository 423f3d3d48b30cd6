/*
 * test_channel.c - unit tests of pmp_channel (frontend/pmp_channel.h), the
 * transport of SocketInterface.
 *
 * Server and client live in this one process (ZeroMQ does the I/O in its
 * own threads, so one thread may drive both ends), except where a booted
 * program is the point: then this binary boots itself in "peer" mode, a
 * client that takes its keys from the environment like a real booted
 * program, echoes one instruction and exits.  Error paths: a client with
 * the wrong CURVE key gets nowhere, a garbage message is dropped, a peer
 * that leaves between the wait and the send does not block the send, a
 * program that crashes makes a waiting receive fail with its status and
 * stderr, a missing program is named, destroy leaves no process behind, and
 * a forked child can neither use nor stop the parent's channel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "pmp_channel.h"
#include "pmp_check.h"

extern char **environ;

static int s_freed = 0;

static void s_count_free(void *data, void *hint)
{
    (void)data;
    __atomic_add_fetch((int *)hint, 1, __ATOMIC_SEQ_CST);
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int s_process_gone(pid_t pid, double timeout)
{
    double end = s_now() + timeout;
    while (s_now() < end) {
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return 1;
        usleep(20000);
    }
    return 0;
}

static pmp_channel_t *s_client_for(pmp_channel_t *server, int port)
{
    pmp_error_t err;
    return pmp_channel_new_client("127.0.0.1", port, pmp_channel_server_public_key(server),
                                  pmp_channel_client_public_key(server),
                                  pmp_channel_client_secret_key(server), &err);
}

/* One instruction out, one reply back, with a zero-copy buffer. */
static void test_roundtrip(int curve)
{
    pmp_error_t err;
    pmp_channel_t *server = pmp_channel_new_server(NULL, curve, &err);
    CHECK(server);
    CHECK(pmp_channel_curve(server) == (curve && pmp_channel_has_curve()));
    int port = pmp_channel_bind_random_port(server, &err);
    CHECK(port > 0);
    CHECK(strncmp(pmp_channel_endpoint(server), "tcp://127.0.0.1:", 16) == 0);
    CHECK(pmp_channel_bind_random_port(server, &err) < 0 && errno == EALREADY);
    pmp_channel_t *client = s_client_for(server, port);
    CHECK(client);

    CHECK(pmp_channel_wait_writable(server, 5000, &err) == 0);
    static char big[100000];
    memset(big, 'b', sizeof big);
    int freed = 0;
    pmp_buffer_t bufs[2] = {{"payload", 7, NULL, NULL}, {big, sizeof big, s_count_free, &freed}};
    CHECK(pmp_channel_send(server, PMP_MSG_TASK, 7, 0, bufs, 2, &err) == 0);
    pmp_channel_msg_t *m = pmp_channel_recv(client, 5000, &err);
    CHECK(m);
    CHECK(m->type == PMP_MSG_TASK && m->task_id == 7 && m->nframes == 2);
    CHECK(pmp_frame_size(m->frames[0]) == 7 &&
          memcmp(pmp_frame_data(m->frames[0]), "payload", 7) == 0);
    CHECK(pmp_frame_size(m->frames[1]) == sizeof big);
    CHECK(((char *)pmp_frame_data(m->frames[1]))[sizeof big - 1] == 'b');
    pmp_frame_t *taken = m->frames[0];
    m->frames[0] = NULL;
    pmp_channel_msg_destroy(&m);
    CHECK(m == NULL);
    pmp_frame_destroy(&taken);

    pmp_buffer_t reply[1] = {{"ok", 2, NULL, NULL}};
    CHECK(pmp_channel_send(client, PMP_MSG_RESULT, 7, 0, reply, 1, &err) == 0);
    /* a client may not send a task, a server may not send a result */
    CHECK(pmp_channel_send(client, PMP_MSG_TASK, 7, 0, reply, 1, &err) < 0 && errno == EINVAL);
    CHECK(pmp_channel_send(server, PMP_MSG_RESULT, 7, 0, reply, 1, &err) < 0 && errno == EINVAL);
    CHECK(pmp_channel_send(server, PMP_MSG_TASK, 0, 0, reply, 1, &err) < 0 && errno == EINVAL);
    m = pmp_channel_recv(server, 5000, &err);
    CHECK(m);
    CHECK(m->type == PMP_MSG_RESULT && m->task_id == 7 && m->nframes == 1);
    CHECK(memcmp(pmp_frame_data(m->frames[0]), "ok", 2) == 0);
    pmp_channel_msg_destroy(&m);
    /* nothing more: a timeout */
    CHECK(pmp_channel_recv(server, 50, &err) == NULL && errno == EAGAIN);

    pmp_channel_destroy(&client, 0, 1);
    pmp_channel_destroy(&server, 0, 1);
    CHECK(server == NULL && client == NULL);
    CHECK(__atomic_load_n(&freed, __ATOMIC_SEQ_CST) == 1);
    pmp_channel_destroy(&server, 0, 1); /* NULL-safe */
}

/* Clients without this interface's client key never get through. */
static void test_wrong_key(void)
{
    if (!pmp_channel_has_curve()) {
        fprintf(stderr, "test_wrong_key: libzmq has no CURVE, skipped\n");
        return;
    }
    pmp_error_t err;
    pmp_channel_t *server = pmp_channel_new_server("127.0.0.1", 1, &err);
    CHECK(server);
    int port = pmp_channel_bind_random_port(server, &err);
    CHECK(port > 0);
    char pub[41], sec[41];
    CHECK(zmq_curve_keypair(pub, sec) == 0);
    /* right server key, foreign client key: ZAP says 400 */
    pmp_channel_t *intruder = pmp_channel_new_client(
        "127.0.0.1", port, pmp_channel_server_public_key(server), pub, sec, &err);
    CHECK(intruder);
    /* no keys at all: the CURVE handshake fails */
    pmp_channel_t *plain = pmp_channel_new_client("127.0.0.1", port, NULL, NULL, NULL, &err);
    CHECK(plain);
    CHECK(pmp_channel_wait_writable(server, 1500, &err) < 0 && errno == EAGAIN);
    /* the intruder never becomes writable, and nothing reaches the server */
    CHECK(pmp_channel_wait_writable(intruder, 300, &err) < 0 && errno == EAGAIN);
    CHECK(pmp_channel_wait_writable(plain, 300, &err) < 0 && errno == EAGAIN);
    CHECK(pmp_channel_recv(server, 500, &err) == NULL && errno == EAGAIN);
    pmp_channel_destroy(&intruder, 0, 1);
    pmp_channel_destroy(&plain, 0, 1);

    /* bad keys are refused up front */
    CHECK(pmp_channel_new_client("127.0.0.1", port, "short", pub, sec, &err) == NULL &&
          errno == EINVAL);
    CHECK(pmp_channel_new_client("127.0.0.1", 0, NULL, NULL, NULL, &err) == NULL &&
          errno == EINVAL);

    /* and the right client still gets in afterwards */
    pmp_channel_t *client = s_client_for(server, port);
    CHECK(client);
    CHECK(pmp_channel_wait_writable(server, 5000, &err) == 0);
    pmp_channel_destroy(&client, 0, 1);
    pmp_channel_destroy(&server, 0, 1);
}

/* A foreign peer's garbage is dropped; the next valid message arrives. */
static void test_garbage(void)
{
    pmp_error_t err;
    pmp_channel_t *server = pmp_channel_new_server(NULL, 0, &err);
    CHECK(server);
    int port = pmp_channel_bind_random_port(server, &err);
    CHECK(port > 0);
    void *ctx = zmq_ctx_new();
    void *raw = zmq_socket(ctx, ZMQ_PAIR);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    CHECK(zmq_connect(raw, ep) == 0);
    CHECK(zmq_send(raw, "GET / HTTP/1.0", 14, 0) == 14);
    unsigned char head[PMP_HEADER_SIZE];
    pmp_header_t hello = {.type = PMP_MSG_HELLO, .nframes = 1};
    pmp_header_encode(&hello, head); /* a valid header of an unexpected type */
    zmq_send(raw, head, sizeof head, ZMQ_SNDMORE);
    zmq_send(raw, "x", 1, 0);
    pmp_header_t res = {.type = PMP_MSG_RESULT, .task_id = 3, .nframes = 2};
    pmp_header_encode(&res, head); /* announces 2 frames, has 1 */
    zmq_send(raw, head, sizeof head, ZMQ_SNDMORE);
    zmq_send(raw, "x", 1, 0);
    res.nframes = 1;
    pmp_header_encode(&res, head);
    zmq_send(raw, head, sizeof head, ZMQ_SNDMORE);
    zmq_send(raw, "good", 4, 0);
    pmp_channel_msg_t *m = pmp_channel_recv(server, 5000, &err);
    CHECK(m);
    CHECK(m->type == PMP_MSG_RESULT && m->task_id == 3 && m->nframes == 1);
    CHECK(memcmp(pmp_frame_data(m->frames[0]), "good", 4) == 0);
    pmp_channel_msg_destroy(&m);
    int zero = 0;
    zmq_setsockopt(raw, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(raw);
    zmq_ctx_term(ctx);
    pmp_channel_destroy(&server, 0, 1);
}

static char **s_env_with_keys(pmp_channel_t *server)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 4, sizeof *env);
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "PYMPIPOOL_SOCKET_", 17) != 0)
            env[j++] = strdup(environ[i]);
    if (pmp_channel_curve(server)) {
        const char *names[3] = {"SERVER_KEY", "PUBLIC_KEY", "SECRET_KEY"};
        const char *keys[3] = {pmp_channel_server_public_key(server),
                               pmp_channel_client_public_key(server),
                               pmp_channel_client_secret_key(server)};
        for (int i = 0; i < 3; i++) {
            char *kv;
            if (asprintf(&kv, "PYMPIPOOL_SOCKET_%s=%s", names[i], keys[i]) < 0)
                abort();
            env[j++] = kv;
        }
    }
    env[j] = NULL;
    return env;
}

static void s_env_free(char **env)
{
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
}

/* The booted peer echoes one instruction; its exit is seen after the
 * reply was received. */
static void test_boot_peer(const char *self_exe)
{
    pmp_error_t err;
    pmp_channel_t *server = pmp_channel_new_server(NULL, -1, &err);
    CHECK(server);
    int port = pmp_channel_bind_random_port(server, &err);
    CHECK(port > 0);
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *argv[] = {self_exe, "peer", portstr, NULL};
    char **env = s_env_with_keys(server);
    int rc = pmp_channel_bootup(server, argv, NULL, (const char *const *)env, &err);
    s_env_free(env);
    CHECK(rc == 0);
    pid_t pid = pmp_channel_pid(server);
    CHECK(pid > 0);
    CHECK(pmp_channel_bootup(server, argv, NULL, NULL, &err) < 0 && errno == EALREADY);
    CHECK(pmp_channel_wait_writable(server, 10000, &err) == 0);
    pmp_buffer_t bufs[1] = {{"echo me", 7, NULL, NULL}};
    CHECK(pmp_channel_send(server, PMP_MSG_TASK, 11, 0, bufs, 1, &err) == 0);
    pmp_channel_msg_t *m = pmp_channel_recv(server, 10000, &err);
    CHECK(m);
    CHECK(m->type == PMP_MSG_RESULT && m->task_id == 11);
    CHECK(pmp_frame_size(m->frames[0]) == 7 &&
          memcmp(pmp_frame_data(m->frames[0]), "echo me", 7) == 0);
    pmp_channel_msg_destroy(&m);
    double t0 = s_now();
    m = pmp_channel_recv(server, -1, &err);
    CHECK(m == NULL && errno == ECHILD);
    CHECK(s_now() - t0 < 5.0);
    CHECK(strstr(err.text, "exited with status 0") != NULL);
    int status;
    CHECK(pmp_channel_exited(server, &status) == 1 && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0);
    CHECK(pmp_channel_wait_writable(server, 100, &err) < 0 && errno == ECHILD);
    pmp_channel_destroy(&server, 1000, 1);
    CHECK(s_process_gone(pid, 1.0));
}

/* A program that dies before it says anything: the waiting receive fails
 * within seconds with its status and its stderr. */
static void test_crash(void)
{
    pmp_error_t err;
    pmp_channel_t *server = pmp_channel_new_server(NULL, -1, &err);
    CHECK(server);
    CHECK(pmp_channel_bind_random_port(server, &err) > 0);
    const char *argv[] = {"sh", "-c", "sleep 0.2; echo 'pmp-test: marker 4711' >&2; exit 3", NULL};
    CHECK(pmp_channel_bootup(server, argv, NULL, NULL, &err) == 0);
    double t0 = s_now();
    pmp_channel_msg_t *m = pmp_channel_recv(server, -1, &err);
    CHECK(m == NULL && errno == ECHILD);
    CHECK(s_now() - t0 < 5.0);
    CHECK(strstr(err.text, "the booted program (sh pid") != NULL);
    CHECK(strstr(err.text, "exited with status 3") != NULL);
    CHECK(strstr(err.text, "marker 4711") != NULL);
    char *text = pmp_channel_exit_text(server);
    CHECK(text && strstr(text, "marker 4711"));
    free(text);
    pmp_channel_destroy(&server, 1000, 1);
}

static void test_missing_program(void)
{
    pmp_error_t err;
    err.text[0] = '\0';
    pmp_channel_t *server = pmp_channel_new_server(NULL, 0, &err);
    CHECK(server);
    const char *argv[] = {"pmp-no-such-program-4711", NULL};
    CHECK(pmp_channel_bootup(server, argv, NULL, NULL, &err) < 0 && errno == ENOENT);
    CHECK(strstr(err.text, "pmp-no-such-program-4711") != NULL);
    CHECK(pmp_channel_pid(server) == -1);
    const char *bad_cwd[] = {"sh", "-c", "true", NULL};
    CHECK(pmp_channel_bootup(server, bad_cwd, "/nonexistent-dir-4711", NULL, &err) < 0);
    CHECK(strstr(err.text, "/nonexistent-dir-4711") != NULL);
    const char *empty[] = {NULL};
    CHECK(pmp_channel_bootup(server, empty, NULL, NULL, &err) < 0 && errno == EINVAL);
    /* not bound: receive and send say so */
    CHECK(pmp_channel_recv(server, 10, &err) == NULL && errno == ENOTCONN);
    CHECK(pmp_channel_wait_writable(server, 10, &err) < 0 && errno == ENOTCONN);
    CHECK(pmp_channel_new_server("bad address", 0, &err) == NULL && errno == EINVAL);
    pmp_channel_destroy(&server, 0, 1);
}

/* destroy stops a program that ignores us: waiting, and in the background. */
static void test_destroy(int wait)
{
    pmp_error_t err;
    pmp_channel_t *server = pmp_channel_new_server(NULL, 0, &err);
    CHECK(server);
    CHECK(pmp_channel_bind_random_port(server, &err) > 0);
    /* ignores SIGTERM: needs the SIGKILL */
    const char *argv[] = {"sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30", NULL};
    CHECK(pmp_channel_bootup(server, argv, NULL, NULL, &err) == 0);
    pid_t pid = pmp_channel_pid(server);
    CHECK(pmp_channel_wait_writable(server, 100, &err) < 0 && errno == EAGAIN);
    CHECK(pmp_channel_exited(server, NULL) == 0);
    double t0 = s_now();
    pmp_channel_destroy(&server, 200, wait);
    if (wait) {
        CHECK(s_now() - t0 > 2.0); /* grace + time to SIGKILL */
        CHECK(kill(pid, 0) < 0 && errno == ESRCH);
        /* grandchildren were killed too (orphans are reaped by init) */
        CHECK(s_process_gone(-pid, 5.0));
    } else {
        CHECK(s_now() - t0 < 1.5);
        CHECK(s_process_gone(pid, 10.0));
        CHECK(s_process_gone(-pid, 10.0));
        usleep(200000); /* let the detached keeper free its state (LeakSanitizer) */
    }
}

/* A forked child finds the channel dead: every call fails at once with
 * PMP_EFORKED (a send calls no free_fn), destroy returns at once and leaves
 * the parent's program running; the parent goes on. */
static void test_fork(void)
{
    pmp_error_t err;
    pmp_channel_t *server = pmp_channel_new_server(NULL, -1, &err);
    CHECK(server);
    CHECK(pmp_channel_bind_random_port(server, &err) > 0);
    const char *argv[] = {"sleep", "30", NULL};
    CHECK(pmp_channel_bootup(server, argv, NULL, NULL, &err) == 0);
    pid_t program = pmp_channel_pid(server), parent = getpid();
    CHECK(pmp_channel_forked(server) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10);
        int ok = 1;
        double t0 = s_now();
        int freed = 0;
        char want[200];
        snprintf(want, sizeof want,
                 "this socket interface belongs to process %ld; it cannot be used in a "
                 "forked child (pid %ld)",
                 (long)parent, (long)getpid());
        pmp_buffer_t b[1] = {{"x", 1, s_count_free, &freed}};
        ok &= pmp_channel_forked(server) == 1;
        ok &= pmp_channel_send(server, PMP_MSG_TASK, 1, 0, b, 1, &err) < 0 && errno == PMP_EFORKED;
        ok &= strcmp(err.text, want) == 0 && freed == 0;
        ok &= pmp_channel_recv(server, -1, &err) == NULL && errno == PMP_EFORKED;
        ok &= pmp_channel_wait_writable(server, -1, &err) < 0 && errno == PMP_EFORKED;
        ok &= pmp_channel_bind_random_port(server, &err) < 0 && errno == PMP_EFORKED;
        ok &= pmp_channel_bootup(server, argv, NULL, NULL, &err) < 0 && errno == PMP_EFORKED;
        int status = 0;
        ok &= pmp_channel_exited(server, &status) < 0 && errno == PMP_EFORKED && status == -1;
        ok &= pmp_channel_exit_text(server) == NULL && errno == PMP_EFORKED;
        pmp_channel_destroy(&server, 5000, 1);
        ok &= server == NULL && s_now() - t0 < 1.0;
        ok &= kill(program, 0) == 0; /* the parent's program is left alone */
        if (!ok)
            fprintf(stderr, "fork: the child's checks failed\n");
        _exit(ok ? 0 : 1);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(pmp_channel_forked(server) == 0);
    CHECK(pmp_channel_exited(server, NULL) == 0);
    CHECK(pmp_channel_wait_writable(server, 50, &err) < 0 && errno == EAGAIN);
    pmp_channel_destroy(&server, 0, 1);
    CHECK(s_process_gone(program, 5.0));
}

/* SIGALRM during test_peer_left: the send blocked (the old bug). */
static void s_send_blocked(int sig)
{
    (void)sig;
    static const char text[] = "test_channel: a send to a peer that left blocked\n";
    ssize_t rc = write(2, text, sizeof text - 1);
    (void)rc;
    _exit(1);
}

/* A peer that leaves after the server saw it writable: the send that
 * follows must not wait for a peer that will never come back.  It returns
 * EAGAIN without taking the buffers (no free_fn called), the caller waits
 * again (and times out), and a new peer then gets the message sent again.
 * Before the fix, zmq_send blocked forever in here (signals did not help:
 * EINTR was retried), which is how SocketInterface.shutdown() hung after a
 * foreign peer had closed. */
static void test_peer_left(void)
{
    pmp_error_t err;
    pmp_channel_t *server = pmp_channel_new_server(NULL, 0, &err);
    CHECK(server);
    int port = pmp_channel_bind_random_port(server, &err);
    CHECK(port > 0);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    void *ctx = zmq_ctx_new();
    void *raw = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;
    zmq_setsockopt(raw, ZMQ_LINGER, &zero, sizeof zero);
    CHECK(zmq_connect(raw, ep) == 0);
    CHECK(pmp_channel_wait_writable(server, 5000, &err) == 0);
    zmq_close(raw);
    /* Let ZeroMQ's I/O thread see the connection end; the server's socket
     * learns of it only inside its next call, the send. */
    usleep(300000);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_send_blocked;
    sigaction(SIGALRM, &sa, &old);
    alarm(5);
    int freed = 0;
    static char big[100000];
    pmp_buffer_t bufs[2] = {{"payload", 7, NULL, NULL}, {big, sizeof big, s_count_free, &freed}};
    double t0 = s_now();
    int rc = pmp_channel_send(server, PMP_MSG_TASK, 5, 0, bufs, 2, &err);
    alarm(0);
    sigaction(SIGALRM, &old, NULL);
    CHECK(rc < 0 && errno == EAGAIN);
    CHECK(s_now() - t0 < 1.0);
    CHECK(__atomic_load_n(&freed, __ATOMIC_SEQ_CST) == 0); /* still the caller's */
    CHECK(pmp_channel_wait_writable(server, 200, &err) < 0 && errno == EAGAIN);
    /* a new peer: the same buffers go out, and are released once */
    raw = zmq_socket(ctx, ZMQ_PAIR);
    zmq_setsockopt(raw, ZMQ_LINGER, &zero, sizeof zero);
    CHECK(zmq_connect(raw, ep) == 0);
    CHECK(pmp_channel_wait_writable(server, 5000, &err) == 0);
    CHECK(pmp_channel_send(server, PMP_MSG_TASK, 5, 0, bufs, 2, &err) == 0);
    int timeout = 5000;
    zmq_setsockopt(raw, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char part[PMP_HEADER_SIZE];
    CHECK(zmq_recv(raw, part, sizeof part, 0) == PMP_HEADER_SIZE);
    zmq_close(raw);
    zmq_ctx_term(ctx);
    pmp_channel_destroy(&server, 0, 1);
    CHECK(__atomic_load_n(&freed, __ATOMIC_SEQ_CST) == 1);
}

/* Peer mode: what a booted program does. */
static int s_peer(const char *portstr)
{
    pmp_error_t err;
    pmp_channel_t *client = pmp_channel_new_client(
        "127.0.0.1", atoi(portstr), getenv("PYMPIPOOL_SOCKET_SERVER_KEY"),
        getenv("PYMPIPOOL_SOCKET_PUBLIC_KEY"), getenv("PYMPIPOOL_SOCKET_SECRET_KEY"), &err);
    if (!client) {
        fprintf(stderr, "peer: %s\n", err.text);
        return 2;
    }
    pmp_channel_msg_t *m = pmp_channel_recv(client, 20000, &err);
    if (!m) {
        fprintf(stderr, "peer: %s\n", err.text);
        return 3;
    }
    pmp_buffer_t reply[1] = {
        {pmp_frame_data(m->frames[0]), pmp_frame_size(m->frames[0]), NULL, NULL}};
    int rc = pmp_channel_wait_writable(client, 20000, &err);
    if (rc == 0)
        rc = pmp_channel_send(client, PMP_MSG_RESULT, m->task_id, 0, reply, 1, &err);
    pmp_channel_msg_destroy(&m);
    pmp_channel_destroy(&client, 0, 1);
    return rc == 0 ? 0 : 4;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "peer") == 0)
        return s_peer(argv[2]);
    (void)s_freed;
    fprintf(stderr, "libzmq CURVE: %s\n", pmp_channel_has_curve() ? "yes" : "no");
    test_roundtrip(0);
    test_roundtrip(-1);
    test_wrong_key();
    test_garbage();
    test_peer_left();
    test_boot_peer(argv[0]);
    test_crash();
    test_missing_program();
    test_destroy(1);
    test_destroy(0);
    test_fork();
    return pmp_check_verdict("test_channel");
}
