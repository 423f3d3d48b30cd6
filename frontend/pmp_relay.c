/*
 * pmp_relay.c - the job's stdout, relayed (see pmp_relay.h).
 *
 * Why not simply let the job inherit fd 1, as before: the MPI launcher
 * writes its own failure banner there (MPICH's hydra), so every terminated
 * Pool printed launcher noise into the user's output.  A pipe lets the
 * frontend take that banner out; the cost is one more descriptor in the I/O
 * thread's poll set and a copy of what the tasks print.
 *
 * Never blocking on the user's stdout.  out_fd shares its open file
 * description with the user's fd 1, so it cannot be made non-blocking
 * without making the user's own writes fail with EAGAIN.  Instead a write
 * is attempted only when poll() says out_fd is writable, and is at most
 * PIPE_BUF bytes: a pipe that polls writable has a free page and takes that
 * much without blocking, a regular file always does, and a terminal takes
 * it unless it is stopped (XOFF), in which case the user's own output
 * stops too.  A socket gets send() with MSG_DONTWAIT | MSG_NOSIGNAL.
 * EAGAIN (the user made fd 1 non-blocking) just waits for the next
 * POLLOUT.  Writing to a pipe whose reader is gone raises SIGPIPE for the
 * writing thread: the write is done with SIGPIPE blocked, and a SIGPIPE it
 * left pending is taken back with sigtimedwait(), so the process neither
 * dies of it nor sees it, whatever its disposition (CPython ignores it;
 * the library does not rely on that).
 *
 * Held output: the banner filter holds an empty line or a line of '=' until
 * the next line says whether a banner starts; when nothing follows within
 * S_HOLD_MS it is let go as program output.
 */
#define _GNU_SOURCE
#include "pmp_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pmp_banner.h"
#include "pmp_error.h"

#define S_READ_CHUNK 4096
#define S_OUT_CAP (64 * 1024 + 2 * S_READ_CHUNK) /* queued output, see s_room */
#define S_HOLD_MS 100

struct pmp_relay {
    int in_fd, out_fd;
    int is_socket;
    int eof;    /* the pipe reached end of file */
    int broken; /* out_fd failed: output is dropped */
    pmp_banner_t *filter;
    pmp_relay_banner_fn *banner;
    void *arg;
    int64_t last_input_ms; /* when bytes last came in (held output's clock) */
    size_t start, len;     /* queued output: out[start .. start+len) */
    char out[S_OUT_CAP];
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

pmp_relay_t *pmp_relay_new(int in_fd, int out_fd, pmp_relay_banner_fn *banner, void *arg)
{
    pmp_relay_t *self = calloc(1, sizeof *self);
    pmp_banner_t *filter = pmp_banner_new();
    if (!self || !filter) {
        free(self);
        pmp_banner_destroy(&filter);
        close(in_fd);
        if (out_fd >= 0)
            close(out_fd);
        errno = ENOMEM;
        return NULL;
    }
    self->in_fd = in_fd;
    self->out_fd = out_fd;
    self->filter = filter;
    self->banner = banner;
    self->arg = arg;
    fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    struct stat st;
    self->is_socket = out_fd >= 0 && fstat(out_fd, &st) == 0 && S_ISSOCK(st.st_mode);
    self->broken = out_fd < 0;
    return self;
}

void pmp_relay_destroy(pmp_relay_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_relay_t *self = *self_p;
    if (self->in_fd >= 0)
        close(self->in_fd);
    if (self->out_fd >= 0)
        close(self->out_fd);
    pmp_banner_destroy(&self->filter);
    free(self);
    *self_p = NULL;
}

/* ---- output ------------------------------------------------------------- */

/* A filter sink: program output is queued for out_fd, the banner handed to
 * the owner. */
static void s_sink(void *arg, int banner, const char *data, size_t len)
{
    pmp_relay_t *self = arg;
    if (banner) {
        if (self->banner)
            self->banner(self->arg, data, len);
        return;
    }
    if (self->broken)
        return;
    if (self->start + self->len + len > S_OUT_CAP) {
        memmove(self->out, self->out + self->start, self->len);
        self->start = 0;
    }
    if (self->len + len > S_OUT_CAP) { /* cannot happen: s_room keeps space */
        len = S_OUT_CAP - self->len;
        pmp_log(PMP_LOG_WARNING, "frontend: dropped job output that did not fit the relay");
    }
    memcpy(self->out + self->start + self->len, data, len);
    self->len += len;
}

/* write() that raises no SIGPIPE: the signal is blocked around it and, if
 * the write raised it, consumed before it is unblocked. */
static ssize_t s_write_quietly(int fd, const void *data, size_t len)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w = write(fd, data, len);
    int e = errno;
    if (w < 0 && e == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return w;
}

/* Writes queued output while out_fd takes it without blocking. */
static void s_write_some(pmp_relay_t *self)
{
    while (self->len > 0 && !self->broken) {
        const char *p = self->out + self->start;
        ssize_t w;
        if (self->is_socket) {
            w = send(self->out_fd, p, self->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            struct pollfd pfd = {.fd = self->out_fd, .events = POLLOUT};
            int r = poll(&pfd, 1, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return; /* no room now: the next POLLOUT brings us back */
            w = s_write_quietly(self->out_fd, p, self->len < PIPE_BUF ? self->len : PIPE_BUF);
        }
        if (w > 0) {
            self->start += (size_t)w;
            self->len -= (size_t)w;
            if (self->len == 0)
                self->start = 0;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        pmp_log(PMP_LOG_INFO, "frontend: stopped relaying the job's stdout: %s",
                w < 0 ? strerror(errno) : "nothing could be written");
        self->broken = 1;
        self->start = self->len = 0;
    }
}

/* Whether a whole read and a flush of the filter still fit the queue. */
static int s_room(const pmp_relay_t *self)
{
    return self->len + S_READ_CHUNK + 2048 <= S_OUT_CAP;
}

/* ---- the pipe --------------------------------------------------------------- */

int pmp_relay_pollfds(const pmp_relay_t *self, struct pollfd *fds, int *timeout_ms)
{
    int n = 0;
    if (self->in_fd >= 0 && s_room(self))
        fds[n++] = (struct pollfd){.fd = self->in_fd, .events = POLLIN};
    if (self->len > 0 && !self->broken)
        fds[n++] = (struct pollfd){.fd = self->out_fd, .events = POLLOUT};
    if (pmp_banner_holding(self->filter)) {
        int64_t left = self->last_input_ms + S_HOLD_MS - s_now_ms();
        int t = left > 0 ? (int)left : 0;
        if (*timeout_ms < 0 || t < *timeout_ms)
            *timeout_ms = t;
    }
    return n;
}

int pmp_relay_pump(pmp_relay_t *self)
{
    char buf[S_READ_CHUNK];
    while (self->in_fd >= 0 && s_room(self)) {
        ssize_t n = read(self->in_fd, buf, sizeof buf);
        if (n > 0) {
            self->last_input_ms = s_now_ms();
            pmp_banner_feed(self->filter, buf, (size_t)n, s_sink, self);
            s_write_some(self); /* promptly, and to make room */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        close(self->in_fd); /* end of file, or a pipe that failed */
        self->in_fd = -1;
        self->eof = 1;
        pmp_banner_flush(self->filter, 1, s_sink, self);
    }
    if (pmp_banner_holding(self->filter) && s_now_ms() - self->last_input_ms >= S_HOLD_MS)
        pmp_banner_flush(self->filter, 0, s_sink, self);
    s_write_some(self);
    return self->eof && (self->len == 0 || self->broken);
}
