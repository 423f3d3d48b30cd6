/*
 * frontend_scale_peers.c - the stand-ins of the frontend-at-scale benchmark
 * (frontend_scale.c has the design): the fake group leaders, ZeroMQ DEALER
 * sockets that authenticate and speak the protocol as the runtime's leader
 * does but answer every task at once, and, for --raw, the bare ROUTER
 * loop that plays the frontend without the frontend library: what ZeroMQ
 * alone costs per message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <zmq.h>

#include "frontend_scale.h"
#include "pmp_multipart.h"
#include "pmp_pack.h"
#include "pmp_protocol.h"

/* ---- the fake group leaders ------------------------------------------------ */

static void s_send_msg(s_peer_thread_t *pt, void *sock, int type, uint64_t id, const void *payload,
                       size_t len, int more)
{
    pmp_header_t hdr = {.type = (uint16_t)type, .task_id = id, .nframes = 1};
    unsigned char buf[PMP_HEADER_SIZE];
    pmp_header_encode(&hdr, buf);
    if (zmq_send(sock, buf, sizeof buf, ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, payload, len, more ? ZMQ_SNDMORE : 0) < 0)
        snprintf(pt->failed, sizeof pt->failed, "send: %s", zmq_strerror(errno));
}

/* The replies to one received message, sent together: one ZeroMQ message
 * of protocol messages back to back, or one pack when the tasks came in a
 * pack (as the runtime may, the fakes then answer in kind). */
typedef struct {
    int type[2 * S_MAX_BATCH + 2];
    uint64_t id[2 * S_MAX_BATCH + 2];
    size_t off[2 * S_MAX_BATCH + 2], len[2 * S_MAX_BATCH + 2];
    size_t n, used;
} s_replies_t;

static void s_send_replies(s_peer_thread_t *pt, void *sock, const s_replies_t *r, int packed)
{
    if (r->n == 0)
        return;
    if (!packed) {
        for (size_t i = 0; i < r->n; i++)
            s_send_msg(pt, sock, r->type[i], r->id[i], pt->out + r->off[i], r->len[i],
                       i + 1 < r->n);
        return;
    }
    pmp_pack_t pack;
    if (pmp_pack_begin(&pack, 2 * r->n, r->n * PMP_HEADER_SIZE + r->used) < 0) {
        snprintf(pt->failed, sizeof pt->failed, "out of memory");
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        pmp_header_t hdr = {.type = (uint16_t)r->type[i], .task_id = r->id[i], .nframes = 1};
        unsigned char buf[PMP_HEADER_SIZE];
        pmp_header_encode(&hdr, buf);
        pmp_pack_add(&pack, buf, sizeof buf);
        pmp_pack_add(&pack, pt->out + r->off[i], r->len[i]);
    }
    if (zmq_msg_send(pmp_pack_msg(&pack), sock, 0) < 0) {
        zmq_msg_close(pmp_pack_msg(&pack));
        snprintf(pt->failed, sizeof pt->failed, "send: %s", zmq_strerror(errno));
    }
}

/* Handles every message waiting on peer p: a TASK is answered at once, a
 * SHUTDOWN with GOODBYE; broadcasts are ignored.  Loops until a receive
 * finds nothing: libzmq processes the socket's pending commands before a
 * non-blocking receive says EAGAIN, so its ZMQ_FD fires again for the next
 * message (the edge-triggered contract of ZMQ_FD) and no ZMQ_EVENTS check
 * (another poll() and getpid()) is needed. */
static void s_drain(s_peer_thread_t *pt, s_peer_t *p)
{
    const size_t cap = 2 * S_MAX_BATCH + 2;
    for (;;) {
        pmp_multipart_t in;
        pmp_multipart_init(&in);
        if (pmp_multipart_recv(&in, p->sock, ZMQ_DONTWAIT, cap) < 0) {
            if (errno != EAGAIN)
                snprintf(pt->failed, sizeof pt->failed, "recv: %s", zmq_strerror(errno));
            return;
        }
        pmp_error_t err = {{0}};
        int packed = in.dropped ? 0 : pmp_pack_unpack(&in, 0, cap, &err);
        if (in.dropped || packed < 0) {
            snprintf(pt->failed, sizeof pt->failed, "group %d: %s", p->group,
                     in.dropped ? "a message of too many frames" : err.text);
            pmp_multipart_clear(&in);
            return;
        }
        /* one protocol message, or several back to back (a batch, --raw
         * --multipart, or a pack), answered alike in one reply */
        s_replies_t r = {.n = 0, .used = 0};
        zmq_msg_t *parts = in.parts;
        size_t n = in.n;
        for (size_t i = 0; i < n && !pt->failed[0];) {
            pmp_header_t hdr;
            if (pmp_header_next(zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i]), n - i, 0, &hdr,
                                &err) < 0) {
                snprintf(pt->failed, sizeof pt->failed, "group %d: bad message: %s", p->group,
                         err.text);
                break;
            }
            if (hdr.type == PMP_MSG_TASK) {
                /* one task id per 8 bytes: one, or a batch (--raw --batch) */
                size_t size = hdr.nframes == 1 ? zmq_msg_size(&parts[i + 1]) : 0;
                if (size == 0 || size % 8 || size > sizeof pt->out - r.used) {
                    snprintf(pt->failed, sizeof pt->failed,
                             "group %d: task %" PRIu64 " has %u frames of %zu bytes", p->group,
                             hdr.task_id, (unsigned)hdr.nframes, size);
                    break;
                }
                const unsigned char *task = zmq_msg_data(&parts[i + 1]);
                for (size_t k = 0; k < size; k += 8) {
                    uint64_t id = s_get64(task + k);
                    s_put64(pt->out + r.used + k, id == hdr.task_id + k / 8 ? s_answer(id) : 0);
                }
                r.type[r.n] = PMP_MSG_RESULT;
                r.id[r.n] = hdr.task_id;
                r.off[r.n] = r.used;
                r.len[r.n++] = size;
                r.used += size;
                p->tasks += size / 8;
            } else if (hdr.type == PMP_MSG_SHUTDOWN) {
                r.type[r.n] = PMP_MSG_GOODBYE;
                r.id[r.n] = 0;
                r.off[r.n] = r.used;
                r.len[r.n++] = 0;
                p->gone = 1;
            }
            i += 1 + hdr.nframes;
        }
        p->msgs += r.used > 0;
        p->packs += r.used > 0 && packed;
        if (!pt->failed[0])
            s_send_replies(pt, p->sock, &r, packed);
        pmp_multipart_clear(&in);
    }
}

/* One thread of fake leaders: connects its sockets, says HELLO for each,
 * then serves them (epoll over their ZMQ_FDs) until each got SHUTDOWN. */
void *fs_peer_main(void *arg)
{
    s_peer_thread_t *pt = arg;
    char name[16];
    snprintf(name, sizeof name, "fs-peer%d", pt->index);
    pthread_setname_np(pthread_self(), name);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        snprintf(pt->failed, sizeof pt->failed, "epoll_create1: %s", strerror(errno));
        return NULL;
    }
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    for (int i = 0; i < pt->npeers; i++) {
        s_peer_t *p = &pt->peers[i];
        p->sock = zmq_socket(pt->ctx, ZMQ_DEALER);
        if (!p->sock) {
            snprintf(pt->failed, sizeof pt->failed, "zmq_socket: %s", zmq_strerror(errno));
            goto out;
        }
        int zero = 0;
        zmq_setsockopt(p->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(p->sock, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt(p->sock, ZMQ_RCVHWM, &zero, sizeof zero);
        if (pt->raw) {
            unsigned char rid[5] = {'G'};
            s_put32(rid + 1, (uint32_t)p->group);
            zmq_setsockopt(p->sock, ZMQ_ROUTING_ID, rid, sizeof rid);
        } else {
            /* as the runtime does (runtime/pmp_leader.c): CURVE on tcp:// */
            zmq_setsockopt(p->sock, ZMQ_CURVE_SERVERKEY, pt->cred->server_public, 40);
            zmq_setsockopt(p->sock, ZMQ_CURVE_PUBLICKEY, pt->cred->client_public, 40);
            zmq_setsockopt(p->sock, ZMQ_CURVE_SECRETKEY, pt->cred->client_secret, 40);
        }
        if (zmq_connect(p->sock, pt->endpoint) < 0) {
            snprintf(pt->failed, sizeof pt->failed, "connect %s: %s", pt->endpoint,
                     zmq_strerror(errno));
            goto out;
        }
        pmp_hello_t hello;
        memset(&hello, 0, sizeof hello);
        hello.group = p->group;
        hello.ngroups = pt->ngroups;
        hello.group_size = 1;
        hello.world_size = pt->ngroups;
        hello.world_rank = p->group;
        hello.pid = getpid();
        snprintf(hello.host, sizeof hello.host, "%s", host);
        snprintf(hello.python_version, sizeof hello.python_version, "none");
        snprintf(hello.mpi_version, sizeof hello.mpi_version, "fake");
        snprintf(hello.runtime_version, sizeof hello.runtime_version, "frontend_scale");
        hello.batch = pt->batch; /* tasks may come several to a message */
        hello.pack = pt->pack;   /* and in packs */
        char text[2048];
        int len = pmp_hello_encode(&hello, text, sizeof text);
        if (len < 0) {
            snprintf(pt->failed, sizeof pt->failed, "pmp_hello_encode failed");
            goto out;
        }
        s_send_msg(pt, p->sock, PMP_MSG_HELLO, 0, text, (size_t)len, 0);
        zmq_fd_t fd;
        size_t fdlen = sizeof fd;
        zmq_getsockopt(p->sock, ZMQ_FD, &fd, &fdlen);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            snprintf(pt->failed, sizeof pt->failed, "epoll_ctl: %s", strerror(errno));
            goto out;
        }
    }
    int left = pt->npeers;
    struct epoll_event evs[256];
    while (left > 0 && !pt->failed[0] && !atomic_load(pt->abort)) {
        int n = epoll_wait(epfd, evs, 256, 200);
        if (n < 0 && errno != EINTR) {
            snprintf(pt->failed, sizeof pt->failed, "epoll_wait: %s", strerror(errno));
            break;
        }
        if (n <= 0) { /* quiet: look at every socket once, in case */
            for (int i = 0; i < pt->npeers; i++)
                if (!pt->peers[i].gone)
                    s_drain(pt, &pt->peers[i]);
        }
        for (int k = 0; k < n; k++) {
            s_peer_t *p = &pt->peers[evs[k].data.u32];
            if (!p->gone)
                s_drain(pt, p);
        }
        left = 0;
        for (int i = 0; i < pt->npeers; i++)
            left += !pt->peers[i].gone;
    }
out:
    for (int i = 0; i < pt->npeers; i++) {
        if (!pt->peers[i].sock)
            continue;
        int linger = 1000; /* let the goodbye leave */
        zmq_setsockopt(pt->peers[i].sock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(pt->peers[i].sock);
    }
    close(epfd);
    if (pt->failed[0])
        atomic_store(pt->abort, 1);
    return NULL;
}

/* ---- the limit: a bare ROUTER loop (--raw) ----------------------------------
 * The same fakes and the same messages (identity, 24-byte header, 8 bytes
 * per task), but no executor: the measuring thread owns a ROUTER socket
 * (no authentication), sends each message to the next group with a free
 * slot (a FIFO of free slots) and takes the replies itself.  What ZeroMQ
 * costs per message on this machine, without the frontend's queues, locks
 * and threads; with --batch K each message carries K tasks. */

void fs_raw_send(s_raw_t *rw, uint32_t g, int type, uint64_t id, const void *data, size_t size)
{
    unsigned char rid[5] = {'G'};
    s_put32(rid + 1, g);
    if (zmq_send(rw->router, rid, sizeof rid, ZMQ_SNDMORE) < 0)
        s_die("raw: send to group %u: %s", (unsigned)g, zmq_strerror(errno));
    /* --multipart: each task a protocol message of its own, all in one
     * ZeroMQ message; otherwise one protocol message */
    size_t each = rw->multipart ? 8 : size;
    for (size_t off = 0; off < size || off == 0; off += each) {
        pmp_header_t hdr = {.type = (uint16_t)type, .task_id = id + off / 8, .nframes = 1};
        unsigned char hbuf[PMP_HEADER_SIZE];
        pmp_header_encode(&hdr, hbuf);
        size_t len = size - off < each ? size - off : each;
        if (zmq_send(rw->router, hbuf, sizeof hbuf, ZMQ_SNDMORE) < 0 ||
            zmq_send(rw->router, (const unsigned char *)data + off, len,
                     off + len < size ? ZMQ_SNDMORE : 0) < 0)
            s_die("raw: send to group %u: %s", (unsigned)g, zmq_strerror(errno));
        if (size == 0)
            break;
    }
}

/* Receives one message [identity, header, payload] without waiting; returns
 * 0 when none is there.  *g is the sender's group. */
static size_t s_raw_recv(s_raw_t *rw, uint32_t *g, zmq_msg_t *parts, size_t cap)
{
    zmq_msg_t id;
    zmq_msg_init(&id);
    if (zmq_msg_recv(&id, rw->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        if (errno != EAGAIN)
            s_die("raw: recv: %s", zmq_strerror(errno));
        return 0;
    }
    if (zmq_msg_size(&id) != 5 || ((unsigned char *)zmq_msg_data(&id))[0] != 'G' ||
        !zmq_msg_more(&id))
        s_die("raw: a message from a stranger");
    *g = s_get32((unsigned char *)zmq_msg_data(&id) + 1);
    zmq_msg_close(&id);
    if (*g >= (uint32_t)rw->groups)
        s_die("raw: a message from group %u", (unsigned)*g);
    size_t n = 0;
    for (int more = 1; more; n++) {
        if (n == cap)
            s_die("raw: a message of more than %zu frames", cap);
        zmq_msg_init(&parts[n]);
        if (zmq_msg_recv(&parts[n], rw->router, 0) < 0)
            s_die("raw: recv: %s", zmq_strerror(errno));
        more = zmq_msg_more(&parts[n]);
    }
    if (n % 2)
        s_die("raw: a message of %zu frames after the identity", n);
    return n;
}

/* Runs the tasks first..last; returns the CPU time of this thread, the
 * raw loop's (it plays the frontend). */
int64_t fs_raw_phase(s_raw_t *rw, atomic_uchar *seen, atomic_int *abort, uint64_t first,
                     uint64_t last)
{
    int64_t cpu0 = s_now_ns(CLOCK_THREAD_CPUTIME_ID);
    uint64_t next = first, completed = 0, total = last - first + 1;
    int64_t last_progress = s_now_ns(CLOCK_MONOTONIC);
    unsigned char payload[8 * S_MAX_BATCH];
    while (completed < total) {
        while (rw->len > 0 && next <= last) {
            uint32_t g = rw->ring[rw->head];
            rw->head = (rw->head + 1) % rw->cap;
            rw->len--;
            uint64_t k =
                last - next + 1 < (uint64_t)rw->batch ? last - next + 1 : (uint64_t)rw->batch;
            for (uint64_t i = 0; i < k; i++)
                s_put64(payload + 8 * i, next + i);
            fs_raw_send(rw, g, PMP_MSG_TASK, next, payload, 8 * k);
            next += k;
        }
        zmq_pollitem_t item = {.socket = rw->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 1000) <= 0) {
            if (atomic_load(abort))
                s_die("a fake group failed (see above)");
            if (s_now_ns(CLOCK_MONOTONIC) - last_progress > (int64_t)S_STALL_MS * 1000000)
                s_die("raw: no reply for %d ms", S_STALL_MS);
            continue;
        }
        last_progress = s_now_ns(CLOCK_MONOTONIC);
        for (int m = 0; m < 1024; m++) {
            uint32_t g;
            zmq_msg_t parts[2 * S_MAX_BATCH];
            size_t n = s_raw_recv(rw, &g, parts, sizeof parts / sizeof parts[0]);
            if (n == 0)
                break;
            for (size_t i = 0; i < n; i += 2) { /* header, payload: one or more */
                pmp_header_t hdr;
                size_t size = zmq_msg_size(&parts[i + 1]);
                const unsigned char *ans = zmq_msg_data(&parts[i + 1]);
                if (pmp_header_decode(zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i]), &hdr,
                                      NULL) < 0 ||
                    hdr.type != PMP_MSG_RESULT || size == 0 || size % 8)
                    s_die("raw: an unexpected message from group %u", (unsigned)g);
                for (size_t k = 0; k < size / 8; k++) {
                    uint64_t id = hdr.task_id + k;
                    if (id < first || id > last || atomic_exchange(&seen[id], 1) ||
                        s_get64(ans + 8 * k) != s_answer(id))
                        s_die("raw: task %" PRIu64 ": not expected, twice or a wrong result", id);
                }
                completed += size / 8;
            }
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            rw->ring[(rw->head + rw->len) % rw->cap] = g;
            rw->len++;
        }
    }
    return s_now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
}

void fs_raw_open(s_raw_t *rw, int groups, int depth, int batch, int multipart)
{
    memset(rw, 0, sizeof *rw);
    const char *tmp = getenv("TMPDIR");
    snprintf(rw->dir, sizeof rw->dir, "%.40s/pmp-scale-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(rw->dir))
        s_die("raw: mkdtemp: %s", strerror(errno));
    snprintf(rw->endpoint, sizeof rw->endpoint, "ipc://%s/raw", rw->dir);
    rw->ctx = zmq_ctx_new();
    rw->router = rw->ctx ? zmq_socket(rw->ctx, ZMQ_ROUTER) : NULL;
    int zero = 0, one = 1;
    if (!rw->router || zmq_setsockopt(rw->router, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(rw->router, ZMQ_SNDHWM, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(rw->router, ZMQ_RCVHWM, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(rw->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) < 0 ||
        zmq_bind(rw->router, rw->endpoint) < 0)
        s_die("raw: cannot bind %s: %s", rw->endpoint, zmq_strerror(errno));
    rw->groups = groups;
    rw->batch = batch;
    rw->multipart = multipart;
    rw->cap = (size_t)groups * (size_t)depth;
    rw->ring = malloc(rw->cap * sizeof *rw->ring);
    if (!rw->ring)
        s_die("out of memory");
    for (int d = 0; d < depth; d++) /* every group's slots, spread */
        for (int g = 0; g < groups; g++)
            rw->ring[rw->len++] = (uint32_t)g;
}

/* Waits for n messages of type from the groups (HELLO, GOODBYE). */
void fs_raw_expect(s_raw_t *rw, int n, int type)
{
    int64_t start = s_now_ns(CLOCK_MONOTONIC);
    for (int got = 0; got < n;) {
        uint32_t g;
        zmq_msg_t parts[2];
        if (s_raw_recv(rw, &g, parts, 2) == 0) {
            zmq_pollitem_t item = {.socket = rw->router, .events = ZMQ_POLLIN};
            zmq_poll(&item, 1, 100);
            if (s_now_ns(CLOCK_MONOTONIC) - start > (int64_t)S_STALL_MS * 1000000)
                s_die("raw: %d of %d %s messages within %d ms", got, n, pmp_msg_type_name(type),
                      S_STALL_MS);
            continue;
        }
        pmp_header_t hdr;
        if (pmp_header_decode(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), &hdr, NULL) < 0 ||
            hdr.type != type)
            s_die("raw: expected a %s from group %u", pmp_msg_type_name(type), (unsigned)g);
        zmq_msg_close(&parts[0]);
        zmq_msg_close(&parts[1]);
        got++;
    }
}

void fs_raw_close(s_raw_t *rw)
{
    zmq_close(rw->router);
    zmq_ctx_term(rw->ctx);
    char path[160];
    snprintf(path, sizeof path, "%s/raw", rw->dir);
    unlink(path);
    rmdir(rw->dir);
    free(rw->ring);
}
