/*
 * pmp_leader.c - the leader's connection to the frontend (see
 * pmp_leader.h).
 *
 * Local links (ipc://).  The leader connects to the frontend's Unix socket
 * (after the directory check below), greets it with the password of the
 * credentials file and from then on reads and writes the link itself:
 * receiving reads whatever is there and hands out the next message (poll
 * in 1 s slices between, each idle second checking the frontend's
 * process), sending writes until the kernel has every byte, so a result's
 * buffers are released when pmp_leader_send returns.  The frontend's end
 * of the connection is final: it is a SHUTDOWN.  Everything below about
 * ZeroMQ applies to tcp:// endpoints.
 *
 * Receiving: parts are collected into a growing array of zmq_msg_t (moved
 * with zmq_msg_move when the array grows, never copied byte-wise), then
 * each protocol message in it (one, or a batch: the hello says the leader
 * takes PMP_BATCH_MAX, or a pack of them, unpacked first: pmp_pack.h) is
 * decoded and checked against the parts it announces (pmp_header_next, from_worker = 0) and handed
 * out in turn; the rest of a batch is held until the next receive.  Only a checked message becomes
 * a pmp_rtmsg_t.  A message with more parts than the protocol allows is drained and dropped.
 *
 * Watching the frontend: ZeroMQ does not tell a DEALER that its peer is
 * gone, so every idle second the leader checks that the frontend process
 * still exists (a link's end of file says so at once; the check stays as a
 * second line there, with the socket file's existence).  A process id means something only on the
 * frontend's own host
 * (--frontend-host).  On any other host the connection itself is watched:
 * ZMTP heartbeats (a PING every second, the connection dropped when no
 * answer came for S_HEARTBEAT_TIMEOUT_MS, so a vanished host is noticed
 * too) and a socket monitor that reports connects and disconnects; the
 * frontend counts as gone once it has been disconnected for
 * S_LOST_AFTER_MS, or was never reached within S_UNREACHED_AFTER_MS.
 *
 * Authentication: before connecting, the leader reads the credentials file
 * named by --credentials (pmp_credentials.h) and sets the socket up as a
 * PLAIN client (ipc://) or a CURVE client that knows the server's public
 * key (tcp://), then wipes the secrets from its memory.  Unless the frontend
 * admits it, the handshake never completes and nothing is received, so
 * every message the runtime unpickles comes from the authenticated frontend:
 * over TCP because only the holder of the server's secret key can complete
 * CURVE with us, over ipc:// because the socket's directory, checked here,
 * belongs to this user and nobody else may enter it.
 *
 * Shutting down: the socket lives with ZMQ_LINGER 0 so that a dead frontend
 * can never block the exit; only for the GOODBYE, when the frontend is
 * alive, the linger is raised to one second so that the goodbye is not
 * thrown away by the close that follows it.
 */
#include "pmp_leader.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pmp_credentials.h"
#include "pmp_link.h"
#include "pmp_multipart.h"
#include "pmp_pack.h"

#define S_IDLE_POLL_MS 1000
#define S_BUSY_POLL_MS 10
#define S_GOODBYE_LINGER_MS 1000
#define S_HEARTBEAT_IVL_MS 1000
#define S_HEARTBEAT_TIMEOUT_MS 5000
#define S_LOST_AFTER_MS 5000
#define S_UNREACHED_AFTER_MS 120000

struct pmp_leader {
    pmp_link_t *link; /* ipc://: the local link; then ctx and sock are NULL */
    void *ctx;
    void *sock;
    pid_t frontend_pid; /* 0: not checked (unknown, or on another host) */
    char *ipc_path;     /* socket file of an ipc:// endpoint, else NULL */
    void *monitor;      /* PAIR receiving the socket's connection events, or NULL */
    int connected;      /* the monitor's view: a handshake succeeded, no disconnect since */
    int ever_connected; /* a handshake succeeded once */
    long since_ms;      /* when the monitor's view last changed */
    int frontend_gone;
    int greeted; /* HELLO was sent: say GOODBYE at the end */
    /* The last ZeroMQ message received, a batch of protocol messages of
     * which parts [held_at, held.n) are not handed out yet; empty when none
     * is left. */
    pmp_multipart_t held;
    size_t held_at;
};

static long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* An ipc:// socket file is as trustworthy as its directory: only a
 * directory owned by this user with no access for anybody else guarantees
 * that the socket in it was bound by this user's frontend.  0, or -1 with
 * errno and a sentence in err. */
static int s_check_ipc_dir(const char *path, pmp_error_t *err)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    struct stat st;
    if (stat(dir, &st) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot check the frontend's socket directory %s: %s", dir, strerror(e));
        errno = e;
        return -1;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        pmp_error_set(err,
                      "refusing to connect to the socket in %s: the directory is not private to "
                      "this user (owner uid %ld, mode %04o; uid %ld and mode 0700 expected), so "
                      "somebody else may have bound it",
                      dir, (long)st.st_uid, (unsigned)(st.st_mode & 07777), (long)geteuid());
        errno = EPERM;
        return -1;
    }
    return 0;
}

/* Makes the socket a client with the credentials of path (NULL: none). */
static int s_secure(void *sock, const char *endpoint, const char *path, pmp_error_t *err)
{
    int tcp = strncmp(endpoint, "ipc://", 6) != 0;
    if (!tcp && s_check_ipc_dir(endpoint + 6, err) < 0)
        return -1;
    if (!path) {
        if (!tcp)
            return 0;
        pmp_error_set(err, "the endpoint %s is not ipc://, so --credentials is required", endpoint);
        errno = EINVAL;
        return -1;
    }
    pmp_credentials_t c;
    if (pmp_credentials_read(path, &c, err) < 0)
        return -1;
    int rc = 0;
    if (c.mechanism == PMP_CREDENTIALS_PLAIN) {
        if (tcp) {
            pmp_error_set(err,
                          "refusing PLAIN credentials for %s: over TCP they would travel "
                          "in clear text (CURVE expected)",
                          endpoint);
            pmp_credentials_wipe(&c);
            errno = EPERM;
            return -1;
        }
        rc = zmq_setsockopt(sock, ZMQ_PLAIN_USERNAME, PMP_CREDENTIALS_USER,
                            strlen(PMP_CREDENTIALS_USER));
        if (rc == 0)
            rc = zmq_setsockopt(sock, ZMQ_PLAIN_PASSWORD, c.password, strlen(c.password));
    } else {
        rc = zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c.server_public, 40);
        if (rc == 0)
            rc = zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c.client_public, 40);
        if (rc == 0)
            rc = zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c.client_secret, 40);
    }
    pmp_credentials_wipe(&c);
    if (rc != 0) {
        int e = errno;
        pmp_error_set(err, "cannot set up authentication with %s: %s", path, zmq_strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

/* Whether host names this host (or is not known: then assume so). */
static int s_is_this_host(const char *host)
{
    char here[256] = "";
    if (!host || gethostname(here, sizeof here - 1) != 0)
        return 1;
    return strcmp(here, host) == 0;
}

/* Heartbeats and a connection monitor, for a frontend on another host. */
static int s_watch_connection(pmp_leader_t *self, pmp_error_t *err)
{
    static int counter;
    char name[64];
    snprintf(name, sizeof name, "inproc://pmp-leader-monitor-%d", ++counter);
    int ivl = S_HEARTBEAT_IVL_MS, timeout = S_HEARTBEAT_TIMEOUT_MS;
    if (zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl) != 0 ||
        zmq_setsockopt(self->sock, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout) != 0 ||
        zmq_socket_monitor(self->sock, name,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(self->monitor = zmq_socket(self->ctx, ZMQ_PAIR)) ||
        zmq_connect(self->monitor, name) != 0) {
        pmp_error_set(err, "cannot watch the connection to the frontend: %s", zmq_strerror(errno));
        return -1;
    }
    int linger = 0;
    zmq_setsockopt(self->monitor, ZMQ_LINGER, &linger, sizeof linger);
    self->since_ms = s_now_ms();
    return 0;
}

/* Applies the connection events that arrived since the last call. */
static void s_read_monitor(pmp_leader_t *self)
{
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            return;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&part) >= sizeof event)
            memcpy(&event, zmq_msg_data(&part), sizeof event);
        int more = zmq_msg_more(&part);
        zmq_msg_close(&part);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, self->monitor, 0) < 0)
                more = 0;
            else
                more = zmq_msg_more(&part);
            zmq_msg_close(&part);
        }
        int connected = event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
        self->ever_connected |= connected;
        self->connected = connected;
        self->since_ms = s_now_ms();
    }
}

/* ipc://: connects to the frontend's Unix socket and greets it with the
 * password of the credentials file (none: an empty one, which the
 * frontend refuses).  0, or -1 with errno and a sentence in err. */
static int s_connect_link(pmp_leader_t *self, const char *path, const char *credentials,
                          pmp_error_t *err)
{
    if (s_check_ipc_dir(path, err) < 0)
        return -1;
    pmp_credentials_t c = {0};
    if (credentials && pmp_credentials_read(credentials, &c, err) < 0)
        return -1;
    if (credentials && c.mechanism != PMP_CREDENTIALS_PLAIN) {
        pmp_error_set(err, "%s holds CURVE keys, but %s is a local socket (PLAIN expected)",
                      credentials, path);
        pmp_credentials_wipe(&c);
        errno = EINVAL;
        return -1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        pmp_error_set(err, "the socket path %s is too long", path);
        pmp_credentials_wipe(&c);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc < 0) {
        int e = errno;
        pmp_error_set(err, "cannot connect to the frontend at ipc://%s: %s", path, strerror(e));
        if (fd >= 0)
            close(fd);
        pmp_credentials_wipe(&c);
        errno = e;
        return -1;
    }
    self->link = pmp_link_new(fd, PMP_LINK_MAX_FRAME);
    zmq_msg_t greeting;
    rc = self->link ? pmp_link_greeting(&greeting, c.password) : -1;
    pmp_credentials_wipe(&c);
    if (rc == 0)
        rc = pmp_link_send(self->link, &greeting, 1);
    if (rc == 0)
        rc = pmp_link_flush_wait(self->link, -1);
    if (rc < 0) {
        int e = errno;
        pmp_error_set(err, "cannot greet the frontend at ipc://%s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

pmp_leader_t *pmp_leader_new(const char *endpoint, pid_t frontend_pid, const char *frontend_host,
                             const char *credentials, pmp_error_t *err)
{
    pmp_leader_t *self = calloc(1, sizeof *self);
    if (!self) {
        pmp_error_set(err, "out of memory");
        return NULL;
    }
    pmp_multipart_init(&self->held);
    int local = s_is_this_host(frontend_host);
    self->frontend_pid = local ? frontend_pid : 0;
    if (strncmp(endpoint, "ipc://", 6) == 0) {
        if (!(self->ipc_path = strdup(endpoint + 6))) {
            pmp_error_set(err, "out of memory");
            goto fail;
        }
        if (s_connect_link(self, self->ipc_path, credentials, err) < 0)
            goto fail;
        return self;
    }
    self->ctx = zmq_ctx_new();
    if (!self->ctx) {
        pmp_error_set(err, "cannot create a ZeroMQ context: %s", zmq_strerror(errno));
        goto fail;
    }
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!self->sock) {
        pmp_error_set(err, "cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int linger = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (s_secure(self->sock, endpoint, credentials, err) != 0)
        goto fail;
    if (!local && s_watch_connection(self, err) != 0)
        goto fail;
    if (zmq_connect(self->sock, endpoint) != 0) {
        pmp_error_set(err, "cannot connect to the frontend at '%s': %s", endpoint,
                      zmq_strerror(errno));
        goto fail;
    }
    return self;
fail:;
    int saved = errno;
    pmp_link_destroy(&self->link);
    if (self->monitor)
        zmq_close(self->monitor);
    if (self->sock)
        zmq_close(self->sock);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    free(self->ipc_path);
    free(self);
    errno = saved;
    return NULL;
}

void pmp_leader_header(zmq_msg_t *part, int type, uint64_t task_id, uint32_t flags,
                       uint32_t nframes)
{
    pmp_header_t hdr = {.version = PMP_PROTOCOL_VERSION,
                        .type = (uint16_t)type,
                        .task_id = task_id,
                        .flags = flags,
                        .nframes = nframes};
    PMP_ASSERT(zmq_msg_init_size(part, PMP_HEADER_SIZE) == 0);
    pmp_header_encode(&hdr, zmq_msg_data(part));
}

int pmp_leader_send(pmp_leader_t *self, zmq_msg_t *parts, size_t n)
{
    if (self->link) { /* written before this returns: the buffers are released */
        if (pmp_link_send(self->link, parts, n) == 0 && pmp_link_flush_wait(self->link, -1) == 0)
            return 0;
        int saved = errno;
        pmp_log(PMP_LOG_ERROR, "cannot send to the frontend: %s", strerror(saved));
        errno = saved;
        return -1;
    }
    size_t i = 0;
    int rc = 0;
    for (; i < n; i++) {
        int more = i + 1 < n ? ZMQ_SNDMORE : 0;
        int r;
        do
            r = zmq_msg_send(&parts[i], self->sock, more);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
            rc = -1;
            break;
        }
    }
    if (rc != 0) {
        int saved = errno;
        pmp_log(PMP_LOG_ERROR, "cannot send to the frontend: %s", zmq_strerror(saved));
        for (; i < n; i++)
            zmq_msg_close(&parts[i]);
        errno = saved;
    }
    return rc;
}

/* Sends a message whose only frame is the given bytes (copied). */
static int s_send_simple(pmp_leader_t *self, int type, const void *data, size_t size)
{
    zmq_msg_t parts[2];
    pmp_leader_header(&parts[0], type, 0, 0, 1);
    PMP_ASSERT(zmq_msg_init_size(&parts[1], size) == 0);
    if (size)
        memcpy(zmq_msg_data(&parts[1]), data, size);
    return pmp_leader_send(self, parts, 2);
}

int pmp_leader_send_hello(pmp_leader_t *self, const pmp_hello_t *hello,
                          const pmp_hello_rank_t *ranks, size_t nranks)
{
    /* each rank's entry: two numbers of at most 20 digits, two ':', a ','
     * and a host of at most PMP_HELLO_TEXT_MAX - 1 bytes */
    size_t size = 8 * PMP_HELLO_TEXT_MAX + nranks * (PMP_HELLO_TEXT_MAX + 48) + 16;
    char *text = malloc(size);
    if (!text)
        return -1;
    int n = pmp_hello_encode(hello, text, size);
    if (n >= 0 && nranks > 0) {
        int m = pmp_hello_ranks_encode(ranks, nranks, text + n, size - (size_t)n);
        n = m < 0 ? -1 : n + m;
    }
    int rc = n < 0 ? -1 : s_send_simple(self, PMP_MSG_HELLO, text, (size_t)n);
    free(text);
    if (rc != 0)
        return -1;
    self->greeted = 1;
    return 0;
}

void pmp_leader_destroy(pmp_leader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_leader_t *self = *self_p;
    if (self->link) {
        if (self->greeted && !self->frontend_gone)
            s_send_simple(self, PMP_MSG_GOODBYE, NULL, 0); /* written when it returns */
        pmp_link_destroy(&self->link);
        free(self->ipc_path);
        free(self);
        *self_p = NULL;
        return;
    }
    if (self->greeted && !self->frontend_gone) {
        int linger = S_GOODBYE_LINGER_MS;
        zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
        s_send_simple(self, PMP_MSG_GOODBYE, NULL, 0);
    }
    pmp_multipart_clear(&self->held);
    if (self->monitor)
        zmq_close(self->monitor);
    zmq_close(self->sock);
    while (zmq_ctx_term(self->ctx) != 0 && errno == EINTR)
        ;
    free(self->ipc_path);
    free(self);
    *self_p = NULL;
}

static int s_frontend_alive(pmp_leader_t *self)
{
    struct stat st;
    if (self->ipc_path && stat(self->ipc_path, &st) == -1 && errno == ENOENT)
        return 0;
    if (self->monitor) {
        s_read_monitor(self);
        long quiet = s_now_ms() - self->since_ms;
        if (!self->connected &&
            quiet >= (self->ever_connected ? S_LOST_AFTER_MS : S_UNREACHED_AFTER_MS))
            return 0;
    }
    if (self->frontend_pid <= 0)
        return 1;
    if (kill(self->frontend_pid, 0) == -1 && errno == ESRCH)
        return 0;
    return 1;
}

static pmp_rtmsg_t *s_shutdown_msg(void)
{
    pmp_rtmsg_t *msg = pmp_rtmsg_new(0, 1);
    PMP_ASSERT(msg != NULL);
    msg->type = PMP_MSG_SHUTDOWN;
    return msg;
}

/* The message of a checked header, its frames moved out of frames[0 ..
 * hdr->nframes). */
static pmp_rtmsg_t *s_build(const pmp_header_t *hdr, zmq_msg_t *frames)
{
    pmp_rtmsg_t *msg = pmp_rtmsg_new(hdr->nframes, 1);
    PMP_ASSERT(msg != NULL);
    msg->type = hdr->type;
    msg->task_id = hdr->task_id;
    msg->flags = hdr->flags;
    for (size_t i = 0; i < hdr->nframes; i++)
        zmq_msg_move(&msg->zmsgs[i], &frames[i]);
    pmp_rtmsg_sync_zmq(msg);
    if (pmp_log_enabled(PMP_LOG_DEBUG))
        pmp_log(PMP_LOG_DEBUG, "received %s, task %llu, %u frames", pmp_msg_type_name(msg->type),
                (unsigned long long)msg->task_id, msg->nframes);
    return msg;
}

/* The message a check found valid, its frames moved out of parts[1..n):
 * parts[0] is the header.  NULL (dropped, logged) when the header is
 * malformed. */
static pmp_rtmsg_t *s_message(zmq_msg_t *parts, size_t n)
{
    pmp_header_t hdr;
    pmp_error_t err;
    if (pmp_header_decode(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), &hdr, &err) != 0 ||
        pmp_header_check(&hdr, n - 1, 0, &err) != 0) {
        pmp_log(PMP_LOG_WARNING, "dropped a malformed message from the frontend: %s", err.text);
        return NULL;
    }
    return s_build(&hdr, parts + 1);
}

/* The next protocol message of the held ZeroMQ message (a batch,
 * pmp_protocol.h), or NULL when it has no more, which frees it.  A
 * malformed header drops the rest of the batch. */
static pmp_rtmsg_t *s_take_held(pmp_leader_t *self)
{
    if (self->held_at < self->held.n) {
        zmq_msg_t *part = &self->held.parts[self->held_at];
        size_t left = self->held.n - self->held_at;
        pmp_header_t hdr;
        pmp_error_t err;
        if (pmp_header_next(zmq_msg_data(part), zmq_msg_size(part), left, 0, &hdr, &err) == 0) {
            self->held_at += 1 + hdr.nframes;
            return s_build(&hdr, part + 1);
        }
        pmp_log(PMP_LOG_WARNING, "dropped a malformed message from the frontend%s: %s",
                self->held_at > 0 ? " (and the rest of its batch)" : "", err.text);
    }
    pmp_multipart_clear(&self->held);
    self->held_at = 0;
    return NULL;
}

/* pmp_leader_recv over the local link: the frontend's end of file is its
 * death or its goodbye, so besides it only the process check of idle
 * seconds is needed. */
static pmp_rtmsg_t *s_recv_link(pmp_leader_t *self, pmp_python_t *py)
{
    for (;;) {
        pmp_python_drain(py);
        zmq_msg_t *parts;
        size_t n;
        int rc = pmp_link_recv(self->link, &parts, &n);
        if (rc > 0) {
            pmp_rtmsg_t *msg = s_message(parts, n);
            if (msg)
                return msg;
            continue;
        }
        if (rc < 0) {
            if (errno == ECONNRESET)
                pmp_log(PMP_LOG_WARNING,
                        "the frontend closed the connection (it is gone); shutting down");
            else
                pmp_log(PMP_LOG_WARNING, "the link to the frontend failed: %s; shutting down",
                        strerror(errno));
            self->frontend_gone = 1;
            return s_shutdown_msg();
        }
        struct pollfd p = {.fd = pmp_link_fd(self->link), .events = POLLIN};
        rc = poll(&p, 1, S_IDLE_POLL_MS);
        if (rc == 0 && !s_frontend_alive(self)) {
            pmp_log(PMP_LOG_WARNING, "the frontend (pid %ld) is gone; shutting down",
                    (long)self->frontend_pid);
            self->frontend_gone = 1;
            return s_shutdown_msg();
        }
    }
}

pmp_rtmsg_t *pmp_leader_recv(pmp_leader_t *self, pmp_python_t *py)
{
    if (self->link)
        return s_recv_link(self, py);
    long last_check = s_now_ms();
    int polled = 0; /* a message already queued is taken without a poll */
    for (;;) {
        pmp_python_drain(py);
        pmp_rtmsg_t *next = s_take_held(self); /* the rest of a batch first */
        if (next)
            return next;
        if (polled) {
            zmq_pollitem_t item = {.socket = self->sock, .events = ZMQ_POLLIN};
            int timeout = pmp_python_pending(py) ? S_BUSY_POLL_MS : S_IDLE_POLL_MS;
            int rc = zmq_poll(&item, 1, timeout);
            if (rc < 0 && errno != EINTR) {
                pmp_log(PMP_LOG_ERROR, "cannot poll the frontend socket: %s; shutting down",
                        zmq_strerror(errno));
                return s_shutdown_msg();
            }
            if (rc <= 0 || !(item.revents & ZMQ_POLLIN)) {
                if (s_now_ms() - last_check >= S_IDLE_POLL_MS) {
                    last_check = s_now_ms();
                    if (!s_frontend_alive(self)) {
                        pmp_log(PMP_LOG_WARNING,
                                "the frontend (pid %ld) or its socket is gone; shutting down",
                                (long)self->frontend_pid);
                        self->frontend_gone = 1;
                        return s_shutdown_msg();
                    }
                }
                continue;
            }
        }
        polled = 1;
        if (pmp_multipart_recv(&self->held, self->sock, ZMQ_DONTWAIT, (size_t)PMP_MAX_FRAMES + 1) <
            0) {
            PMP_ASSERT(errno != ENOMEM);
            continue;
        }
        if (self->held.dropped) {
            pmp_log(PMP_LOG_WARNING, "dropped a message with more than %d frames",
                    PMP_MAX_FRAMES + 1);
            pmp_multipart_clear(&self->held);
            continue;
        }
        pmp_error_t err;
        if (pmp_pack_unpack(&self->held, 0, (size_t)PMP_MAX_FRAMES + 1, &err) < 0) {
            PMP_ASSERT(errno != ENOMEM);
            pmp_log(PMP_LOG_WARNING, "dropped a malformed pack from the frontend: %s", err.text);
            pmp_multipart_clear(&self->held);
            continue;
        }
        pmp_rtmsg_t *msg = s_take_held(self);
        if (msg)
            return msg;
    }
}
