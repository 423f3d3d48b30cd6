/*
 * pmp_link.c - frames over a local stream socket (see pmp_link.h).
 *
 * Place in the design: the transport under the frontend's I/O thread and
 * a group leader when both run on one host; above it nothing changes, the
 * messages are the frames of pmp_protocol.h as ZeroMQ would carry them.
 *
 * Sending.  A message's frames join the output queue, each with its
 * 8-byte prefix, and sendmsg() gets as many of them as fit in one iovec
 * array (MSG_NOSIGNAL: a dead peer is EPIPE, not a signal).  What the
 * kernel did not take stays queued with the offset reached; a frame
 * leaves the queue, and is closed, when its last byte is written.  The
 * queue is an array with a head index, compacted when it runs out of
 * room at the end: zmq_msg_t is moved with zmq_msg_move, never copied.
 *
 * Receiving.  Bytes are read into a 64 KiB buffer and cut into frames
 * there; a frame body is copied out of the buffer into its own zmq_msg_t.
 * Once the buffer is empty and a body still lacks S_DIRECT bytes or more,
 * the rest is read straight into the frame's memory.  A message is handed
 * out when a frame without PMP_LINK_MORE completes; the bytes after it
 * stay in the buffer for the next call, so a burst of small messages
 * costs one read().
 */
#define _GNU_SOURCE
#include "pmp_link.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "pmp_le.h"
#include "pmp_protocol.h"

#define S_RXBUF (64 * 1024)
#define S_DIRECT (64 * 1024)
#define S_IOV 64

typedef struct {
    zmq_msg_t msg;
    unsigned char prefix[PMP_LINK_PREFIX_SIZE];
} s_out_t;

struct pmp_link {
    int fd;
    uint64_t max_frame;
    /* output: out[head .. head+count), done bytes of out[head] written */
    s_out_t *out;
    size_t head, count, cap, done, unsent;
    /* input: buf[start .. end) not yet parsed */
    unsigned char *buf;
    size_t start, end;
    zmq_msg_t *parts; /* the message being read (or the one handed out) */
    size_t nparts, parts_cap;
    int handed_out; /* parts[0..nparts) were handed out by the last recv */
    int in_body;    /* parts[nparts-1] is still being filled */
    size_t got;     /* bytes of parts[nparts-1] filled */
    int more;       /* the current frame has PMP_LINK_MORE */
};

pmp_link_t *pmp_link_new(int fd, uint64_t max_frame)
{
    pmp_link_t *self = calloc(1, sizeof *self);
    if (self)
        self->buf = malloc(S_RXBUF);
    if (!self || !self->buf) {
        if (self)
            free(self);
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    self->fd = fd;
    self->max_frame = max_frame;
    return self;
}

static void s_close_parts(pmp_link_t *self)
{
    for (size_t i = 0; i < self->nparts; i++)
        zmq_msg_close(&self->parts[i]);
    self->nparts = 0;
    self->in_body = 0;
    self->handed_out = 0;
}

/* The peer is gone: what is queued will never leave. */
static void s_drop_out(pmp_link_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        zmq_msg_close(&self->out[self->head + i].msg);
    self->head = self->count = self->done = self->unsent = 0;
}

void pmp_link_destroy(pmp_link_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_link_t *self = *self_p;
    s_drop_out(self);
    s_close_parts(self);
    if (self->fd >= 0)
        close(self->fd);
    free(self->out);
    free(self->parts);
    free(self->buf);
    free(self);
    *self_p = NULL;
}

int pmp_link_fd(const pmp_link_t *self)
{
    return self->fd;
}

void pmp_link_set_max_frame(pmp_link_t *self, uint64_t max_frame)
{
    self->max_frame = max_frame;
}

size_t pmp_link_unsent(const pmp_link_t *self)
{
    return self->unsent;
}

/* Room for n more entries at the end of the output array. */
static int s_out_room(pmp_link_t *self, size_t n)
{
    if (self->head + self->count + n <= self->cap)
        return 0;
    size_t cap = self->cap;
    if (self->count + n > cap / 2) /* grow; otherwise only compact */
        cap = (self->count + n) * 2 < 16 ? 16 : (self->count + n) * 2;
    s_out_t *out = cap == self->cap ? self->out : malloc(cap * sizeof *out);
    if (!out)
        return -1;
    for (size_t i = 0; i < self->count; i++) {
        s_out_t *from = &self->out[self->head + i], *to = &out[i];
        zmq_msg_init(&to->msg);
        zmq_msg_move(&to->msg, &from->msg);
        memcpy(to->prefix, from->prefix, sizeof to->prefix);
        if (out == self->out)
            continue;
        zmq_msg_close(&from->msg);
    }
    if (out != self->out) {
        free(self->out);
        self->out = out;
        self->cap = cap;
    }
    self->head = 0;
    return 0;
}

int pmp_link_flush(pmp_link_t *self)
{
    while (self->count > 0) {
        struct iovec iov[2 * S_IOV];
        int niov = 0;
        size_t skip = self->done;
        for (size_t i = 0; i < self->count && niov + 2 <= 2 * S_IOV; i++) {
            s_out_t *e = &self->out[self->head + i];
            size_t size = zmq_msg_size(&e->msg);
            if (skip < PMP_LINK_PREFIX_SIZE) {
                iov[niov].iov_base = e->prefix + skip;
                iov[niov++].iov_len = PMP_LINK_PREFIX_SIZE - skip;
                skip = 0;
            } else {
                skip -= PMP_LINK_PREFIX_SIZE;
            }
            if (size > skip) {
                iov[niov].iov_base = (char *)zmq_msg_data(&e->msg) + skip;
                iov[niov++].iov_len = size - skip;
            }
            skip = 0;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
        ssize_t w = sendmsg(self->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        size_t left = (size_t)w;
        self->unsent -= left;
        while (left > 0) {
            s_out_t *e = &self->out[self->head];
            size_t total = PMP_LINK_PREFIX_SIZE + zmq_msg_size(&e->msg);
            size_t take = total - self->done < left ? total - self->done : left;
            self->done += take;
            left -= take;
            if (self->done == total) {
                zmq_msg_close(&e->msg);
                self->head++;
                self->count--;
                self->done = 0;
            }
        }
    }
    self->head = 0;
    return 0;
}

int pmp_link_queue(pmp_link_t *self, zmq_msg_t *parts, size_t n)
{
    if (self->fd < 0 || s_out_room(self, n) < 0) {
        int e = self->fd < 0 ? EPIPE : ENOMEM;
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
        errno = e;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        s_out_t *e = &self->out[self->head + self->count++];
        zmq_msg_init(&e->msg);
        zmq_msg_move(&e->msg, &parts[i]);
        uint64_t size = zmq_msg_size(&e->msg);
        pmp_le_put(e->prefix, size | (i + 1 < n ? PMP_LINK_MORE : 0), 8);
        self->unsent += PMP_LINK_PREFIX_SIZE + size;
    }
    return 0;
}

int pmp_link_send(pmp_link_t *self, zmq_msg_t *parts, size_t n)
{
    if (pmp_link_queue(self, parts, n) < 0)
        return -1;
    if (pmp_link_flush(self) == 0)
        return 0;
    int e = errno;
    s_drop_out(self);
    errno = e;
    return -1;
}

static long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int pmp_link_flush_wait(pmp_link_t *self, int timeout_ms)
{
    long deadline = timeout_ms < 0 ? -1 : s_now_ms() + timeout_ms;
    for (;;) {
        if (pmp_link_flush(self) < 0)
            return -1;
        if (self->count == 0)
            return 0;
        long left = deadline < 0 ? -1 : deadline - s_now_ms();
        if (deadline >= 0 && left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {.fd = self->fd, .events = POLLOUT};
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return -1;
    }
}

/* Starts a frame of size bytes in the message being read. */
static int s_begin_frame(pmp_link_t *self, uint64_t word)
{
    uint64_t size = word & ~PMP_LINK_MORE;
    if (size > self->max_frame || self->nparts >= (size_t)PMP_MAX_FRAMES + 1) {
        errno = EPROTO;
        return -1;
    }
    if (self->nparts == self->parts_cap) {
        size_t cap = self->parts_cap ? self->parts_cap * 2 : 8;
        zmq_msg_t *parts = malloc(cap * sizeof *parts);
        if (!parts) {
            errno = ENOMEM;
            return -1;
        }
        for (size_t i = 0; i < self->nparts; i++) {
            zmq_msg_init(&parts[i]);
            zmq_msg_move(&parts[i], &self->parts[i]);
            zmq_msg_close(&self->parts[i]);
        }
        free(self->parts);
        self->parts = parts;
        self->parts_cap = cap;
    }
    zmq_msg_t *m = &self->parts[self->nparts];
    if (zmq_msg_init_size(m, (size_t)size) != 0) {
        errno = ENOMEM;
        return -1;
    }
    self->nparts++;
    self->in_body = 1;
    self->got = 0;
    self->more = (word & PMP_LINK_MORE) != 0;
    return 0;
}

/* Cuts frames out of the buffer.  1: a message is complete; 0: more bytes
 * are needed; -1: the link ended. */
static int s_parse(pmp_link_t *self)
{
    for (;;) {
        if (self->in_body) {
            zmq_msg_t *m = &self->parts[self->nparts - 1];
            size_t want = zmq_msg_size(m) - self->got;
            size_t have = self->end - self->start;
            size_t take = want < have ? want : have;
            if (take) {
                memcpy((char *)zmq_msg_data(m) + self->got, self->buf + self->start, take);
                self->got += take;
                self->start += take;
            }
            if (self->got < zmq_msg_size(m))
                return 0;
            self->in_body = 0;
            if (!self->more)
                return 1;
            continue;
        }
        if (self->end - self->start < PMP_LINK_PREFIX_SIZE)
            return 0;
        uint64_t word = pmp_le_get(self->buf + self->start, 8);
        self->start += PMP_LINK_PREFIX_SIZE;
        if (s_begin_frame(self, word) < 0)
            return -1;
    }
}

int pmp_link_recv(pmp_link_t *self, zmq_msg_t **parts, size_t *n)
{
    if (self->handed_out)
        s_close_parts(self);
    if (self->fd < 0) {
        errno = ECONNRESET;
        return -1;
    }
    for (;;) {
        int rc = s_parse(self);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            self->handed_out = 1;
            *parts = self->parts;
            *n = self->nparts;
            return 1;
        }
        ssize_t r;
        if (self->in_body && self->start == self->end &&
            zmq_msg_size(&self->parts[self->nparts - 1]) - self->got >= S_DIRECT) {
            zmq_msg_t *m = &self->parts[self->nparts - 1];
            r = read(self->fd, (char *)zmq_msg_data(m) + self->got, zmq_msg_size(m) - self->got);
            if (r > 0) {
                self->got += (size_t)r;
                continue;
            }
        } else {
            if (self->start == self->end)
                self->start = self->end = 0;
            else if (self->end == S_RXBUF) {
                memmove(self->buf, self->buf + self->start, self->end - self->start);
                self->end -= self->start;
                self->start = 0;
            }
            r = read(self->fd, self->buf + self->end, S_RXBUF - self->end);
            if (r > 0) {
                self->end += (size_t)r;
                continue;
            }
        }
        if (r == 0) {
            errno = ECONNRESET;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -1;
    }
}

int pmp_link_greeting(zmq_msg_t *part, const char *password)
{
    size_t len = strlen(password);
    if (len > PMP_LINK_GREETING_MAX - 8) {
        errno = EINVAL;
        return -1;
    }
    if (zmq_msg_init_size(part, 8 + len) != 0) {
        errno = ENOMEM;
        return -1;
    }
    unsigned char *p = zmq_msg_data(part);
    memcpy(p, PMP_LINK_MAGIC, 4);
    p[4] = (unsigned char)(PMP_LINK_VERSION & 0xff);
    p[5] = (unsigned char)(PMP_LINK_VERSION >> 8);
    p[6] = p[7] = 0;
    memcpy(p + 8, password, len);
    return 0;
}

int pmp_link_greeting_decode(const void *data, size_t len, const unsigned char **password,
                             size_t *password_len, pmp_error_t *err)
{
    const unsigned char *p = data;
    if (len < 8 || len > PMP_LINK_GREETING_MAX || memcmp(p, PMP_LINK_MAGIC, 4) != 0) {
        pmp_error_set(err, "not a pympipool link greeting (%zu bytes)", len);
        errno = EPROTO;
        return -1;
    }
    unsigned version = p[4] | (unsigned)p[5] << 8;
    if (version != PMP_LINK_VERSION || p[6] || p[7]) {
        pmp_error_set(err, "link version %u (%u expected)", version, (unsigned)PMP_LINK_VERSION);
        errno = EPROTO;
        return -1;
    }
    *password = p + 8;
    *password_len = len - 8;
    return 0;
}
