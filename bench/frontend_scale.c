/*
 * frontend_scale.c - the frontend library at scale: tasks per second and
 * the cost per task with 10, 100 and 1,000 simulated groups
 * (docs/performance.md, "The frontend at scale").
 *
 *   frontend_scale [--groups 10,100,1000] [--tasks N] [--depth D]
 *                  [--peer-threads T] [--callers C] [--repeat R] [--batch K] [--pack K]
 *                  [--submit K]
 *                  [--raw [--multipart]] [--json FILE] [--quiet]
 *
 * What runs, for each number of groups G, in this one process:
 *   - an executor of the public API (pmp_executor.h) with launch = 0, as a
 *     queue adapter makes it: G groups of one rank, pipeline depth D;
 *   - G fake group leaders: ZeroMQ DEALER sockets in T threads of their own
 *     (one context, one libzmq I/O thread), each socket a group that
 *     authenticates with the executor's credentials file as the runtime
 *     does (CURVE over tcp://127.0.0.1: the frontend's transport for
 *     groups on other hosts, since groups on its own host connect over
 *     local links), says HELLO (with batch=K: it takes up to K tasks in
 *     one ZeroMQ message, 64 by default as the runtime; --batch 1 for one
 *     task a message; and pack=K, the same unless --pack says otherwise,
 *     --pack 1 for no packs) and answers every TASK at once with a RESULT
 *     whose payload is a function of the task's, the tasks of one ZeroMQ
 *     message in one reply (a pack when they came in one);
 *   - C caller threads that submit tasks (8-byte payload, copied), up to K
 *     at once with pmp_executor_submit_many() (--submit K, 64 by default;
 *     1 for pmp_executor_submit() one by one), and take their completions
 *     up to 1,024 at once with pmp_executor_wait_many() (one by one with
 *     pmp_executor_wait() when K is 1), keeping 2 * G * D tasks submitted
 *     and not completed, so that every group always has work.
 * After every group said hello, 2 * G * D tasks warm up (every group gets
 * D of them at once), then N tasks are timed: from the first submit to the
 * last completion.  close() then shuts the groups down (SHUTDOWN, GOODBYE,
 * PMP_EVENT_CLOSED) and the executor is destroyed.  With --repeat R this
 * is done R times for each number of groups, in interleaved rounds (10,
 * 100, 1,000, 10, ...), and the run with the median rate is reported,
 * with every run's rate in the JSON.
 *
 * Checks, every run: every task completes exactly once, as a RESULT, with
 * the payload its fake computed from it; every group served at least D
 * tasks; nothing else completes but HELLO events and the final CLOSED;
 * fakes that take packs got some of their tasks in packs (with depth >= 2,
 * a group refilled at half its window gets several at once), the others
 * none.  Any failure prints what went wrong and exits 1 (the CTest smoke test
 * unit.frontend_scale relies on that, not on any timing).
 *
 * CPU: every thread of the process is read from /proc/self/task/<tid>/
 * schedstat (ns on the CPU) at the start and the end of the timed part and
 * sorted into the frontend's I/O thread (pympipool-io), the frontend's
 * libzmq threads (those that appeared with the executor), the callers
 * (each measures itself with CLOCK_THREAD_CPUTIME_ID), the fake leaders'
 * threads and their libzmq thread.  On a machine with fewer cores than busy
 * threads the fakes compete with the frontend for the CPU: the table says
 * how much each side used.
 *
 * The limit (--raw): the same fakes and messages behind a bare ROUTER loop
 * in the measuring thread, no executor, no authentication: what ZeroMQ
 * alone costs per message here.  With --raw, --batch K puts K tasks in each message
 * (the fakes answer all K in one reply), to show what several tasks per
 * message would buy; with --multipart each of the K tasks stays a protocol
 * message of its own (header and payload frames), K of them back to back in
 * one ZeroMQ message, and so do the replies.
 *
 * Output: a text table on stdout and, with --json, the same as JSON.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "frontend_scale.h"
#include "pmp_credentials.h"
#include "pmp_executor.h"
#include "pmp_protocol.h"

/* ---- options and failures ----------------------------------------------- */

typedef struct {
    int groups[S_MAX_GROUP_SETS];
    int ngroup_sets;
    uint64_t tasks;
    int depth;
    int peer_threads;
    int callers;
    int repeat;
    int raw;       /* the limit: the same fakes behind a bare ROUTER loop, no frontend */
    int batch;     /* raw: tasks per message; else the fakes' hello batch */
    int multipart; /* with batch: each task a protocol message, all in one ZeroMQ message */
    int pack;      /* the fakes' hello pack (1: none); the batch unless given */
    int submit;    /* tasks a caller hands over in one submit call (1: one by one) */
    const char *json;
    int quiet;
} s_options_t;

/* ---- threads and their CPU ------------------------------------------------ */

enum { S_IO, S_FE_ZMQ, S_PEERS, S_PEERS_ZMQ, S_OTHER, S_CLASSES };
static const char *const s_class_names[S_CLASSES] = {"io", "frontend_zmq", "peers", "peers_zmq",
                                                     "other"};

typedef struct {
    pid_t tid;
    char comm[32];
    int64_t ns; /* on the CPU */
} s_thread_t;

/* Every thread of this process with its name and CPU time so far. */
static size_t s_threads(s_thread_t *out, size_t cap)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        s_die("cannot list /proc/self/task: %s", strerror(errno));
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        s_thread_t *t = &out[n];
        t->tid = (pid_t)atoi(e->d_name);
        char path[96];
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)t->tid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* gone meanwhile */
        if (!fgets(t->comm, sizeof t->comm, f))
            t->comm[0] = '\0';
        fclose(f);
        t->comm[strcspn(t->comm, "\n")] = '\0';
        snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", (int)t->tid);
        f = fopen(path, "r");
        long long ns = 0;
        if (!f)
            continue;
        if (fscanf(f, "%lld", &ns) != 1)
            ns = 0;
        fclose(f);
        t->ns = ns;
        n++;
    }
    closedir(d);
    return n;
}

static int s_has_tid(const s_thread_t *set, size_t n, pid_t tid)
{
    for (size_t i = 0; i < n; i++)
        if (set[i].tid == tid)
            return 1;
    return 0;
}

/* ---- the callers ----------------------------------------------------------- */

typedef struct {
    pmp_executor_t *ex;
    uint64_t first, last; /* ids of this phase */
    uint64_t window;      /* tasks submitted and not completed, at most */
    int submit;           /* tasks a submit call hands over (1: pmp_executor_submit) */
    atomic_uint_fast64_t next;
    atomic_uint_fast64_t completed;
    atomic_uchar *seen; /* by id */
    atomic_int *abort;
    atomic_int failed;
    char why[256];
    pthread_mutex_t why_mtx;
} s_phase_t;

typedef struct {
    s_phase_t *phase;
    int index;
    pthread_t thread;
    int64_t cpu_ns;
} s_caller_t;

static void s_fail(s_phase_t *ph, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_fail(s_phase_t *ph, const char *fmt, ...)
{
    pthread_mutex_lock(&ph->why_mtx);
    if (!atomic_load(&ph->failed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ph->why, sizeof ph->why, fmt, ap);
        va_end(ap);
        atomic_store(&ph->failed, 1);
    }
    pthread_mutex_unlock(&ph->why_mtx);
    atomic_store(ph->abort, 1);
}

static void s_check(s_phase_t *ph, pmp_completion_t *c)
{
    int kind = pmp_completion_kind(c);
    uint64_t id = pmp_completion_task_id(c);
    if (kind != PMP_DONE_RESULT) {
        s_fail(ph, "task %" PRIu64 ": completion of kind %d (%s)", id, kind,
               pmp_completion_text(c));
        return;
    }
    if (id < ph->first || id > ph->last) {
        s_fail(ph, "a result for task %" PRIu64 ", not one of this phase", id);
        return;
    }
    if (atomic_exchange(&ph->seen[id], 1)) {
        s_fail(ph, "task %" PRIu64 " completed twice", id);
        return;
    }
    pmp_frame_t *f = pmp_completion_nframes(c) == 1 ? pmp_completion_take_frame(c, 0) : NULL;
    if (!f || pmp_frame_size(f) != 8 || s_get64(pmp_frame_data(f)) != s_answer(id))
        s_fail(ph, "task %" PRIu64 ": wrong result", id);
    pmp_frame_destroy(&f);
}

/* Takes up to 1024 completions: one by one with pmp_executor_wait (the
 * first waited for) when the caller submits one by one, else at once with
 * pmp_executor_wait_many.  Returns how many it checked; 0 on a timeout. */
static uint64_t s_take(s_phase_t *ph)
{
    pmp_completion_t *got[S_MAX_SUBMIT];
    size_t n = 0;
    if (ph->submit > 1) {
        n = pmp_executor_wait_many(ph->ex, got, S_MAX_SUBMIT, 100);
    } else if ((got[0] = pmp_executor_wait(ph->ex, 100)) != NULL) {
        for (n = 1; n < S_MAX_SUBMIT && (got[n] = pmp_executor_wait(ph->ex, 0)); n++)
            ;
    }
    for (size_t i = 0; i < n; i++) {
        s_check(ph, got[i]);
        pmp_completion_destroy(&got[i]);
    }
    return n;
}

static void *s_caller_main(void *arg)
{
    s_caller_t *me = arg;
    s_phase_t *ph = me->phase;
    char name[16];
    snprintf(name, sizeof name, "fs-caller%d", me->index);
    pthread_setname_np(pthread_self(), name);
    int64_t cpu0 = s_now_ns(CLOCK_THREAD_CPUTIME_ID);
    uint64_t total = ph->last - ph->first + 1;
    int64_t last_progress = s_now_ns(CLOCK_MONOTONIC);
    static _Thread_local unsigned char payload[S_MAX_SUBMIT][8];
    static _Thread_local pmp_buffer_t bufs[S_MAX_SUBMIT];
    static _Thread_local pmp_submission_t subs[S_MAX_SUBMIT];
    while (atomic_load(&ph->completed) < total && !atomic_load(ph->abort)) {
        /* keep the window full, up to ph->submit tasks a call */
        for (;;) {
            uint64_t done = atomic_load(&ph->completed);
            uint64_t next = atomic_load(&ph->next);
            if (next > ph->last || next - ph->first - done >= ph->window)
                break;
            uint64_t k = ph->window - (next - ph->first - done);
            if (k > ph->last - next + 1)
                k = ph->last - next + 1;
            if (k > (uint64_t)ph->submit)
                k = (uint64_t)ph->submit;
            if (!atomic_compare_exchange_weak(&ph->next, &next, next + k))
                continue;
            for (uint64_t i = 0; i < k; i++) {
                s_put64(payload[i], next + i);
                bufs[i] = (pmp_buffer_t){.data = payload[i], .size = sizeof payload[i]};
                subs[i] = (pmp_submission_t){.task_id = next + i, .bufs = &bufs[i], .nbufs = 1};
            }
            pmp_error_t err = {{0}};
            if ((ph->submit == 1
                     ? pmp_executor_submit(ph->ex, next, PMP_MSG_TASK, 0, &bufs[0], 1, &err)
                     : pmp_executor_submit_many(ph->ex, subs, (size_t)k, &err)) < 0) {
                s_fail(ph, "submit %" PRIu64 "..%" PRIu64 ": %s", next, next + k - 1, err.text);
                break;
            }
        }
        /* take what has completed: block for the first, then the rest */
        uint64_t got = s_take(ph);
        if (got == 0) {
            if (s_now_ns(CLOCK_MONOTONIC) - last_progress > (int64_t)S_STALL_MS * 1000000)
                s_fail(ph, "no completion for %d ms (%" PRIu64 " of %" PRIu64 " completed)",
                       S_STALL_MS, (uint64_t)atomic_load(&ph->completed), total);
            continue;
        }
        last_progress = s_now_ns(CLOCK_MONOTONIC);
        atomic_fetch_add(&ph->completed, got);
    }
    me->cpu_ns = s_now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    return NULL;
}

/* Runs the tasks first..last with ncallers threads; returns the callers'
 * CPU time. */
static int64_t s_run_phase(pmp_executor_t *ex, atomic_uchar *seen, atomic_int *abort,
                           uint64_t first, uint64_t last, uint64_t window, const s_options_t *o)
{
    int ncallers = o->callers;
    s_phase_t ph = {.ex = ex,
                    .first = first,
                    .last = last,
                    .window = window,
                    .submit = o->submit,
                    .seen = seen,
                    .abort = abort};
    atomic_init(&ph.next, first);
    atomic_init(&ph.completed, 0);
    atomic_init(&ph.failed, 0);
    pthread_mutex_init(&ph.why_mtx, NULL);
    s_caller_t callers[64];
    for (int i = 0; i < ncallers; i++) {
        callers[i] = (s_caller_t){.phase = &ph, .index = i};
        if (pthread_create(&callers[i].thread, NULL, s_caller_main, &callers[i]) != 0)
            s_die("cannot start a caller thread");
    }
    int64_t cpu = 0;
    for (int i = 0; i < ncallers; i++) {
        pthread_join(callers[i].thread, NULL);
        cpu += callers[i].cpu_ns;
    }
    pthread_mutex_destroy(&ph.why_mtx);
    if (atomic_load(&ph.failed))
        s_die("%s", ph.why);
    if (atomic_load(abort))
        s_die("a fake group failed (see above)");
    for (uint64_t id = first; id <= last; id++)
        if (!atomic_load(&seen[id]))
            s_die("task %" PRIu64 " never completed", id);
    return cpu;
}

/* ---- one measurement ------------------------------------------------------- */

typedef struct {
    int groups;
    uint64_t tasks;
    double wall_s;
    double tasks_per_s;
    double ns_per_task;
    double cpu_ns[S_CLASSES]; /* per task, by thread class */
    double callers_ns;        /* per task */
    double process_ns;        /* per task: the whole process */
    uint64_t min_per_group, max_per_group;
    double tasks_per_msg; /* tasks a ZeroMQ message brought the fakes, on average */
    int nsamples;         /* runs of this number of groups (--repeat); this one is their median */
    double samples[S_MAX_REPEAT]; /* tasks/s of each run */
} s_result_t;

static void s_read_credentials(pmp_executor_t *ex, pmp_credentials_t *cred)
{
    const char *const *cmd = pmp_executor_command(ex);
    const char *path = NULL;
    for (size_t i = 0; cmd[i]; i++)
        if (strcmp(cmd[i], "--credentials") == 0 && cmd[i + 1])
            path = cmd[i + 1];
    pmp_error_t err = {{0}};
    if (!path || pmp_credentials_read(path, cred, &err) < 0)
        s_die("cannot read the executor's credentials: %s", path ? err.text : "no --credentials");
    if (cred->mechanism != PMP_CREDENTIALS_CURVE)
        s_die("expected CURVE credentials on tcp://");
}

static s_result_t s_measure(const s_options_t *o, int groups)
{
    static s_thread_t before[S_MAX_THREADS], frontend[S_MAX_THREADS], t0[S_MAX_THREADS],
        t1[S_MAX_THREADS];
    size_t nbefore = s_threads(before, S_MAX_THREADS);
    pmp_executor_t *ex = NULL;
    s_raw_t raw;
    pmp_credentials_t cred;
    memset(&cred, 0, sizeof cred);
    if (o->raw) {
        fs_raw_open(&raw, groups, o->depth, o->batch, o->multipart);
        goto started;
    }

    pmp_executor_config_t cfg = {.ranks = groups,
                                 .ranks_per_group = 1,
                                 .pipeline_depth = o->depth,
                                 .launch = 0, /* the groups connect by themselves */
                                 /* ZeroMQ, the transport of groups on other
                                  * hosts; a group on the frontend's host
                                  * would connect over a local link */
                                 .hostname = "127.0.0.1",
                                 .mpi_flavour = "mpich",
                                 .mpiexec = "mpiexec",
                                 .runtime = "pympipool-runtime"};
    pmp_error_t err = {{0}};
    ex = pmp_executor_new(&cfg, &err);
    if (!ex)
        s_die("pmp_executor_new: %s", err.text);
    s_read_credentials(ex, &cred);
started:;
    size_t nfrontend = s_threads(frontend, S_MAX_THREADS);

    /* the fakes: one context, its one I/O thread, T threads of sockets */
    void *ctx = zmq_ctx_new();
    if (!ctx || zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, groups + 64) < 0)
        s_die("cannot make the fakes' ZeroMQ context: %s", zmq_strerror(errno));
    zmq_ctx_set(ctx, ZMQ_BLOCKY, 0);
    int nthreads = o->peer_threads < groups ? o->peer_threads : groups;
    s_peer_t *peers = calloc((size_t)groups, sizeof *peers);
    s_peer_thread_t *pts = calloc((size_t)nthreads, sizeof *pts);
    if (!peers || !pts)
        s_die("out of memory");
    atomic_int abort_flag;
    atomic_init(&abort_flag, 0);
    for (int t = 0, g = 0; t < nthreads; t++) {
        int n = groups / nthreads + (t < groups % nthreads);
        pts[t] = (s_peer_thread_t){.index = t,
                                   .ctx = ctx,
                                   .endpoint = o->raw ? raw.endpoint : pmp_executor_endpoint(ex),
                                   .raw = o->raw,
                                   .batch = o->raw ? 1 : o->batch,
                                   .pack = o->raw ? 1 : o->pack,
                                   .cred = &cred,
                                   .ngroups = groups,
                                   .peers = peers + g,
                                   .npeers = n,
                                   .abort = &abort_flag};
        for (int i = 0; i < n; i++)
            peers[g + i].group = g + i;
        g += n;
        if (pthread_create(&pts[t].thread, NULL, fs_peer_main, &pts[t]) != 0)
            s_die("cannot start a fake leader thread");
    }

    /* every group says hello */
    int64_t start = s_now_ns(CLOCK_MONOTONIC);
    if (o->raw)
        fs_raw_expect(&raw, groups, PMP_MSG_HELLO);
    for (int hellos = o->raw ? groups : 0; hellos < groups;) {
        pmp_completion_t *c = pmp_executor_wait(ex, 1000);
        if (c) {
            if (pmp_completion_kind(c) != PMP_EVENT_HELLO)
                s_die("expected a hello, got a completion of kind %d", pmp_completion_kind(c));
            hellos++;
            pmp_completion_destroy(&c);
        }
        if (atomic_load(&abort_flag))
            s_die("a fake group failed before its hello");
        if (s_now_ns(CLOCK_MONOTONIC) - start > (int64_t)S_STALL_MS * 1000000)
            s_die("only %d of %d groups said hello within %d ms", hellos, groups, S_STALL_MS);
    }
    double connect_s = (double)(s_now_ns(CLOCK_MONOTONIC) - start) / 1e9;

    uint64_t window = 2 * (uint64_t)groups * (uint64_t)o->depth;
    if (window < 1024)
        window = 1024;
    uint64_t warm = 2 * (uint64_t)groups * (uint64_t)o->depth * (uint64_t)o->batch;
    atomic_uchar *seen = calloc(warm + o->tasks + 1, sizeof *seen);
    if (!seen)
        s_die("out of memory");
    if (o->raw)
        fs_raw_phase(&raw, seen, &abort_flag, 1, warm);
    else
        s_run_phase(ex, seen, &abort_flag, 1, warm, window, o);

    /* the timed part */
    size_t n0 = s_threads(t0, S_MAX_THREADS);
    int64_t proc0 = s_now_ns(CLOCK_PROCESS_CPUTIME_ID);
    int64_t wall0 = s_now_ns(CLOCK_MONOTONIC);
    int64_t callers_ns =
        o->raw ? fs_raw_phase(&raw, seen, &abort_flag, warm + 1, warm + o->tasks)
               : s_run_phase(ex, seen, &abort_flag, warm + 1, warm + o->tasks, window, o);
    int64_t wall1 = s_now_ns(CLOCK_MONOTONIC);
    int64_t proc1 = s_now_ns(CLOCK_PROCESS_CPUTIME_ID);
    size_t n1 = s_threads(t1, S_MAX_THREADS);

    s_result_t r = {.groups = groups, .tasks = o->tasks};
    r.wall_s = (double)(wall1 - wall0) / 1e9;
    r.tasks_per_s = (double)o->tasks / r.wall_s;
    r.ns_per_task = (double)(wall1 - wall0) / (double)o->tasks;
    int64_t by_class[S_CLASSES] = {0};
    for (size_t i = 0; i < n1; i++) {
        int64_t was = 0;
        for (size_t k = 0; k < n0; k++)
            if (t0[k].tid == t1[i].tid)
                was = t0[k].ns;
        const char *comm = t1[i].comm;
        int cls = S_OTHER;
        if (strcmp(comm, "pympipool-io") == 0)
            cls = S_IO;
        else if (strncmp(comm, "fs-peer", 7) == 0)
            cls = S_PEERS;
        else if (strncmp(comm, "ZMQbg", 5) == 0)
            cls =
                s_has_tid(frontend, nfrontend, t1[i].tid) && !s_has_tid(before, nbefore, t1[i].tid)
                    ? S_FE_ZMQ
                    : S_PEERS_ZMQ;
        else if (strncmp(comm, "fs-caller", 9) == 0)
            continue; /* gone by now; they measured themselves */
        by_class[cls] += t1[i].ns - was;
    }
    for (int k = 0; k < S_CLASSES; k++)
        r.cpu_ns[k] = (double)by_class[k] / (double)o->tasks;
    r.callers_ns = (double)callers_ns / (double)o->tasks;
    r.process_ns = (double)(proc1 - proc0) / (double)o->tasks;

    if (o->raw) { /* the loop plays the frontend: its CPU is the "io" column */
        r.cpu_ns[S_IO] = r.callers_ns;
        r.callers_ns = 0;
    }

    /* close: SHUTDOWN to every group, their GOODBYE, then CLOSED */
    if (o->raw) {
        for (int g = 0; g < groups; g++)
            fs_raw_send(&raw, (uint32_t)g, PMP_MSG_SHUTDOWN, 0, NULL, 0);
        fs_raw_expect(&raw, groups, PMP_MSG_GOODBYE);
    } else {
        pmp_executor_close(ex);
    }
    start = s_now_ns(CLOCK_MONOTONIC);
    while (!o->raw) {
        pmp_completion_t *c = pmp_executor_wait(ex, 1000);
        if (c) {
            int kind = pmp_completion_kind(c);
            pmp_completion_destroy(&c);
            if (kind == PMP_EVENT_CLOSED)
                break;
            s_die("after the last task: an unexpected completion of kind %d", kind);
        }
        if (s_now_ns(CLOCK_MONOTONIC) - start > (int64_t)S_STALL_MS * 1000000)
            s_die("close() did not finish within %d ms", S_STALL_MS);
    }
    for (int t = 0; t < nthreads; t++) {
        pthread_join(pts[t].thread, NULL);
        if (pts[t].failed[0])
            s_die("fake leader thread %d: %s", t, pts[t].failed);
    }
    r.min_per_group = UINT64_MAX;
    for (int g = 0; g < groups; g++) {
        if (peers[g].tasks < r.min_per_group)
            r.min_per_group = peers[g].tasks;
        if (peers[g].tasks > r.max_per_group)
            r.max_per_group = peers[g].tasks;
        if (!peers[g].gone)
            s_die("group %d never got its SHUTDOWN", g);
    }
    uint64_t served = 0, msgs = 0, packs = 0;
    for (int g = 0; g < groups; g++) {
        served += peers[g].tasks;
        msgs += peers[g].msgs;
        packs += peers[g].packs;
    }
    /* a group refilled at half its window gets its tasks together: with
     * fakes that take packs, in packs */
    if (!o->raw && o->pack > 1 && o->depth >= 2 && packs == 0)
        s_die("no task came in a pack, though the fakes take them");
    if ((o->raw || o->pack == 1) && packs > 0)
        s_die("%" PRIu64 " packs came to fakes that do not take them", packs);
    r.tasks_per_msg = msgs ? (double)served / (double)msgs : 0;
    if (served != warm + o->tasks)
        s_die("the groups answered %" PRIu64 " tasks, %" PRIu64 " were submitted", served,
              warm + o->tasks);
    if (r.min_per_group < (uint64_t)o->depth)
        s_die("a group served only %" PRIu64 " tasks (fewer than the depth %d)", r.min_per_group,
              o->depth);
    pmp_credentials_wipe(&cred);
    zmq_ctx_term(ctx);
    if (o->raw)
        fs_raw_close(&raw);
    else
        pmp_executor_destroy(&ex, 1000);
    free(seen);
    free(peers);
    free(pts);
    if (!o->quiet)
        fprintf(stderr,
                "frontend_scale: %d groups: connected in %.2f s, %" PRIu64 " tasks in %.2f s\n",
                groups, connect_s, o->tasks, r.wall_s);
    return r;
}

/* ---- output ---------------------------------------------------------------- */

static void s_loadavg(double out[3])
{
    out[0] = out[1] = out[2] = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &out[0], &out[1], &out[2]) != 3)
            out[0] = out[1] = out[2] = -1;
        fclose(f);
    }
}

static void s_print_table(const s_options_t *o, const s_result_t *r, int n)
{
    printf("frontend at scale: %" PRIu64 " tasks per run, depth %d, %d caller thread(s) "
           "submitting %d task(s) a call, %d fake-leader thread(s), %ld CPUs, median of %d "
           "run(s)\n",
           o->tasks, o->depth, o->callers, o->submit, o->peer_threads,
           sysconf(_SC_NPROCESSORS_ONLN), o->repeat);
    if (o->raw)
        printf("--raw: no frontend: a bare ROUTER loop (io) sends %d task(s) a message%s to the "
               "same fakes\n",
               o->batch, o->multipart ? " (a protocol message each, in one multipart)" : "");
    printf("CPU in ns per task: io = the frontend's I/O thread, fe-zmq = its libzmq thread, "
           "callers = submit + wait, peers = the fake leaders (+ their libzmq thread); "
           "t/msg = tasks a ZeroMQ message brought a fake\n");
    printf("%7s %10s %8s %8s %8s %8s %8s %8s %8s %6s %9s\n", "groups", "tasks/s", "ns/task", "io",
           "fe-zmq", "callers", "peers", "peer-zmq", "cores", "t/msg", "per group");
    for (int i = 0; i < n; i++) {
        const s_result_t *x = &r[i];
        double cores = x->process_ns / x->ns_per_task;
        char spread[48];
        snprintf(spread, sizeof spread, "%" PRIu64 "-%" PRIu64, x->min_per_group, x->max_per_group);
        printf("%7d %10.0f %8.0f %8.0f %8.0f %8.0f %8.0f %8.0f %8.2f %6.1f %9s\n", x->groups,
               x->tasks_per_s, x->ns_per_task, x->cpu_ns[S_IO], x->cpu_ns[S_FE_ZMQ], x->callers_ns,
               x->cpu_ns[S_PEERS], x->cpu_ns[S_PEERS_ZMQ], cores, x->tasks_per_msg, spread);
    }
}

static void s_write_json(const s_options_t *o, const s_result_t *r, int n, const double load0[3],
                         const double load1[3])
{
    FILE *f = fopen(o->json, "w");
    if (!f)
        s_die("cannot write %s: %s", o->json, strerror(errno));
    fprintf(f,
            "{\n \"benchmark\": \"frontend_scale\", \"mode\": \"%s\", \"batch\": %d, "
            "\"multipart\": %d,\n",
            o->raw ? "raw" : "frontend", o->batch, o->multipart);
    fprintf(f,
            " \"tasks\": %" PRIu64 ", \"depth\": %d, \"callers\": %d, \"submit\": %d, "
            "\"peer_threads\": %d, \"repeat\": %d,\n",
            o->tasks, o->depth, o->callers, o->submit, o->peer_threads, o->repeat);
    fprintf(f,
            " \"cpus\": %ld, \"loadavg_before\": [%.2f, %.2f, %.2f], "
            "\"loadavg_after\": [%.2f, %.2f, %.2f],\n",
            sysconf(_SC_NPROCESSORS_ONLN), load0[0], load0[1], load0[2], load1[0], load1[1],
            load1[2]);
    fprintf(f, " \"results\": [\n");
    for (int i = 0; i < n; i++) {
        const s_result_t *x = &r[i];
        fprintf(f,
                "  {\"groups\": %d, \"tasks\": %" PRIu64 ", \"wall_s\": %.6f, "
                "\"tasks_per_s\": %.1f, \"ns_per_task\": %.1f,\n   \"cpu_ns_per_task\": {",
                x->groups, x->tasks, x->wall_s, x->tasks_per_s, x->ns_per_task);
        for (int k = 0; k < S_CLASSES; k++)
            fprintf(f, "\"%s\": %.1f, ", s_class_names[k], x->cpu_ns[k]);
        fprintf(f, "\"callers\": %.1f, \"process\": %.1f},\n", x->callers_ns, x->process_ns);
        fprintf(f, "   \"tasks_per_s_runs\": [");
        for (int k = 0; k < x->nsamples; k++)
            fprintf(f, "%s%.1f", k ? ", " : "", x->samples[k]);
        fprintf(f, "],\n");
        fprintf(f,
                "   \"cores_used\": %.3f, \"tasks_per_message\": %.2f, "
                "\"tasks_per_group\": {\"min\": %" PRIu64 ", \"max\": %" PRIu64 "}}%s\n",
                x->process_ns / x->ns_per_task, x->tasks_per_msg, x->min_per_group,
                x->max_per_group, i + 1 < n ? "," : "");
    }
    fprintf(f, " ]\n}\n");
    if (fclose(f) != 0)
        s_die("cannot write %s", o->json);
}

/* ---- main ------------------------------------------------------------------ */

static int s_by_rate(const void *a, const void *b)
{
    double x = ((const s_result_t *)a)->tasks_per_s, y = ((const s_result_t *)b)->tasks_per_s;
    return (x > y) - (x < y);
}

static void s_usage(void)
{
    fprintf(stderr, "usage: frontend_scale [--groups 10,100,1000] [--tasks N] [--depth D]\n"
                    "                      [--peer-threads T] [--callers C] [--repeat R] "
                    "[--batch K] [--pack K] [--submit K]\n"
                    "                      [--raw [--multipart]] [--json FILE] [--quiet]\n");
    exit(2);
}

static long s_number(const char *text, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "frontend_scale: '%s' is not a number from %ld to %ld\n", text, min, max);
        s_usage();
    }
    return v;
}

int main(int argc, char **argv)
{
    s_options_t o = {.groups = {10, 100, 1000},
                     .ngroup_sets = 3,
                     .tasks = 500000,
                     .depth = 4,
                     .peer_threads = 1,
                     .callers = 1,
                     .submit = 64,
                     .repeat = 1,
                     .batch = 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quiet") || !strcmp(a, "--raw") || !strcmp(a, "--multipart")) {
            *(a[2] == 'q' ? &o.quiet : a[2] == 'r' ? &o.raw : &o.multipart) = 1;
            continue;
        }
        if (!v)
            s_usage();
        i++;
        if (!strcmp(a, "--groups")) {
            o.ngroup_sets = 0;
            char *copy = strdup(v), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (o.ngroup_sets == S_MAX_GROUP_SETS)
                    s_usage();
                o.groups[o.ngroup_sets++] = (int)s_number(t, 1, 100000);
            }
            free(copy);
            if (o.ngroup_sets == 0)
                s_usage();
        } else if (!strcmp(a, "--tasks")) {
            o.tasks = (uint64_t)s_number(v, 1, 1000000000L);
        } else if (!strcmp(a, "--depth")) {
            o.depth = (int)s_number(v, 1, 1024);
        } else if (!strcmp(a, "--peer-threads")) {
            o.peer_threads = (int)s_number(v, 1, 64);
        } else if (!strcmp(a, "--callers")) {
            o.callers = (int)s_number(v, 1, 64);
        } else if (!strcmp(a, "--batch")) {
            o.batch = (int)s_number(v, 1, S_MAX_BATCH);
        } else if (!strcmp(a, "--pack")) {
            o.pack = (int)s_number(v, 1, S_MAX_BATCH);
        } else if (!strcmp(a, "--submit")) {
            o.submit = (int)s_number(v, 1, S_MAX_SUBMIT);
        } else if (!strcmp(a, "--repeat")) {
            o.repeat = (int)s_number(v, 1, S_MAX_REPEAT);
        } else if (!strcmp(a, "--json")) {
            o.json = v;
        } else {
            s_usage();
        }
    }
    if (o.multipart && !o.raw) {
        fprintf(stderr, "frontend_scale: --multipart needs --raw (the frontend batches protocol "
                        "messages that way by itself)\n");
        s_usage();
    }
    if (o.batch == 0) /* the fakes take batches as the runtime does; raw: one task a message */
        o.batch = o.raw ? 1 : PMP_BATCH_MAX;
    if (o.pack == 0) /* and packs as the runtime does, unless they take one task a message */
        o.pack = o.batch;
    /* a socket per group on each side, and their mailboxes: raise the
     * soft limit of descriptors to the hard one */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    double load0[3], load1[3];
    s_loadavg(load0);
    static s_result_t runs[S_MAX_GROUP_SETS][S_MAX_REPEAT];
    s_result_t results[S_MAX_GROUP_SETS];
    for (int r = 0; r < o.repeat; r++) /* interleaved rounds */
        for (int i = 0; i < o.ngroup_sets; i++)
            runs[i][r] = s_measure(&o, o.groups[i]);
    for (int i = 0; i < o.ngroup_sets; i++) {
        qsort(runs[i], (size_t)o.repeat, sizeof runs[i][0], s_by_rate);
        results[i] = runs[i][o.repeat / 2];
        results[i].nsamples = o.repeat;
        for (int r = 0; r < o.repeat; r++)
            results[i].samples[r] = runs[i][r].tasks_per_s;
    }
    s_loadavg(load1);
    s_print_table(&o, results, o.ngroup_sets);
    if (o.json)
        s_write_json(&o, results, o.ngroup_sets, load0, load1);
    printf("frontend_scale: every task completed exactly once with the right result\n");
    return 0;
}
