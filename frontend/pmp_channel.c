/*
 * pmp_channel.c - the transport of SocketInterface: one ZeroMQ PAIR socket,
 * pympipool framing, optional CURVE with a ZAP handler, and a watched child.
 *
 * Why PAIR: a SocketInterface talks to exactly one peer, strictly in turn
 * (instruction, reply), so there is nothing to route; PAIR refuses a second
 * peer while the first is connected.  Each channel has its own ZeroMQ
 * context so that its ZAP handler (inproc://zeromq.zap.01 is per context)
 * only ever answers for this channel.
 *
 * How a call waits: every blocking operation goes through s_wait(), one
 * zmq_poll over the PAIR socket (nothing waits inside a ZeroMQ send:
 * pmp_channel_msg.c says why), the ZAP and monitor sockets (CURVE
 * servers, pmp_auth) and the keeper's exit eventfd.  ZAP requests are
 * answered inline, so the CURVE handshake of the client progresses whenever
 * a caller is waiting on the channel (ZeroMQ retries a handshake that took longer than 30 s, so a
 * server that is busy elsewhere for a while only delays the client).  The
 * exit eventfd wakes a waiting call the moment the booted program is gone;
 * a receive then still takes whatever the program sent before it exited
 * (up to S_EXIT_LINGER_MS later, for bytes still on their way through the
 * kernel and ZeroMQ's I/O thread) before failing with ECHILD.
 *
 * Where it lives: this file holds the channel itself (creation, keys,
 * bind, the waits and the receive loop); pmp_channel_msg.c puts messages on
 * the wire and takes them off, and pmp_channel_keeper.c is the thread that
 * boots the program, watches it and ends it (its own essay says why it is
 * a thread).  pmp_channel_internal.h is what they share.
 *
 * Guarantees: no call blocks forever on a dead booted program; a malformed
 * or unexpected message is dropped with a logged reason; every zero-copy
 * buffer's free_fn runs exactly once; destroy leaves no child behind (with
 * wait == 0, within the grace period plus 2 s).
 */
#include "pmp_channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "pmp_channel_internal.h"
#include "pmp_fork.h"

#define S_LINGER_MS 1000
#define S_EXIT_LINGER_MS 300

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pmp_channel_has_curve(void)
{
    return zmq_has("curve");
}

/* Whether this process is a forked child of the channel's creator: then
 * ZeroMQ's threads and the keeper are not here, and every call that would
 * wait on them (or on a lock they may hold) fails at once instead. */
static inline int s_in_child(const pmp_channel_t *self)
{
    return __builtin_expect(self->gen != pmp_fork_generation(), 0);
}

int pmp_channel_forked(const pmp_channel_t *self)
{
    return s_in_child(self);
}

static pmp_channel_t *s_channel_alloc(int server, pmp_error_t *err)
{
    pmp_channel_t *self = calloc(1, sizeof *self);
    if (!self) {
        pmp_error_set(err, "out of memory creating a socket channel");
        errno = ENOMEM;
        return NULL;
    }
    pmp_fork_watch();
    self->gen = pmp_fork_generation();
    self->owner = getpid();
    self->server = server;
    self->ctx = zmq_ctx_new();
    if (self->ctx)
        self->sock = zmq_socket(self->ctx, ZMQ_PAIR);
    if (!self->ctx || !self->sock) {
        int e = errno;
        pmp_error_set(err, "cannot create a ZeroMQ socket: %s", zmq_strerror(e));
        if (self->ctx)
            zmq_ctx_term(self->ctx);
        free(self);
        errno = e;
        return NULL;
    }
    int linger = S_LINGER_MS;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    const char *pause = getenv("PYMPIPOOL_TEST_SEND_PAUSE_MS"); /* read once, not per send */
    if (pause)
        self->send_pause_ms = atoi(pause);
    return self;
}

static void s_channel_close_sockets(pmp_channel_t *self)
{
    /* the served socket first: without its ZAP handler, libzmq would admit
     * a CURVE client unchecked */
    if (self->sock) {
        zmq_close(self->sock);
        self->sock = NULL;
    }
    pmp_auth_destroy(&self->auth);
    if (self->ctx) {
        while (zmq_ctx_term(self->ctx) < 0 && errno == EINTR)
            ;
        self->ctx = NULL;
    }
}

pmp_channel_t *pmp_channel_new_server(const char *interface, int curve, pmp_error_t *err)
{
    if (!interface)
        interface = "127.0.0.1";
    if (!*interface || strlen(interface) >= 256 || strpbrk(interface, "/ \t\n")) {
        pmp_error_set(err, "interface '%.100s' is not an address to bind to", interface);
        errno = EINVAL;
        return NULL;
    }
    if (curve > 0 && !pmp_channel_has_curve()) {
        pmp_error_set(err, "this libzmq was built without CURVE security");
        errno = ENOTSUP;
        return NULL;
    }
    pmp_channel_t *self = s_channel_alloc(1, err);
    if (!self)
        return NULL;
    snprintf(self->interface, sizeof self->interface, "%s", interface);
    if (strchr(interface, ':')) {
        int one = 1;
        zmq_setsockopt(self->sock, ZMQ_IPV6, &one, sizeof one);
    }
    self->curve = curve != 0 && pmp_channel_has_curve();
    if (self->curve) {
        self->auth = pmp_auth_new(self->ctx, PMP_CREDENTIALS_CURVE, "socket interface", err);
        if (!self->auth || pmp_auth_server_setup(self->auth, self->sock, err) < 0)
            goto fail;
        pmp_auth_watch(self->auth, self->sock, NULL); /* only for log lines */
    }
    return self;
fail : {
    int e = errno;
    s_channel_close_sockets(self);
    free(self);
    errno = e;
    return NULL;
}
}

pmp_channel_t *pmp_channel_new_client(const char *host, int port, const char *server_key,
                                      const char *public_key, const char *secret_key,
                                      pmp_error_t *err)
{
    if (!host || !*host || strlen(host) >= 256 || strpbrk(host, "/ \t\n")) {
        pmp_error_set(err, "host '%.100s' is not a host name or address", host ? host : "(null)");
        errno = EINVAL;
        return NULL;
    }
    if (port <= 0 || port > 65535) {
        pmp_error_set(err, "port %d is not a TCP port (1..65535)", port);
        errno = EINVAL;
        return NULL;
    }
    if (server_key) {
        uint8_t bin[32];
        const char *keys[3] = {server_key, public_key, secret_key};
        for (int i = 0; i < 3; i++) {
            if (!keys[i] || strlen(keys[i]) != 40 || !zmq_z85_decode(bin, keys[i])) {
                pmp_error_set(err, "CURVE keys must be three 40-character Z85 texts "
                                   "(server public, client public, client secret)");
                errno = EINVAL;
                return NULL;
            }
        }
        if (!pmp_channel_has_curve()) {
            pmp_error_set(err, "the server uses CURVE, but this libzmq was built without it");
            errno = ENOTSUP;
            return NULL;
        }
    }
    pmp_channel_t *self = s_channel_alloc(0, err);
    if (!self)
        return NULL;
    /* Queue messages only on a connection whose handshake completed, so
     * that "writable" means "the server accepted us". */
    int immediate = 1;
    zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate);
    int ipv6 = strchr(host, ':') != NULL;
    if (ipv6) {
        int one = 1;
        zmq_setsockopt(self->sock, ZMQ_IPV6, &one, sizeof one);
    }
    snprintf(self->endpoint, sizeof self->endpoint, ipv6 ? "tcp://[%s]:%d" : "tcp://%s:%d", host,
             port);
    if (server_key) {
        self->curve = 1;
        if (zmq_setsockopt(self->sock, ZMQ_CURVE_SERVERKEY, server_key, 40) < 0 ||
            zmq_setsockopt(self->sock, ZMQ_CURVE_PUBLICKEY, public_key, 40) < 0 ||
            zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, secret_key, 40) < 0) {
            int e = errno;
            pmp_error_set(err, "cannot set the CURVE keys: %s", zmq_strerror(e));
            s_channel_close_sockets(self);
            free(self);
            errno = e;
            return NULL;
        }
    }
    if (zmq_connect(self->sock, self->endpoint) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot connect to %s: %s", self->endpoint, zmq_strerror(e));
        s_channel_close_sockets(self);
        free(self);
        errno = e;
        return NULL;
    }
    return self;
}

void pmp_channel_destroy(pmp_channel_t **self_p, int grace_ms, int wait)
{
    if (!self_p || !*self_p)
        return;
    pmp_channel_t *self = *self_p;
    *self_p = NULL;
    /* In a forked child, closing the socket would wait forever for
     * ZeroMQ's reaper thread, and the booted program is the parent's. */
    if (s_in_child(self))
        return;
    s_channel_close_sockets(self);
    if (self->keeper)
        pmp_channel_keeper_stop(self->keeper, grace_ms, wait);
    free(self);
}

int pmp_channel_bind_random_port(pmp_channel_t *self, pmp_error_t *err)
{
    if (s_in_child(self))
        return pmp_fork_fail(err, "socket interface", self->owner);
    if (!self->server) {
        pmp_error_set(err, "only the server side of a channel binds");
        errno = EINVAL;
        return -1;
    }
    if (self->bound) {
        pmp_error_set(err, "the socket is bound already, to %s", self->endpoint);
        errno = EALREADY;
        return -1;
    }
    char want[PMP_CHANNEL_ENDPOINT_MAX];
    snprintf(want, sizeof want, strchr(self->interface, ':') ? "tcp://[%s]:*" : "tcp://%s:*",
             self->interface);
    if (zmq_bind(self->sock, want) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot bind to %s: %s", want, zmq_strerror(e));
        errno = e;
        return -1;
    }
    size_t len = sizeof self->endpoint;
    if (zmq_getsockopt(self->sock, ZMQ_LAST_ENDPOINT, self->endpoint, &len) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot read the bound endpoint: %s", zmq_strerror(e));
        errno = e;
        return -1;
    }
    self->bound = 1;
    const char *colon = strrchr(self->endpoint, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (port <= 0) {
        pmp_error_set(err, "cannot read the port of %s", self->endpoint);
        errno = EPROTO;
        return -1;
    }
    return port;
}

const char *pmp_channel_endpoint(const pmp_channel_t *self)
{
    return self->endpoint;
}

int pmp_channel_curve(const pmp_channel_t *self)
{
    return self->curve;
}

const char *pmp_channel_server_public_key(const pmp_channel_t *self)
{
    return self->auth ? pmp_auth_credentials(self->auth)->server_public : NULL;
}

const char *pmp_channel_client_public_key(const pmp_channel_t *self)
{
    return self->auth ? pmp_auth_credentials(self->auth)->client_public : NULL;
}

const char *pmp_channel_client_secret_key(const pmp_channel_t *self)
{
    return self->auth ? pmp_auth_credentials(self->auth)->client_secret : NULL;
}

int pmp_channel_bootup(pmp_channel_t *self, const char *const argv[], const char *cwd,
                       const char *const envp[], pmp_error_t *err)
{
    if (s_in_child(self))
        return pmp_fork_fail(err, "socket interface", self->owner);
    if (!self->server) {
        pmp_error_set(err, "only the server side of a channel boots a program");
        errno = EINVAL;
        return -1;
    }
    if (self->keeper) {
        pmp_error_set(err, "a program was booted already (pid %ld)",
                      (long)pmp_channel_keeper_pid(self->keeper));
        errno = EALREADY;
        return -1;
    }
    if (!argv || !argv[0] || !argv[0][0]) {
        pmp_error_set(err, "the command is empty");
        errno = EINVAL;
        return -1;
    }
    pmp_channel_keeper_t *k = pmp_channel_keeper_start(argv, cwd, envp, err);
    if (!k)
        return -1;
    self->keeper = k;
    self->exit_seen_ms = 0;
    return 0;
}

pid_t pmp_channel_pid(const pmp_channel_t *self)
{
    return self->keeper ? pmp_channel_keeper_pid(self->keeper) : -1;
}

int pmp_channel_exited(pmp_channel_t *self, int *status)
{
    if (s_in_child(self)) {
        if (status)
            *status = -1;
        return pmp_fork_fail(NULL, "socket interface", self->owner);
    }
    if (!self->keeper) {
        if (status)
            *status = -1;
        return 0;
    }
    return pmp_channel_keeper_exited(self->keeper, status);
}

char *pmp_channel_exit_text(pmp_channel_t *self)
{
    if (s_in_child(self)) {
        pmp_fork_fail(NULL, "socket interface", self->owner);
        return NULL;
    }
    if (!self->keeper) {
        errno = ESRCH;
        return NULL;
    }
    return pmp_channel_keeper_exit_text(self->keeper);
}

static int s_fail_exited(pmp_channel_t *self, pmp_error_t *err)
{
    char *text = pmp_channel_exit_text(self);
    pmp_error_set(err, "%s", text ? text : "the booted program exited");
    free(text);
    errno = ECHILD;
    return -1;
}

/* ---- waiting --------------------------------------------------------------- */

/* Waits up to timeout_ms (-1: forever) for events on the socket, serving
 * ZAP meanwhile.  watch_exit: also return when the booted program exits.
 * Returns 1 when the socket is ready, 0 on timeout, a signal or the exit
 * event, -1 with errno on error. */
static int s_wait(pmp_channel_t *self, short events, int timeout_ms, int watch_exit)
{
    int64_t deadline = timeout_ms < 0 ? -1 : s_now_ms() + timeout_ms;
    for (;;) {
        zmq_pollitem_t items[4];
        int n = 0, zap_i = -1, nzap = 0, exit_i = -1;
        items[n++] = (zmq_pollitem_t){.socket = self->sock, .events = events};
        if (self->auth) {
            zap_i = n;
            nzap = pmp_auth_pollitems(self->auth, &items[n]);
            n += nzap;
        }
        if (watch_exit && self->keeper) {
            exit_i = n;
            items[n++] = (zmq_pollitem_t){.fd = pmp_channel_keeper_exitfd(self->keeper),
                                          .events = ZMQ_POLLIN};
        }
        long slice = -1;
        if (deadline >= 0) {
            int64_t left = deadline - s_now_ms();
            slice = left > 0 ? (long)left : 0;
        }
        int rc = zmq_poll(items, n, slice);
        if (rc < 0)
            return errno == EINTR ? 0 : -1;
        for (int z = 0; z < nzap; z++)
            if (items[zap_i + z].revents) {
                pmp_auth_serve(self->auth);
                break;
            }
        if (items[0].revents & events)
            return 1;
        if (exit_i >= 0 && items[exit_i].revents)
            return 0;
        if (deadline >= 0 && s_now_ms() >= deadline)
            return 0;
    }
}

int pmp_channel_wait_writable(pmp_channel_t *self, int timeout_ms, pmp_error_t *err)
{
    if (s_in_child(self))
        return pmp_fork_fail(err, "socket interface", self->owner);
    int64_t deadline = timeout_ms < 0 ? -1 : s_now_ms() + timeout_ms;
    for (;;) {
        if (self->server && !self->bound) {
            pmp_error_set(err, "the socket is not bound: call bind_to_random_port() first");
            errno = ENOTCONN;
            return -1;
        }
        if (pmp_channel_exited(self, NULL))
            return s_fail_exited(self, err);
        int left = -1;
        if (deadline >= 0) {
            int64_t l = deadline - s_now_ms();
            left = l > 0 ? (int)l : 0;
        }
        int rc = s_wait(self, ZMQ_POLLOUT, left, 1);
        if (rc < 0) {
            int e = errno;
            pmp_error_set(err, "waiting on the socket failed: %s", zmq_strerror(e));
            errno = e;
            return -1;
        }
        if (rc == 1)
            return 0;
        if (pmp_channel_exited(self, NULL))
            return s_fail_exited(self, err);
        if (deadline >= 0 && s_now_ms() >= deadline) {
            pmp_error_set(err, "the peer is not connected or has no room for a message");
            errno = EAGAIN;
            return -1;
        }
    }
}

/* ---- sending --------------------------------------------------------------- */

pmp_channel_msg_t *pmp_channel_recv(pmp_channel_t *self, int timeout_ms, pmp_error_t *err)
{
    if (s_in_child(self)) {
        pmp_fork_fail(err, "socket interface", self->owner);
        return NULL;
    }
    if (self->server && !self->bound) {
        pmp_error_set(err, "the socket is not bound: call bind_to_random_port() first");
        errno = ENOTCONN;
        return NULL;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : s_now_ms() + timeout_ms;
    for (;;) {
        pmp_channel_msg_t *m = pmp_channel_try_recv(self, err);
        if (m)
            return m;
        if (errno != EAGAIN)
            return NULL;
        int64_t now = s_now_ms();
        int64_t wait_ms = deadline < 0 ? -1 : deadline - now;
        int exited = pmp_channel_exited(self, NULL);
        if (exited) {
            if (self->exit_seen_ms == 0)
                self->exit_seen_ms = now;
            int64_t left = self->exit_seen_ms + S_EXIT_LINGER_MS - now;
            if (left <= 0) {
                s_fail_exited(self, err);
                return NULL;
            }
            if (wait_ms < 0 || left < wait_ms)
                wait_ms = left;
        }
        if (deadline >= 0 && wait_ms <= 0) {
            pmp_error_set(err, "no message arrived in time");
            errno = EAGAIN;
            return NULL;
        }
        if (s_wait(self, ZMQ_POLLIN, (int)wait_ms, !exited) < 0) {
            int e = errno;
            pmp_error_set(err, "waiting on the socket failed: %s", zmq_strerror(e));
            errno = e;
            return NULL;
        }
    }
}
