/*
 * pmp_auth.c - credentials, the PLAIN/CURVE server side and the ZAP handler
 * (see pmp_auth.h for the contract).
 *
 * Why PLAIN on ipc:// and CURVE on tcp://.  On one host the socket file
 * lives in a directory of mode 0700, so only this user (and root) can reach
 * it; the runtime's password only has to keep other processes of this user
 * that did not get the file from completing a handshake, and PLAIN does that
 * without encrypting every byte of every (possibly huge) array that goes
 * through the socket.  Over TCP anybody on the network can connect and
 * listen, so CURVE both authenticates the two ends to each other (the
 * runtime knows the server's public key in advance; the server admits one
 * client key) and encrypts the traffic.
 *
 * The ZAP protocol (ZeroMQ RFC 27): a request is version "1.0", request id,
 * domain, address, routing id, mechanism, then the mechanism's credentials
 * (PLAIN: user name and password; CURVE: the client's 32-byte public key);
 * the reply is version, request id, status code, status text, user id,
 * metadata.  Requests are read whole (extra frames drained) and checked
 * field by field; anything unexpected is refused.
 *
 * The monitor: ZAP is only asked once the greeting has agreed on a
 * mechanism.  A foreign peer that speaks NULL to a PLAIN server, or a CURVE
 * client that does not know the server's key, fails earlier, inside libzmq;
 * the socket monitor reports those failures (HANDSHAKE_FAILED_*), so that
 * every refusal leaves a line in the log.
 */
#define _GNU_SOURCE
#include "pmp_auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_DOMAIN "pympipool"
#define S_MAX_PARTS 10

struct pmp_auth {
    void *ctx;     /* the context it serves (not owned) */
    void *zap;     /* REP bound to S_ZAP_ENDPOINT */
    void *monitor; /* PAIR connected to the watched socket's monitor, or NULL */
    int mechanism;
    char who[64];
    pmp_credentials_t creds;
    char server_secret[PMP_CREDENTIALS_KEY_TEXT]; /* CURVE */
    uint8_t client_key[32];                       /* CURVE: the admitted public key */
    size_t refused;                               /* so far: the log lines count them */
};

static int s_random(void *buf, size_t size)
{
    uint8_t *p = buf;
    while (size > 0) {
        ssize_t n = getrandom(p, size, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

/* Constant-time comparison of two byte strings of which b has size n. */
static int s_equal(const void *a, size_t a_size, const void *b, size_t n)
{
    if (a_size != n)
        return 0;
    const uint8_t *x = a, *y = b;
    uint8_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (uint8_t)(x[i] ^ y[i]);
    return diff == 0;
}

pmp_auth_t *pmp_auth_new(void *ctx, int mechanism, const char *who, pmp_error_t *err)
{
    if (mechanism != PMP_CREDENTIALS_PLAIN && mechanism != PMP_CREDENTIALS_CURVE) {
        pmp_error_set(err, "unknown authentication mechanism %d", mechanism);
        errno = EINVAL;
        return NULL;
    }
    if (mechanism == PMP_CREDENTIALS_CURVE && !zmq_has("curve")) {
        pmp_error_set(err, "this libzmq was built without CURVE security");
        errno = ENOTSUP;
        return NULL;
    }
    pmp_auth_t *self = calloc(1, sizeof *self);
    if (!self) {
        pmp_error_set(err, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    self->ctx = ctx;
    self->mechanism = mechanism;
    snprintf(self->who, sizeof self->who, "%s", who ? who : "server");
    self->creds.mechanism = mechanism;
    int e = 0;
    if (mechanism == PMP_CREDENTIALS_PLAIN) {
        uint8_t secret[32];
        if (s_random(secret, sizeof secret) < 0) {
            e = errno;
            pmp_error_set(err, "cannot read random bytes for a password: %s", strerror(e));
        } else if (!zmq_z85_encode(self->creds.password, secret, sizeof secret)) {
            e = EINVAL;
            pmp_error_set(err, "cannot encode a password");
        }
        explicit_bzero(secret, sizeof secret);
    } else if (zmq_curve_keypair(self->creds.server_public, self->server_secret) < 0 ||
               zmq_curve_keypair(self->creds.client_public, self->creds.client_secret) < 0 ||
               !zmq_z85_decode(self->client_key, self->creds.client_public)) {
        e = errno ? errno : EINVAL;
        pmp_error_set(err, "cannot create CURVE keys: %s", zmq_strerror(e));
    }
    if (!e) {
        self->zap = zmq_socket(ctx, ZMQ_REP);
        int zero = 0;
        if (!self->zap || zmq_setsockopt(self->zap, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
            zmq_bind(self->zap, S_ZAP_ENDPOINT) < 0) {
            e = errno;
            pmp_error_set(err, "cannot start the authentication handler: %s", zmq_strerror(e));
        }
    }
    if (e) {
        pmp_auth_destroy(&self);
        errno = e;
        return NULL;
    }
    return self;
}

void pmp_auth_destroy(pmp_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_auth_t *self = *self_p;
    int zero = 0;
    if (self->monitor) {
        zmq_setsockopt(self->monitor, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(self->monitor);
    }
    if (self->zap)
        zmq_close(self->zap);
    explicit_bzero(self, sizeof *self);
    free(self);
    *self_p = NULL;
}

int pmp_auth_server_setup(pmp_auth_t *self, void *sock, pmp_error_t *err)
{
    int one = 1, rc;
    rc = zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, S_DOMAIN, strlen(S_DOMAIN));
    if (rc == 0 && self->mechanism == PMP_CREDENTIALS_PLAIN)
        rc = zmq_setsockopt(sock, ZMQ_PLAIN_SERVER, &one, sizeof one);
    if (rc == 0 && self->mechanism == PMP_CREDENTIALS_CURVE) {
        rc = zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        if (rc == 0)
            rc = zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->server_secret, 40);
    }
    if (rc < 0) {
        int e = errno;
        pmp_error_set(err, "cannot set up %s security on the socket: %s",
                      self->mechanism == PMP_CREDENTIALS_PLAIN ? "PLAIN" : "CURVE",
                      zmq_strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

int pmp_auth_watch(pmp_auth_t *self, void *sock, pmp_error_t *err)
{
    if (self->monitor) {
        pmp_error_set(err, "the authentication handler watches a socket already");
        errno = EALREADY;
        return -1;
    }
    char endpoint[96];
    snprintf(endpoint, sizeof endpoint, "inproc://pympipool-auth-monitor-%p", (void *)self);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    int e = 0;
    if (zmq_socket_monitor(sock, endpoint, events) < 0) {
        e = errno;
    } else {
        self->monitor = zmq_socket(self->ctx, ZMQ_PAIR);
        if (!self->monitor || zmq_connect(self->monitor, endpoint) < 0) {
            e = errno;
            if (self->monitor)
                zmq_close(self->monitor);
            self->monitor = NULL;
            zmq_socket_monitor(sock, NULL, 0);
        }
    }
    if (e) {
        pmp_error_set(err, "cannot watch the socket's handshakes: %s", zmq_strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

int pmp_auth_pollitems(pmp_auth_t *self, zmq_pollitem_t *items)
{
    int n = 0;
    items[n++] = (zmq_pollitem_t){.socket = self->zap, .events = ZMQ_POLLIN};
    if (self->monitor)
        items[n++] = (zmq_pollitem_t){.socket = self->monitor, .events = ZMQ_POLLIN};
    return n;
}

/* The level of the log line for the refusal just counted: a peer that
 * keeps reconnecting (ZeroMQ retries every 100 ms) must not flood the log,
 * so after the first S_LOUD refusals only every 1000th is a warning. */
#define S_LOUD 10
static pmp_log_level_t s_refusal_level(const pmp_auth_t *self)
{
    return self->refused <= S_LOUD || self->refused % 1000 == 0 ? PMP_LOG_WARNING : PMP_LOG_DEBUG;
}

/* Printable copy of a frame (an address) for log lines. */
static void s_printable(char *out, size_t cap, const zmq_msg_t *m)
{
    size_t len = m ? zmq_msg_size(m) : 0;
    if (len >= cap)
        len = cap - 1;
    if (len)
        memcpy(out, zmq_msg_data((zmq_msg_t *)m), len);
    out[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (out[i] < 32 || out[i] > 126)
            out[i] = '?';
    if (len == 0)
        snprintf(out, cap, "a local peer");
}

/* Checks one ZAP request; returns NULL to admit, or the reason to refuse. */
static const char *s_judge(const pmp_auth_t *self, zmq_msg_t *parts, size_t n)
{
    if (n < 6 || !s_equal(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), "1.0", 3))
        return "malformed ZAP request";
    if (!s_equal(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), S_DOMAIN, strlen(S_DOMAIN)))
        return "unknown ZAP domain";
    const void *mech = zmq_msg_data(&parts[5]);
    size_t mech_size = zmq_msg_size(&parts[5]);
    if (self->mechanism == PMP_CREDENTIALS_PLAIN) {
        if (!s_equal(mech, mech_size, "PLAIN", 5))
            return "wrong security mechanism (PLAIN expected)";
        if (n != 8)
            return "malformed PLAIN credentials";
        int user_ok = s_equal(zmq_msg_data(&parts[6]), zmq_msg_size(&parts[6]),
                              PMP_CREDENTIALS_USER, strlen(PMP_CREDENTIALS_USER));
        int pass_ok = s_equal(zmq_msg_data(&parts[7]), zmq_msg_size(&parts[7]),
                              self->creds.password, strlen(self->creds.password));
        if (!user_ok)
            return "unknown PLAIN user name";
        if (!pass_ok)
            return "wrong PLAIN password";
        return NULL;
    }
    if (!s_equal(mech, mech_size, "CURVE", 5))
        return "wrong security mechanism (CURVE expected)";
    if (n != 7 || zmq_msg_size(&parts[6]) != 32)
        return "malformed CURVE credentials";
    if (!s_equal(zmq_msg_data(&parts[6]), 32, self->client_key, 32))
        return "unknown CURVE client key";
    return NULL;
}

static void s_serve_zap(pmp_auth_t *self)
{
    for (;;) {
        zmq_msg_t parts[S_MAX_PARTS];
        size_t n = 0, extra = 0;
        int more = 1;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            int first = n == 0 && extra == 0;
            if (zmq_msg_recv(&part, self->zap, first ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(&part);
                for (size_t i = 0; i < n; i++)
                    zmq_msg_close(&parts[i]);
                return; /* nothing pending (EAGAIN), or the context is going */
            }
            more = zmq_msg_more(&part);
            if (n < S_MAX_PARTS) {
                parts[n++] = part;
            } else {
                extra++;
                zmq_msg_close(&part);
            }
        }
        const char *why = extra ? "malformed ZAP request" : s_judge(self, parts, n);
        if (why) {
            char address[80];
            s_printable(address, sizeof address, n >= 4 ? &parts[3] : NULL);
            self->refused++;
            pmp_log(s_refusal_level(self), "%s: refused a connection from %s: %s (%zu refused)",
                    self->who, address, why, self->refused);
        } else {
            pmp_log(PMP_LOG_DEBUG, "%s: admitted a connection", self->who);
        }
        const char *status = why ? "400" : "200";
        const char *text = why ? why : "OK";
        zmq_send(self->zap, "1.0", 3, ZMQ_SNDMORE);
        if (n >= 2)
            zmq_send(self->zap, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE);
        else
            zmq_send(self->zap, "", 0, ZMQ_SNDMORE);
        zmq_send(self->zap, status, 3, ZMQ_SNDMORE);
        zmq_send(self->zap, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(self->zap, why ? "" : "runtime", why ? 0 : 7, ZMQ_SNDMORE);
        zmq_send(self->zap, "", 0, 0);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
}

int pmp_auth_judge_link(pmp_auth_t *self, const void *password, size_t len, const char *why,
                        const char *peer)
{
    if (!why && (self->mechanism != PMP_CREDENTIALS_PLAIN ||
                 !s_equal(password, len, self->creds.password, strlen(self->creds.password))))
        why = "wrong PLAIN password";
    if (why) {
        self->refused++;
        pmp_log(s_refusal_level(self), "%s: refused a connection from %s: %s (%zu refused)",
                self->who, peer, why, self->refused);
        return -1;
    }
    pmp_log(PMP_LOG_DEBUG, "%s: admitted a connection from %s", self->who, peer);
    return 0;
}

static const char *s_protocol_error(uint32_t value)
{
    switch (value) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "it does not use this socket's security mechanism";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "its CURVE handshake failed (it does not know this server's key)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
        return "its key exchange failed";
    default:
        return "it broke the ZeroMQ handshake";
    }
}

static void s_serve_monitor(pmp_auth_t *self)
{
    for (;;) {
        zmq_msg_t head, addr;
        zmq_msg_init(&head);
        if (zmq_msg_recv(&head, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&head);
            return;
        }
        int more = zmq_msg_more(&head);
        zmq_msg_init(&addr);
        if (more && zmq_msg_recv(&addr, self->monitor, 0) >= 0)
            more = zmq_msg_more(&addr);
        while (more) { /* a newer event format: drain */
            zmq_msg_t rest;
            zmq_msg_init(&rest);
            if (zmq_msg_recv(&rest, self->monitor, 0) < 0)
                more = 0;
            else
                more = zmq_msg_more(&rest);
            zmq_msg_close(&rest);
        }
        if (zmq_msg_size(&head) >= 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&head), sizeof event);
            memcpy(&value, (char *)zmq_msg_data(&head) + 2, sizeof value);
            char address[160];
            s_printable(address, sizeof address, &addr);
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                /* s_serve_zap logged the reason already */
                pmp_log(PMP_LOG_DEBUG, "%s: handshake on %s refused with ZAP status %u", self->who,
                        address, (unsigned)value);
            } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
                self->refused++;
                pmp_log(s_refusal_level(self), "%s: refused a connection on %s: %s (%zu refused)",
                        self->who, address, s_protocol_error(value), self->refused);
            } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
                self->refused++;
                pmp_log(s_refusal_level(self),
                        "%s: refused a connection on %s: handshake failed (%s) (%zu refused)",
                        self->who, address, zmq_strerror((int)value), self->refused);
            }
        }
        zmq_msg_close(&addr);
        zmq_msg_close(&head);
    }
}

void pmp_auth_serve(pmp_auth_t *self)
{
    s_serve_zap(self);
    if (self->monitor)
        s_serve_monitor(self);
}

const pmp_credentials_t *pmp_auth_credentials(const pmp_auth_t *self)
{
    return &self->creds;
}
