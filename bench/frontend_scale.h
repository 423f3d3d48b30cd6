/*
 * frontend_scale.h - what the two files of the frontend-at-scale benchmark
 * share (frontend_scale.c: options, callers, measurement and output;
 * frontend_scale_peers.c: the fake group leaders and the bare ROUTER loop
 * of --raw): limits, the wire helpers of the fakes, and the types of the
 * fakes and of the raw loop.  Private to bench/.
 */
#ifndef PMP_FRONTEND_SCALE_H
#define PMP_FRONTEND_SCALE_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pmp_credentials.h"

#define S_MAX_GROUP_SETS 8
#define S_MAX_THREADS 1024
#define S_MAX_REPEAT 16
#define S_MAX_BATCH 64
#define S_MAX_SUBMIT 1024 /* tasks a caller submits, and completions it takes, in one call */
#define S_STALL_MS 30000  /* no completion for this long: the run failed */

__attribute__((format(printf, 1, 2), noreturn)) static inline void s_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("frontend_scale: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static inline int64_t s_now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* What a fake leader answers for the task with this id: the caller checks
 * it, so a result that reached the wrong task is noticed. */
static inline uint64_t s_answer(uint64_t id)
{
    return (id * 0x9E3779B97F4A7C15ULL) ^ 0x5ca1ab1eULL;
}

static inline void s_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void s_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t s_get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t s_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- the fake group leaders (frontend_scale_peers.c) ---------------------- */

typedef struct {
    void *sock;
    int group;
    uint64_t tasks; /* TASKs answered */
    uint64_t msgs;  /* ZeroMQ messages that brought them */
    uint64_t packs; /* those that were packs */
    int gone;       /* SHUTDOWN received, GOODBYE sent */
} s_peer_t;

typedef struct {
    int index;
    void *ctx;
    const char *endpoint;
    const pmp_credentials_t *cred;
    int ngroups;
    s_peer_t *peers;
    int npeers;
    pthread_t thread;
    atomic_int *abort;
    int raw;   /* --raw: no credentials, routing id 'G' + the group number */
    int batch; /* the hello's batch: protocol messages taken in one ZeroMQ message */
    int pack;  /* the hello's pack: protocol messages taken in one pack */
    unsigned char out[8 * S_MAX_BATCH];
    char failed[768];
} s_peer_thread_t;

/* One thread of fake leaders: connects its sockets, says HELLO for each,
 * then serves them until each got SHUTDOWN.  arg is its s_peer_thread_t;
 * a failure is written to its `failed` and sets *abort. */
void *fs_peer_main(void *arg);

/* ---- the limit: a bare ROUTER loop (--raw, frontend_scale_peers.c) -------- */

typedef struct {
    void *ctx, *router;
    char dir[64], endpoint[128];
    int groups, batch, multipart;
    uint32_t *ring; /* free slots: group numbers */
    size_t cap, head, len;
} s_raw_t;

/* Binds the loop's ROUTER (ipc://, no authentication) with depth slots per
 * group.  Dies on failure. */
void fs_raw_open(s_raw_t *rw, int groups, int depth, int batch, int multipart);

/* Sends one message of type to group g: with data, size / 8 tasks of 8
 * bytes (one protocol message, or one each with multipart).  Dies on
 * failure. */
void fs_raw_send(s_raw_t *rw, uint32_t g, int type, uint64_t id, const void *data, size_t size);

/* Waits for n messages of type from the groups (HELLO, GOODBYE). */
void fs_raw_expect(s_raw_t *rw, int n, int type);

/* Runs the tasks first..last; returns the CPU time of this thread. */
int64_t fs_raw_phase(s_raw_t *rw, atomic_uchar *seen, atomic_int *abort, uint64_t first,
                     uint64_t last);

void fs_raw_close(s_raw_t *rw);

#endif
