/*
 * pmp_endpoint.c - the executor's socket and who may connect to it (see
 * pmp_endpoint.h).
 *
 * Place in the design: the executor's security boundary.  Everything a
 * stranger could reach is made here: the directory that holds the ipc
 * socket and the credentials (mode 0700, so another user can neither
 * connect nor read), the listening Unix socket (ipc://) or the ROUTER
 * socket (tcp://), and the judge that admits only the holder of this
 * executor's fresh credentials: on ipc:// a connection of this user
 * (SO_PEERCRED) whose first frame, the link greeting, carries the PLAIN
 * password; on tcp:// a CURVE handshake with the runtime's key, answered
 * by the ZAP handler (pmp_auth), which the I/O thread polls next to the
 * socket and serves (pmp_endpoint_serve).  docs/security.md has the
 * threat model.
 *
 * Why two transports: on one host a Unix socket read and written by the
 * I/O thread and the leader themselves (pmp_link.h) spares the two libzmq
 * I/O threads a message would otherwise pass, and tells at once when the
 * peer dies; across hosts ZeroMQ gives CURVE, heartbeats and reconnects.
 *
 * How: the endpoint has its own ZeroMQ context, because the ZAP handler
 * (inproc://zeromq.zap.01) is per context and must answer for this socket
 * only.  The handler is bound before the socket and closed after it:
 * without a handler libzmq would admit PLAIN and CURVE peers unchecked.
 * The ROUTER is mandatory (a send to a peer that is gone fails instead of
 * being dropped) and has no send limit (a send queues and never blocks).
 * With a hostname the port is chosen by the system and read back; an
 * address that resolves to every interface is refused, since the runtime
 * must be told one address to connect to.
 *
 * Credentials file: written right before every launch (and once at
 * creation for a queue adapter, which starts the job later), removed once
 * every group said hello, when the job exits and here on destroy; the
 * executor decides when (pmp_job.c, pmp_executor_io.c), this file how.
 */
#define _GNU_SOURCE /* accept4, struct ucred */
#include "pmp_endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pmp_auth.h"
#include "pmp_credentials.h"
#include "pmp_link.h"

#define S_ADDRESS_MAX 300 /* room for ipc://<dir>/frontend or tcp://[v6]:port */

struct pmp_endpoint {
    char *dir;        /* the private directory */
    char *sock_path;  /* <dir>/frontend (ipc only) */
    char *cred_path;  /* <dir>/credentials */
    char *address;    /* what the runtime connects to */
    void *ctx;        /* the endpoint's own context (its ZAP handler) */
    void *router;     /* tcp: NULL once closed */
    int listen_fd;    /* ipc: the listening Unix socket, -1 once closed */
    pmp_auth_t *auth; /* credentials and ZAP handler */
    int cred_written; /* the credentials file exists (remove_credentials) */
};

/* The directory and the paths in it; sets err and errno on failure. */
static int s_make_dir(pmp_endpoint_t *self, const char *hostname, pmp_error_t *err)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    size_t len = strlen(tmp) + 32;
    self->dir = malloc(len);
    if (!self->dir)
        goto nomem;
    snprintf(self->dir, len, "%s/pympipool-XXXXXX", tmp);
    if (!mkdtemp(self->dir)) {
        int e = errno;
        pmp_error_set(err, "cannot create a private directory in %s: %s", tmp, strerror(e));
        free(self->dir);
        self->dir = NULL;
        errno = e;
        return -1;
    }
    if (chmod(self->dir, 0700) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot make %s private: %s", self->dir, strerror(e));
        errno = e;
        return -1;
    }
    len = strlen(self->dir) + 32;
    self->cred_path = malloc(len);
    self->address = malloc(len > S_ADDRESS_MAX ? len : S_ADDRESS_MAX);
    if (!self->cred_path || !self->address)
        goto nomem;
    snprintf(self->cred_path, len, "%s/credentials", self->dir);
    if (!hostname) {
        self->sock_path = malloc(len);
        if (!self->sock_path)
            goto nomem;
        snprintf(self->sock_path, len, "%s/frontend", self->dir);
        snprintf(self->address, len, "ipc://%s", self->sock_path);
    } else {
        snprintf(self->address, S_ADDRESS_MAX,
                 strchr(hostname, ':') ? "tcp://[%s]:*" : "tcp://%s:*", hostname);
    }
    if (self->sock_path && strlen(self->sock_path) >= 108) {
        pmp_error_set(err,
                      "the socket path %s is too long for a Unix socket; set TMPDIR to a "
                      "shorter directory",
                      self->sock_path);
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
nomem:
    pmp_error_set(err, "out of memory creating the executor");
    errno = ENOMEM;
    return -1;
}

/* ipc: the listening Unix socket at sock_path (the directory is private
 * already); sets err and errno on failure. */
static int s_listen(pmp_endpoint_t *self, pmp_error_t *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", self->sock_path); /* length checked */
    self->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (self->listen_fd < 0 || bind(self->listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(self->listen_fd, SOMAXCONN) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot listen on %s: %s", self->sock_path, strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

/* The socket, its authentication and its bind; sets err and errno on
 * failure. */
static int s_bind(pmp_endpoint_t *self, const char *hostname, pmp_error_t *err)
{
    int e;
    self->ctx = zmq_ctx_new();
    if (!self->ctx)
        goto zmq_fail;
    zmq_ctx_set(self->ctx, ZMQ_BLOCKY, 0);
    if (!hostname) {
        /* the password the runtime greets with; no ZeroMQ socket on ipc */
        self->auth = pmp_auth_new(self->ctx, PMP_CREDENTIALS_PLAIN, "frontend", err);
        return self->auth ? s_listen(self, err) : -1;
    }
    self->router = zmq_socket(self->ctx, ZMQ_ROUTER);
    if (!self->router)
        goto zmq_fail;
    int zero = 0, one = 1;
    zmq_setsockopt(self->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->router, ZMQ_SNDHWM, &zero, sizeof zero);
    if (zmq_setsockopt(self->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) < 0)
        goto zmq_fail;
    /* Only the runtime gets in: PLAIN with a fresh password on ipc://, CURVE
     * with fresh keys on tcp://, both checked by our ZAP handler, which is
     * bound before the socket and closed after it (pmp_auth.h). */
    self->auth = pmp_auth_new(self->ctx, hostname ? PMP_CREDENTIALS_CURVE : PMP_CREDENTIALS_PLAIN,
                              "frontend", err);
    if (!self->auth || pmp_auth_server_setup(self->auth, self->router, err) < 0)
        return -1;
    pmp_auth_watch(self->auth, self->router, NULL); /* only for log lines */
    if (strchr(hostname, ':'))
        zmq_setsockopt(self->router, ZMQ_IPV6, &one, sizeof one);
    if (zmq_bind(self->router, self->address) < 0) {
        e = errno;
        pmp_error_set(err,
                      "cannot listen on hostname '%s' (%s: %s): it must be an IP address or "
                      "the name of a network interface of this host",
                      hostname, self->address, zmq_strerror(e));
        errno = e == ENODEV || e == EADDRNOTAVAIL || e == EINVAL ? EINVAL : e;
        return -1;
    }
    size_t len = S_ADDRESS_MAX;
    if (zmq_getsockopt(self->router, ZMQ_LAST_ENDPOINT, self->address, &len) < 0)
        goto zmq_fail;
    if (strstr(self->address, "//0.0.0.0:") || strstr(self->address, "//[::]:")) {
        pmp_error_set(err, "hostname '%s' listens on every interface (%s); %s", hostname,
                      self->address, "give one address that the runtime can connect to");
        errno = EINVAL;
        return -1;
    }
    return 0;
zmq_fail:
    e = errno;
    pmp_error_set(err, "cannot bind the executor's socket to %s: %s", self->address,
                  zmq_strerror(e));
    errno = e;
    return -1;
}

pmp_endpoint_t *pmp_endpoint_new(const char *hostname, pmp_error_t *err)
{
    pmp_endpoint_t *self = calloc(1, sizeof *self);
    if (!self) {
        pmp_error_set(err, "out of memory creating the executor");
        errno = ENOMEM;
        return NULL;
    }
    self->listen_fd = -1;
    if (s_make_dir(self, hostname, err) < 0 || s_bind(self, hostname, err) < 0) {
        int e = errno;
        pmp_endpoint_destroy(&self);
        errno = e;
        return NULL;
    }
    return self;
}

void pmp_endpoint_destroy(pmp_endpoint_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_endpoint_t *self = *self_p;
    if (self->router)
        zmq_close(self->router);
    if (self->listen_fd >= 0)
        close(self->listen_fd);
    pmp_auth_destroy(&self->auth); /* after the router: it must not outlive its handler */
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    if (self->sock_path)
        unlink(self->sock_path);
    if (self->cred_path)
        unlink(self->cred_path); /* in any case: a job that never said hello */
    if (self->dir)
        rmdir(self->dir);
    free(self->dir);
    free(self->sock_path);
    free(self->cred_path);
    free(self->address);
    free(self);
    *self_p = NULL;
}

const char *pmp_endpoint_address(const pmp_endpoint_t *self)
{
    return self->address;
}

const char *pmp_endpoint_credentials_path(const pmp_endpoint_t *self)
{
    return self->cred_path;
}

void *pmp_endpoint_socket(const pmp_endpoint_t *self)
{
    return self->router;
}

void pmp_endpoint_close_socket(pmp_endpoint_t *self, int linger_ms)
{
    if (self->listen_fd >= 0)
        close(self->listen_fd);
    self->listen_fd = -1;
    if (!self->router)
        return;
    zmq_setsockopt(self->router, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    zmq_close(self->router);
    self->router = NULL;
}

int pmp_endpoint_pollitems(pmp_endpoint_t *self, zmq_pollitem_t *items)
{
    return self->router ? pmp_auth_pollitems(self->auth, items) : 0;
}

int pmp_endpoint_listen_fd(const pmp_endpoint_t *self)
{
    return self->listen_fd;
}

int pmp_endpoint_accept(pmp_endpoint_t *self)
{
    while (self->listen_fd >= 0) {
        int fd = accept4(self->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return -1; /* EAGAIN: nobody waits */
        }
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == geteuid())
            return fd;
        char peer[64], why[80];
        snprintf(peer, sizeof peer, "pid %ld", len == sizeof cred ? (long)cred.pid : -1L);
        snprintf(why, sizeof why, "uid %ld is not this user's",
                 len == sizeof cred ? (long)cred.uid : -1L);
        pmp_auth_judge_link(self->auth, NULL, 0, why, peer);
        close(fd);
    }
    errno = EBADF;
    return -1;
}

int pmp_endpoint_admit_link(pmp_endpoint_t *self, const void *greeting, size_t len,
                            const char *peer)
{
    const unsigned char *password = NULL;
    size_t plen = 0;
    pmp_error_t err;
    int bad = pmp_link_greeting_decode(greeting, len, &password, &plen, &err) < 0;
    return pmp_auth_judge_link(self->auth, password, plen, bad ? err.text : NULL, peer);
}

void pmp_endpoint_serve(pmp_endpoint_t *self)
{
    pmp_auth_serve(self->auth);
}

int pmp_endpoint_write_credentials(pmp_endpoint_t *self, pmp_error_t *err)
{
    if (pmp_credentials_write(self->cred_path, pmp_auth_credentials(self->auth), err) < 0)
        return -1;
    self->cred_written = 1;
    return 0;
}

void pmp_endpoint_remove_credentials(pmp_endpoint_t *self, const char *why)
{
    if (!self->cred_written)
        return;
    self->cred_written = 0;
    if (unlink(self->cred_path) < 0 && errno != ENOENT)
        pmp_log(PMP_LOG_WARNING, "frontend: cannot remove the credentials file %s: %s",
                self->cred_path, strerror(errno));
    else
        pmp_log(PMP_LOG_DEBUG, "frontend: removed the credentials file (%s)", why);
}
