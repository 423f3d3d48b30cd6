/*
 * pmp_leader.c - the leader's DEALER socket (see pmp_leader.h).
 *
 * Receiving: parts are collected into a growing array of zmq_msg_t (moved
 * with zmq_msg_move when the array grows, never copied byte-wise), then the
 * header is decoded and checked against the number of parts with
 * pmp_header_check(from_worker = 0).  Only then does the message become a
 * pmp_rtmsg_t.  A message with more parts than the protocol allows is
 * drained and dropped.
 *
 * Watching the frontend: ZeroMQ does not tell a DEALER that its peer is
 * gone, so every idle second the leader checks that the frontend process
 * still exists and, for an ipc:// endpoint, that its socket file does: the
 * frontend removes it when the executor is destroyed, which is the only sign
 * a job started by a queue adapter (and still waiting to say hello) gets.
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
#include <sys/stat.h>
#include <time.h>

#define S_IDLE_POLL_MS 1000
#define S_BUSY_POLL_MS 10
#define S_GOODBYE_LINGER_MS 1000

struct pmp_leader {
    void *ctx;
    void *sock;
    pid_t frontend_pid;
    char *ipc_path; /* socket file of an ipc:// endpoint, else NULL */
    int frontend_gone;
    int greeted; /* HELLO was sent: say GOODBYE at the end */
};

static long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

pmp_leader_t *pmp_leader_new(const char *endpoint, pid_t frontend_pid, pmp_error_t *err)
{
    pmp_leader_t *self = calloc(1, sizeof *self);
    if (!self) {
        pmp_error_set(err, "out of memory");
        return NULL;
    }
    self->frontend_pid = frontend_pid;
    if (strncmp(endpoint, "ipc://", 6) == 0 && !(self->ipc_path = strdup(endpoint + 6))) {
        pmp_error_set(err, "out of memory");
        goto fail;
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
    if (zmq_connect(self->sock, endpoint) != 0) {
        pmp_error_set(err, "cannot connect to the frontend at '%s': %s", endpoint,
                      zmq_strerror(errno));
        goto fail;
    }
    return self;
fail:;
    int saved = errno;
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

int pmp_leader_send_hello(pmp_leader_t *self, const pmp_hello_t *hello)
{
    char text[8 * PMP_HELLO_TEXT_MAX];
    int n = pmp_hello_encode(hello, text, sizeof text);
    if (n < 0)
        return -1;
    if (s_send_simple(self, PMP_MSG_HELLO, text, (size_t)n) != 0)
        return -1;
    self->greeted = 1;
    return 0;
}

void pmp_leader_destroy(pmp_leader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_leader_t *self = *self_p;
    if (self->greeted && !self->frontend_gone) {
        int linger = S_GOODBYE_LINGER_MS;
        zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
        s_send_simple(self, PMP_MSG_GOODBYE, NULL, 0);
    }
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

static void s_close_parts(zmq_msg_t *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

/* Receives the rest of a multipart message after parts[0].  Returns the
 * number of parts (>= 1), with *parts_p possibly reallocated; more than
 * PMP_MAX_FRAMES + 1 parts are received and dropped (returns 0). */
static size_t s_recv_rest(pmp_leader_t *self, zmq_msg_t **parts_p, size_t *cap_p)
{
    size_t n = 1;
    int dropping = 0;
    zmq_msg_t *parts = *parts_p;
    for (;;) {
        int more = 0;
        size_t len = sizeof more;
        zmq_getsockopt(self->sock, ZMQ_RCVMORE, &more, &len);
        if (!more)
            break;
        if (n == *cap_p && !dropping) {
            if (*cap_p >= (size_t)PMP_MAX_FRAMES + 1) {
                dropping = 1;
            } else {
                size_t cap = *cap_p * 2;
                zmq_msg_t *grown = malloc(cap * sizeof *grown);
                PMP_ASSERT(grown != NULL);
                for (size_t i = 0; i < n; i++) {
                    zmq_msg_init(&grown[i]);
                    zmq_msg_move(&grown[i], &parts[i]);
                    zmq_msg_close(&parts[i]);
                }
                free(parts);
                parts = grown;
                *cap_p = cap;
                *parts_p = parts;
            }
        }
        zmq_msg_t scratch;
        zmq_msg_t *dst = dropping ? &scratch : &parts[n];
        zmq_msg_init(dst);
        while (zmq_msg_recv(dst, self->sock, 0) < 0) {
            PMP_ASSERT(errno == EINTR);
        }
        if (dropping)
            zmq_msg_close(dst);
        else
            n++;
    }
    if (dropping) {
        s_close_parts(parts, n);
        return 0;
    }
    return n;
}

pmp_rtmsg_t *pmp_leader_recv(pmp_leader_t *self, pmp_python_t *py)
{
    long last_check = s_now_ms();
    for (;;) {
        pmp_python_drain(py);
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
        size_t cap = 8;
        zmq_msg_t *parts = malloc(cap * sizeof *parts);
        PMP_ASSERT(parts != NULL);
        zmq_msg_init(&parts[0]);
        if (zmq_msg_recv(&parts[0], self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&parts[0]);
            free(parts);
            continue;
        }
        size_t n = s_recv_rest(self, &parts, &cap);
        if (n == 0) {
            pmp_log(PMP_LOG_WARNING, "dropped a message with more than %d frames",
                    PMP_MAX_FRAMES + 1);
            free(parts);
            continue;
        }
        pmp_header_t hdr;
        pmp_error_t err;
        if (pmp_header_decode(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), &hdr, &err) != 0 ||
            pmp_header_check(&hdr, n - 1, 0, &err) != 0) {
            pmp_log(PMP_LOG_WARNING, "dropped a malformed message from the frontend: %s", err.text);
            s_close_parts(parts, n);
            free(parts);
            continue;
        }
        pmp_rtmsg_t *msg = pmp_rtmsg_new((uint32_t)(n - 1), 1);
        PMP_ASSERT(msg != NULL);
        msg->type = hdr.type;
        msg->task_id = hdr.task_id;
        msg->flags = hdr.flags;
        for (size_t i = 1; i < n; i++)
            zmq_msg_move(&msg->zmsgs[i - 1], &parts[i]);
        pmp_rtmsg_sync_zmq(msg);
        s_close_parts(parts, n);
        free(parts);
        if (pmp_log_enabled(PMP_LOG_DEBUG))
            pmp_log(PMP_LOG_DEBUG, "received %s, task %llu, %u frames",
                    pmp_msg_type_name(msg->type), (unsigned long long)msg->task_id, msg->nframes);
        return msg;
    }
}
