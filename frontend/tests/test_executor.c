/*
 * test_executor.c - unit tests of the executor (unit.executor.<case>).
 *
 * Usage: test_executor <case> <fake_runtime> <mpiexec> <flavour>.  Each case
 * starts the fake runtime (tests/fake_runtime.c: protocol only, no MPI, no
 * Python) through a real mpiexec and checks one behaviour of
 * pmp_executor.h: the ready handshake, scheduling order and spread,
 * zero-copy ownership, large frames, cancel, close, the job's crash or
 * failed start, missing programs, invalid configurations, the command of a
 * launch-less executor, and that nothing (directory, process) is left
 * behind.  Every case runs with TMPDIR set to a private directory so that
 * leftovers can be counted.  Exits 0 on success; prints the failed check
 * and exits 1 otherwise.
 */
#include <zmq.h>

#include "executor_harness.h"
#include "pmp_credentials.h"

/* Gives a peer socket the executor's credentials (as the runtime does). */
static void s_peer_auth(void *sock, pmp_executor_t *ex)
{
    pmp_credentials_t c;
    pmp_error_t err = {{0}};
    if (pmp_credentials_read(s_cred_path(ex), &c, &err) < 0)
        fprintf(stderr, "%s\n", err.text);
    CHECK(c.mechanism != 0);
    if (c.mechanism == PMP_CREDENTIALS_PLAIN) {
        CHECK(zmq_setsockopt(sock, ZMQ_PLAIN_USERNAME, PMP_CREDENTIALS_USER,
                             strlen(PMP_CREDENTIALS_USER)) == 0);
        CHECK(zmq_setsockopt(sock, ZMQ_PLAIN_PASSWORD, c.password, 40) == 0);
    } else {
        CHECK(zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c.server_public, 40) == 0);
        CHECK(zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c.client_public, 40) == 0);
        CHECK(zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c.client_secret, 40) == 0);
    }
}

/* ---- cases ---------------------------------------------------------------- */

static void s_case_ready(void)
{
    pmp_executor_t *ex = s_new(1, 1, 1, NULL);
    const char *ep = pmp_executor_endpoint(ex);
    CHECK(strncmp(ep, "ipc://", 6) == 0);
    CHECK(strstr(ep, "/pympipool-") != NULL);
    CHECK(strcmp(ep + strlen(ep) - strlen("/frontend"), "/frontend") == 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", ep + 6);
    *strrchr(dir, '/') = '\0';
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    CHECK(strncmp(dir, g_tmpdir, strlen(g_tmpdir)) == 0);
    CHECK(pmp_executor_pid(ex) > 0);
    const char *const *cmd = pmp_executor_command(ex);
    CHECK(strcmp(cmd[0], g_mpiexec) == 0 && strcmp(cmd[1], "-n") == 0 && strcmp(cmd[2], "1") == 0);
    CHECK(strcmp(cmd[3], g_fake) == 0 && strcmp(cmd[4], "--endpoint") == 0);
    CHECK(strcmp(cmd[5], ep) == 0 && strcmp(cmd[6], "--ranks-per-group") == 0);
    CHECK(strcmp(cmd[7], "1") == 0 && strcmp(cmd[8], "--frontend-pid") == 0);
    char host[256] = "";
    CHECK(gethostname(host, sizeof host - 1) == 0);
    CHECK(atol(cmd[9]) == (long)getpid() && strcmp(cmd[10], "--frontend-host") == 0);
    CHECK(strcmp(cmd[11], host) == 0 && strcmp(cmd[12], "--credentials") == 0);
    CHECK(strncmp(cmd[13], dir, strlen(dir)) == 0 && cmd[14] == NULL);
    s_wait_hellos(ex, 1);
    CHECK(!s_exists(cmd[13], 0, 5000)); /* removed after the hello */
    CHECK(pmp_executor_wait(ex, 0) == NULL && errno == EAGAIN);
    CHECK(pmp_executor_wait(ex, 50) == NULL && errno == EAGAIN);
    CHECK(s_submit_text(ex, 1, "hello") == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_task_id(c) == 1);
    CHECK(pmp_completion_nframes(c) == 1 && pmp_completion_status(c) == -1);
    CHECK(strcmp(pmp_completion_text(c), "") == 0);
    CHECK(pmp_completion_take_frame(c, 1) == NULL);
    CHECK(s_frame_is(c, 0, "hello"));
    CHECK(pmp_completion_take_frame(c, 0) == NULL); /* already taken */
    pmp_completion_destroy(&c);
    s_destroy(&ex, 2000);
}

/* Two groups of one rank, and one group of two ranks. */
static void s_case_groups2(void)
{
    const char *const args[] = {"--fake-tag", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 2);
    s_destroy(&ex, 2000);

    ex = s_new(2, 2, 1, args);
    s_wait_hellos(ex, 1);
    CHECK(s_submit_text(ex, 7, "x") == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_nframes(c) == 2);
    CHECK(s_frame_is(c, 1, "group=0 init=-"));
    pmp_completion_destroy(&c);
    CHECK(pmp_executor_wait(ex, 300) == NULL && errno == EAGAIN); /* no second hello */
    s_destroy(&ex, 2000);
}

/* One group at depth 1: results in submission order. */
static void s_case_fifo(void)
{
    pmp_executor_t *ex = s_new(1, 1, 1, NULL);
    enum { N = 200 };
    char text[32];
    for (int i = 1; i <= N; i++) { /* most are queued before the hello */
        snprintf(text, sizeof text, "task %d", i);
        CHECK(s_submit_text(ex, (uint64_t)i, text) == 0);
    }
    s_wait_hellos(ex, 1);
    for (int i = 1; i <= N; i++) {
        pmp_completion_t *c = s_wait(ex, 10000);
        CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT);
        CHECK(pmp_completion_task_id(c) == (uint64_t)i);
        snprintf(text, sizeof text, "task %d", i);
        CHECK(s_frame_is(c, 0, text));
        pmp_completion_destroy(&c);
    }
    CHECK(pmp_executor_pending(ex) == 0);
    s_destroy(&ex, 2000);
}

/* Two groups with slow tasks share the load. */
static void s_case_spread(void)
{
    const char *const args[] = {"--fake-tag", "--fake-delay-ms", "100", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 2);
    enum { N = 10 };
    for (int i = 1; i <= N; i++)
        CHECK(s_submit_text(ex, (uint64_t)i, "t") == 0);
    int per_group[2] = {0, 0};
    int64_t t0 = s_now_ms();
    for (int i = 0; i < N; i++) {
        pmp_completion_t *c = s_wait(ex, 10000);
        CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_nframes(c) == 2);
        pmp_frame_t *f = pmp_completion_take_frame(c, 1);
        CHECK(f && pmp_frame_size(f) >= 7);
        int g = ((char *)pmp_frame_data(f))[6] - '0';
        CHECK(g == 0 || g == 1);
        per_group[g]++;
        pmp_frame_destroy(&f);
        pmp_completion_destroy(&c);
    }
    int64_t took = s_now_ms() - t0;
    fprintf(stderr, "spread: %d / %d tasks in %lld ms\n", per_group[0], per_group[1],
            (long long)took);
    CHECK(per_group[0] >= 3 && per_group[1] >= 3);
    CHECK(took < N * 100); /* in parallel: about N/2 * 100 ms */
    s_destroy(&ex, 2000);
}

static int g_freed;
static void s_count_free(void *data, void *hint)
{
    CHECK(hint == &g_freed);
    (void)data;
    __atomic_add_fetch(&g_freed, 1, __ATOMIC_SEQ_CST);
}

static int s_freed(void)
{
    return __atomic_load_n(&g_freed, __ATOMIC_SEQ_CST);
}

/* Zero-copy buffers: free_fn exactly once per buffer after the round trip. */
static void s_case_zerocopy(void)
{
    static char payload[16][100000];
    pmp_executor_t *ex = s_new(1, 1, 2, NULL);
    s_wait_hellos(ex, 1);
    for (int i = 0; i < 8; i++) {
        memset(payload[2 * i], 'a' + i, sizeof payload[0]);
        memset(payload[2 * i + 1], 'A' + i, sizeof payload[0]);
        pmp_buffer_t b[3] = {
            {.data = payload[2 * i],
             .size = sizeof payload[0],
             .free_fn = s_count_free,
             .hint = &g_freed},
            {.data = "copied", .size = 6},
            {.data = payload[2 * i + 1],
             .size = sizeof payload[0],
             .free_fn = s_count_free,
             .hint = &g_freed},
        };
        CHECK(pmp_executor_submit(ex, (uint64_t)i + 1, PMP_MSG_TASK, 0, b, 3, NULL) == 0);
    }
    for (int i = 0; i < 8; i++) {
        pmp_completion_t *c = s_wait(ex, 10000);
        CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_nframes(c) == 3);
        int k = (int)pmp_completion_task_id(c) - 1;
        pmp_frame_t *f = pmp_completion_take_frame(c, 2);
        CHECK(pmp_frame_size(f) == sizeof payload[0]);
        CHECK(memcmp(pmp_frame_data(f), payload[2 * k + 1], sizeof payload[0]) == 0);
        pmp_frame_destroy(&f);
        CHECK(s_frame_is(c, 1, "copied"));
        pmp_completion_destroy(&c); /* frame 0 freed with the completion */
    }
    /* sent messages are released by ZeroMQ's own thread, soon after sending */
    for (int64_t t0 = s_now_ms(); s_freed() < 16 && s_now_ms() - t0 < 5000;)
        usleep(10000);
    CHECK(s_freed() == 16);
    s_destroy(&ex, 2000);
    CHECK(s_freed() == 16);
}

/* Queued zero-copy tasks are released exactly once by destroy and cancel. */
static void s_case_zerocopy_destroy(void)
{
    static char data[4][64];
    pmp_executor_t *ex = s_new_unlaunched(1, 1, 1);
    for (int i = 0; i < 4; i++) {
        pmp_buffer_t b = {
            .data = data[i], .size = sizeof data[i], .free_fn = s_count_free, .hint = &g_freed};
        CHECK(pmp_executor_submit(ex, (uint64_t)i + 1, PMP_MSG_TASK, 0, &b, 1, NULL) == 0);
    }
    CHECK(pmp_executor_pending(ex) == 4);
    CHECK(s_freed() == 0);
    CHECK(pmp_executor_cancel(ex, 2) == 1);
    CHECK(s_freed() == 1);
    s_destroy(&ex, 0);
    CHECK(s_freed() == 4);

    /* with a running job that is still starting up (tasks queued) */
    g_freed = 0;
    const char *const args[] = {"--fake-delay-ms", "2000", NULL};
    ex = s_new(1, 1, 1, args);
    for (int i = 0; i < 4; i++) {
        pmp_buffer_t b = {
            .data = data[i], .size = sizeof data[i], .free_fn = s_count_free, .hint = &g_freed};
        CHECK(pmp_executor_submit(ex, (uint64_t)i + 1, PMP_MSG_TASK, 0, &b, 1, NULL) == 0);
    }
    s_wait_hellos(ex, 1); /* task 1 is now in flight (2 s), the others queued */
    s_destroy(&ex, 200);
    CHECK(s_freed() == 4);
}

/* A failed submit never calls free_fn. */
static void s_case_zerocopy_fail(void)
{
    static char data[64];
    pmp_executor_t *ex = s_new_unlaunched(1, 1, 1);
    pmp_buffer_t b[2] = {
        {.data = data, .size = sizeof data, .free_fn = s_count_free, .hint = &g_freed},
        {.data = data, .size = sizeof data, .free_fn = s_count_free, .hint = &g_freed}};
    pmp_error_t err = {{0}};
    CHECK(pmp_executor_submit(ex, 1, PMP_MSG_TASK, 0x80, b, 2, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "flags"));
    CHECK(pmp_executor_submit(ex, 0, PMP_MSG_TASK, 0, b, 2, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "task_id"));
    CHECK(pmp_executor_submit(ex, 1, PMP_MSG_RESULT, 0, b, 2, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "type"));
    CHECK(pmp_executor_submit(ex, 1, PMP_MSG_TASK, 0, b, 0, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_submit(ex, 1, PMP_MSG_TASK, 0, NULL, 1, &err) == -1 && errno == EINVAL);
    pmp_buffer_t bad = {.data = NULL, .size = 3};
    CHECK(pmp_executor_submit(ex, 1, PMP_MSG_TASK, 0, &bad, 1, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_submit(ex, 1, PMP_MSG_TASK, 0, b, 2, &err) == 0);
    CHECK(pmp_executor_submit(ex, 1, PMP_MSG_TASK, 0, b, 2, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "already in use"));
    CHECK(pmp_executor_submit(ex, 2, PMP_MSG_INIT, 0, b, 2, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "init"));
    pmp_executor_close(ex);
    CHECK(pmp_executor_submit(ex, 3, PMP_MSG_TASK, 0, b, 2, &err) == -1 && errno == ESHUTDOWN);
    CHECK(s_freed() == 0);
    s_destroy(&ex, 0);
    CHECK(s_freed() == 2); /* only the accepted task 1 */
}

/* A 64 MiB frame survives the round trip intact. */
static void s_case_large(void)
{
    size_t size = 64u << 20;
    unsigned char *big = malloc(size);
    CHECK(big);
    unsigned int seed = 42;
    for (size_t i = 0; i < size; i++)
        big[i] = (unsigned char)rand_r(&seed);
    pmp_executor_t *ex = s_new(1, 1, 1, NULL);
    s_wait_hellos(ex, 1);
    pmp_buffer_t b[2] = {{.data = "p", .size = 1},
                         {.data = big, .size = size, .free_fn = s_count_free, .hint = &g_freed}};
    CHECK(pmp_executor_submit(ex, 5, PMP_MSG_TASK, 0, b, 2, NULL) == 0);
    pmp_completion_t *c = s_wait(ex, 30000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_nframes(c) == 2);
    pmp_frame_t *f = pmp_completion_take_frame(c, 1);
    pmp_completion_destroy(&c);
    CHECK(pmp_frame_size(f) == size && memcmp(pmp_frame_data(f), big, size) == 0);
    ((unsigned char *)pmp_frame_data(f))[0] ^= 1; /* writable */
    pmp_frame_destroy(&f);
    s_destroy(&ex, 2000);
    CHECK(s_freed() == 1);
    free(big);
}

/* A task cancelled before dispatch gets no completion. */
static void s_case_cancel(void)
{
    const char *const args[] = {"--fake-delay-ms", "300", NULL};
    pmp_executor_t *ex = s_new(1, 1, 1, args);
    s_wait_hellos(ex, 1);
    CHECK(s_submit_text(ex, 1, "a") == 0);
    usleep(100000); /* task 1 is in flight */
    CHECK(s_submit_text(ex, 2, "b") == 0);
    CHECK(s_submit_text(ex, 3, "c") == 0);
    CHECK(pmp_executor_cancel(ex, 1) == 0); /* already sent */
    CHECK(pmp_executor_cancel(ex, 3) == 1);
    CHECK(pmp_executor_cancel(ex, 3) == 0);
    CHECK(pmp_executor_cancel(ex, 99) == 0);
    for (uint64_t id = 1; id <= 2; id++) {
        pmp_completion_t *c = s_wait(ex, 10000);
        CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_task_id(c) == id);
        pmp_completion_destroy(&c);
    }
    CHECK(pmp_executor_wait(ex, 800) == NULL && errno == EAGAIN);
    /* the id of a cancelled task may be used again */
    CHECK(s_submit_text(ex, 3, "again") == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_task_id(c) == 3 && s_frame_is(c, 0, "again"));
    pmp_completion_destroy(&c);
    s_destroy(&ex, 2000);
}

static void s_case_cancel_all(void)
{
    pmp_executor_t *ex = s_new_unlaunched(1, 1, 1);
    uint64_t *ids = (uint64_t *)1;
    size_t n = 99;
    CHECK(pmp_executor_cancel_all(ex, &ids, &n) == 0 && ids == NULL && n == 0);
    for (uint64_t id = 10; id < 15; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    CHECK(pmp_executor_cancel(ex, 12) == 1);
    CHECK(pmp_executor_cancel_all(ex, &ids, &n) == 0);
    CHECK(n == 4 && ids[0] == 10 && ids[1] == 11 && ids[2] == 13 && ids[3] == 14);
    free(ids);
    CHECK(pmp_executor_pending(ex) == 0);
    CHECK(pmp_executor_wait(ex, 0) == NULL && errno == EAGAIN);
    s_destroy(&ex, 0);
}

static void s_case_pending(void)
{
    const char *const args[] = {"--fake-delay-ms", "200", NULL};
    pmp_executor_t *ex = s_new(1, 1, 2, args);
    CHECK(pmp_executor_pending(ex) == 0);
    for (uint64_t id = 1; id <= 5; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    CHECK(pmp_executor_pending(ex) == 5); /* nobody connected yet */
    s_wait_hellos(ex, 1);
    usleep(50000);
    CHECK(pmp_executor_pending(ex) == 3); /* depth 2 in flight */
    for (int i = 0; i < 5; i++) {
        pmp_completion_t *c = s_wait(ex, 10000);
        CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT);
        pmp_completion_destroy(&c);
    }
    CHECK(pmp_executor_pending(ex) == 0);
    s_destroy(&ex, 2000);
}

/* close(): everything completes, then EXIT (status 0) and CLOSED, last. */
static void s_case_close(void)
{
    const char *const args[] = {"--fake-delay-ms", "20", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    for (uint64_t id = 1; id <= 10; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    pmp_executor_close(ex);
    pmp_executor_close(ex); /* idempotent */
    pmp_error_t err = {{0}};
    pmp_buffer_t b = {.data = "y", .size = 1};
    CHECK(pmp_executor_submit(ex, 11, PMP_MSG_TASK, 0, &b, 1, &err) == -1 && errno == ESHUTDOWN);
    CHECK(strstr(err.text, "shut down"));
    int results = 0, hellos = 0, exits = 0, closed = 0;
    while (!closed) {
        pmp_completion_t *c = s_wait(ex, 20000);
        switch (pmp_completion_kind(c)) {
        case PMP_DONE_RESULT:
            CHECK(exits == 0);
            results++;
            break;
        case PMP_EVENT_HELLO:
            hellos++;
            break;
        case PMP_EVENT_EXIT:
            CHECK(results == 10);
            CHECK(WIFEXITED(pmp_completion_status(c)) &&
                  WEXITSTATUS(pmp_completion_status(c)) == 0);
            CHECK(strstr(pmp_completion_text(c), "exited with status 0"));
            exits++;
            break;
        case PMP_EVENT_CLOSED:
            closed = 1;
            break;
        default:
            CHECK(!"unexpected completion");
        }
        pmp_completion_destroy(&c);
    }
    CHECK(results == 10 && hellos == 2 && exits == 1);
    CHECK(pmp_executor_wait(ex, 1000) == NULL && errno == ESHUTDOWN);
    CHECK(pmp_executor_wait(ex, -1) == NULL && errno == ESHUTDOWN);
    s_destroy(&ex, 2000);
}

/* The job crashes: EXIT with the stderr tail, BROKEN for every pending task,
 * then submit fails with EPIPE. */
static void s_case_crash(void)
{
    const char *const args[] = {"--fake-crash-at-task", "2", NULL};
    pmp_executor_t *ex = s_new(1, 1, 1, args);
    s_wait_hellos(ex, 1);
    for (uint64_t id = 1; id <= 4; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_task_id(c) == 1);
    pmp_completion_destroy(&c);
    c = s_wait(ex, 20000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_EXIT);
    const char *text = pmp_completion_text(c);
    fprintf(stderr, "crash text: %s\n", text);
    CHECK(strstr(text, "pympipool-runtime job ("));
    CHECK(strstr(text, "fake: crashing"));
    CHECK(strstr(text, "its stderr ended with:\n"));
    CHECK(pmp_completion_status(c) != 0);
    pmp_completion_destroy(&c);
    for (uint64_t id = 2; id <= 4; id++) {
        c = s_wait(ex, 1000);
        CHECK(pmp_completion_kind(c) == PMP_DONE_BROKEN && pmp_completion_task_id(c) == id);
        CHECK(strstr(pmp_completion_text(c), "fake: crashing"));
        CHECK(pmp_completion_nframes(c) == 0);
        pmp_completion_destroy(&c);
    }
    CHECK(pmp_executor_wait(ex, 200) == NULL && errno == EAGAIN);
    CHECK(pmp_executor_pending(ex) == 0);
    pmp_error_t err = {{0}};
    pmp_buffer_t b = {.data = "y", .size = 1};
    CHECK(pmp_executor_submit(ex, 9, PMP_MSG_TASK, 0, &b, 1, &err) == -1 && errno == EPIPE);
    CHECK(strstr(err.text, "fake: crashing"));
    /* close after the exit: CLOSED at once */
    pmp_executor_close(ex);
    c = s_wait(ex, 2000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_CLOSED);
    pmp_completion_destroy(&c);
    s_destroy(&ex, 2000);
}

/* The same without a pidfd: the 100 ms waitpid poll sees the exit. */
static void s_case_crash_nopidfd(void)
{
    setenv("PYMPIPOOL_NO_PIDFD", "1", 1);
    s_case_crash();
}

/* The job fails before any hello: EXIT within seconds, queued tasks BROKEN. */
static void s_case_fail_start(void)
{
    const char *const args[] = {"--fake-fail-start", NULL};
    int64_t t0 = s_now_ms();
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    CHECK(s_submit_text(ex, 1, "x") == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_EXIT);
    CHECK(strstr(pmp_completion_text(c), "fake: cannot start"));
    CHECK(s_now_ms() - t0 < 10000);
    pmp_completion_destroy(&c);
    c = s_wait(ex, 1000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_BROKEN && pmp_completion_task_id(c) == 1);
    CHECK(strstr(pmp_completion_text(c), "fake: cannot start"));
    pmp_completion_destroy(&c);
    s_destroy(&ex, 2000);
}

/* Missing programs: ENOENT naming them, nothing left behind. */
static void s_case_missing(void)
{
    pmp_error_t err = {{0}};
    pmp_executor_config_t cfg = s_cfg(1, 1, 1, NULL);
    cfg.mpiexec = "no-such-mpiexec-xyz";
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == ENOENT);
    fprintf(stderr, "missing mpiexec: %s\n", err.text);
    CHECK(strstr(err.text, "no-such-mpiexec-xyz") && strstr(err.text, "mpiexec"));

    cfg = s_cfg(1, 1, 1, NULL);
    cfg.runtime = "/nonexistent/pympipool-runtime";
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == ENOENT);
    fprintf(stderr, "missing runtime: %s\n", err.text);
    CHECK(strstr(err.text, "/nonexistent/pympipool-runtime"));

    cfg = s_cfg(1, 1, 1, NULL);
    cfg.flux = 1;
    setenv("PATH", "/nonexistent-dir", 1);
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == ENOENT);
    CHECK(strstr(err.text, "flux"));
    cfg.flux = 0;
    cfg.mpiexec = "mpiexec.mpich";
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == ENOENT);
    CHECK(strstr(err.text, "mpiexec.mpich") && strstr(err.text, "PATH"));

    cfg = s_cfg(1, 1, 1, NULL);
    cfg.cwd = "/nonexistent-cwd";
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == ENOENT);
    CHECK(strstr(err.text, "/nonexistent-cwd"));
    CHECK(s_tmpdir_entries() == 0);

    /* found but not executable by the kernel: the I/O thread's exec fails,
     * new() fails cleanly with that reason */
    char bad[] = "/tmp/pmp-bad-mpiexec-XXXXXX";
    int fd = mkstemp(bad);
    CHECK(fd >= 0);
    CHECK(write(fd, "not a program\n", 14) == 14);
    close(fd);
    CHECK(chmod(bad, 0755) == 0);
    cfg = s_cfg(1, 1, 1, NULL);
    cfg.mpiexec = bad;
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == ENOEXEC);
    fprintf(stderr, "bad mpiexec: %s\n", err.text);
    CHECK(strstr(err.text, bad) && strstr(err.text, "format"));
    unlink(bad);
    CHECK(s_tmpdir_entries() == 0);
}

static void s_case_invalid(void)
{
    pmp_error_t err = {{0}};
    CHECK(pmp_executor_new(NULL, &err) == NULL && errno == EINVAL);
    pmp_executor_config_t cfg = s_cfg(0, 1, 1, NULL);
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL && strstr(err.text, "ranks"));
    cfg = s_cfg(4, 3, 1, NULL);
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL);
    CHECK(strstr(err.text, "ranks_per_group"));
    cfg = s_cfg(4, 0, 1, NULL);
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL);
    CHECK(strstr(err.text, "ranks_per_group"));
    cfg = s_cfg(4, 2, 0, NULL);
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL);
    CHECK(strstr(err.text, "pipeline_depth"));
    cfg = s_cfg(1, 1, 1, NULL);
    cfg.runtime = NULL;
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL && strstr(err.text, "runtime"));
    cfg = s_cfg(1, 1, 1, NULL);
    cfg.mpiexec = NULL;
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL && strstr(err.text, "mpiexec"));
    pmp_executor_new(&cfg, NULL); /* err may be NULL */
    CHECK(s_tmpdir_entries() == 0);
}

/* launch = 0: the command is built, nothing runs; close() with no group
 * closes at once; a group started by hand gets SHUTDOWN and says goodbye. */
static void s_case_launch0(void)
{
    const char *const args[] = {"--python", "/usr/bin/python3", NULL};
    pmp_executor_config_t cfg = s_cfg(4, 2, 1, args);
    cfg.launch = 0;
    cfg.oversubscribe = 1;
    cfg.mpi_flavour = "openmpi";
    cfg.mpiexec = "no-such-mpiexec"; /* not looked up without launch */
    pmp_executor_t *ex = pmp_executor_new(&cfg, NULL);
    CHECK(ex);
    CHECK(pmp_executor_pid(ex) == -1);
    char host[256] = "";
    CHECK(gethostname(host, sizeof host - 1) == 0);
    const char *const *cmd = pmp_executor_command(ex);
    const char *want[] = {"no-such-mpiexec",
                          "-n",
                          "4",
                          "--oversubscribe",
                          g_fake,
                          "--endpoint",
                          pmp_executor_endpoint(ex),
                          "--ranks-per-group",
                          "2",
                          "--frontend-pid",
                          NULL,
                          "--frontend-host",
                          host,
                          "--credentials",
                          s_cred_path(ex),
                          "--python",
                          "/usr/bin/python3"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(want[i] == NULL ? atol(cmd[i]) == (long)getpid() : strcmp(cmd[i], want[i]) == 0);
    CHECK(cmd[sizeof want / sizeof want[0]] == NULL);
    struct stat st; /* written at creation for the queue adapter's job */
    CHECK(stat(s_cred_path(ex), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600);
    pmp_executor_close(ex);
    pmp_completion_t *c = s_wait(ex, 2000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_CLOSED);
    pmp_completion_destroy(&c);
    s_destroy(&ex, 0);

    /* no --oversubscribe for MPICH; flux */
    cfg.mpi_flavour = "mpich";
    ex = pmp_executor_new(&cfg, NULL);
    CHECK(ex && strcmp(pmp_executor_command(ex)[3], g_fake) == 0);
    s_destroy(&ex, 0);
    cfg.flux = 1;
    ex = pmp_executor_new(&cfg, NULL);
    cmd = pmp_executor_command(ex);
    CHECK(ex && strcmp(cmd[0], "flux") == 0 && strcmp(cmd[1], "run") == 0);
    CHECK(strcmp(cmd[2], "-n") == 0 && strcmp(cmd[3], "4") == 0 && strcmp(cmd[4], g_fake) == 0);
    s_destroy(&ex, 0);

    /* start the runtime by hand (as a queue adapter would) */
    cfg = s_cfg(1, 1, 1, NULL);
    cfg.launch = 0;
    ex = pmp_executor_new(&cfg, NULL);
    CHECK(ex);
    cmd = pmp_executor_command(ex);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execv(g_fake, (char *const *)(cmd + 3));
        _exit(127);
    }
    s_wait_hellos(ex, 1);
    CHECK(s_submit_text(ex, 1, "x") == 0);
    pmp_executor_close(ex);
    c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT);
    pmp_completion_destroy(&c);
    c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_CLOSED); /* after its goodbye */
    pmp_completion_destroy(&c);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    s_destroy(&ex, 0);
}

static void s_case_error(void)
{
    const char *const args[] = {"--fake-error", NULL};
    pmp_executor_t *ex = s_new(1, 1, 1, args);
    CHECK(s_submit_text(ex, 3, "boom") == 0);
    s_wait_hellos(ex, 1);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_ERROR && pmp_completion_task_id(c) == 3);
    CHECK(pmp_completion_nframes(c) == 1 && s_frame_is(c, 0, "boom"));
    pmp_completion_destroy(&c);
    s_destroy(&ex, 2000);
}

/* INIT reaches every group before its first task, also late groups. */
static void s_case_init(void)
{
    const char *const args[] = {"--fake-tag", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    pmp_buffer_t b = {.data = "setup", .size = 5};
    pmp_error_t err = {{0}};
    CHECK(pmp_executor_submit(ex, 100, PMP_MSG_INIT, 0, &b, 1, &err) == 0);
    CHECK(pmp_executor_submit(ex, 101, PMP_MSG_INIT, 0, &b, 1, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_pending(ex) == 0);
    for (uint64_t id = 1; id <= 6; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    int results = 0;
    while (results < 6) {
        pmp_completion_t *c = s_wait(ex, 20000);
        if (pmp_completion_kind(c) == PMP_DONE_RESULT) {
            CHECK(pmp_completion_nframes(c) == 2);
            pmp_frame_t *f = pmp_completion_take_frame(c, 1);
            CHECK(pmp_frame_size(f) == 18 &&
                  memcmp((char *)pmp_frame_data(f) + 8, "init=setup", 10) == 0);
            pmp_frame_destroy(&f);
            results++;
        } else {
            CHECK(pmp_completion_kind(c) == PMP_EVENT_HELLO);
        }
        pmp_completion_destroy(&c);
    }
    s_destroy(&ex, 2000);
}

/* ---- broadcasts: DEFINE and FORGET ----------------------------------------- */

static int s_broadcast_text(pmp_executor_t *ex, int type, uint64_t key, const char *text)
{
    pmp_buffer_t b = {.data = text, .size = text ? strlen(text) : 0};
    pmp_error_t err = {{0}};
    int rc = pmp_executor_broadcast(ex, type, key, text ? &b : NULL, text ? 1 : 0, &err);
    if (rc < 0)
        fprintf(stderr, "broadcast %d %llu: %s\n", type, (unsigned long long)key, err.text);
    return rc;
}

/* Collects the results of n tasks (ids 1..max) submitted with --fake-tag
 * and --fake-log: group[id] and log[id] ("log=..." frame), skipping hellos. */
#define S_MAX_IDS 16
static void s_collect(pmp_executor_t *ex, int n, int group[S_MAX_IDS], char log[][256])
{
    for (int got = 0; got < n;) {
        pmp_completion_t *c = s_wait(ex, 20000);
        if (pmp_completion_kind(c) == PMP_EVENT_HELLO) {
            pmp_completion_destroy(&c);
            continue;
        }
        CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_nframes(c) == 3);
        uint64_t id = pmp_completion_task_id(c);
        CHECK(id >= 1 && id < S_MAX_IDS);
        pmp_frame_t *f = pmp_completion_take_frame(c, 1);
        CHECK(sscanf(pmp_frame_data(f), "group=%d", &group[id]) == 1);
        pmp_frame_destroy(&f);
        f = pmp_completion_take_frame(c, 2);
        size_t len = pmp_frame_size(f);
        CHECK(len < 256);
        memcpy(log[id], pmp_frame_data(f), len);
        log[id][len] = '\0';
        pmp_frame_destroy(&f);
        pmp_completion_destroy(&c);
        got++;
    }
}

/* A broadcast reaches every group after the tasks submitted before it and
 * before the tasks submitted after it; FORGET follows the same order. */
static void s_case_define(void)
{
    const char *const args[] = {"--fake-tag", "--fake-log", "--fake-delay-ms", "200", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 2);
    int group[S_MAX_IDS] = {0};
    char log[S_MAX_IDS][256];
    memset(log, 0, sizeof log);

    CHECK(s_broadcast_text(ex, PMP_MSG_DEFINE, 5, "fnA") == 0);
    for (uint64_t id = 1; id <= 4; id++) /* 2 go out at once, 2 wait in the queue */
        CHECK(s_submit_text(ex, id, "x") == 0);
    CHECK(s_broadcast_text(ex, PMP_MSG_DEFINE, 9, "fnB") == 0);
    CHECK(pmp_executor_pending(ex) >= 1); /* the broadcast is not a pending task */
    for (uint64_t id = 5; id <= 6; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    s_collect(ex, 6, group, log);
    int seen[2] = {0, 0};
    for (int id = 1; id <= 6; id++) {
        const char *want = id <= 4 ? "log=D5:fnA" : "log=D5:fnA,D9:fnB";
        if (strcmp(log[id], want) != 0)
            fprintf(stderr, "task %d on group %d: %s, expected %s\n", id, group[id], log[id], want);
        CHECK(strcmp(log[id], want) == 0);
        CHECK(group[id] == 0 || group[id] == 1);
        seen[group[id]]++;
    }
    CHECK(seen[0] > 0 && seen[1] > 0); /* both groups were checked */

    CHECK(s_broadcast_text(ex, PMP_MSG_FORGET, 5, NULL) == 0);
    for (uint64_t id = 7; id <= 10; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    s_collect(ex, 4, group, log);
    seen[0] = seen[1] = 0;
    for (int id = 7; id <= 10; id++) {
        CHECK(strcmp(log[id], "log=D5:fnA,D9:fnB,F5") == 0);
        seen[group[id]]++;
    }
    CHECK(seen[0] > 0 && seen[1] > 0);
    s_destroy(&ex, 2000);
}

/* A group that connects late gets the INIT, then the DEFINEs still kept
 * (not the forgotten ones), before its first task. */
static void s_case_define_late(void)
{
    const char *const args[] = {
        "--fake-tag", "--fake-log", "--fake-late-ms", "1500", "--fake-delay-ms", "300", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 1); /* group 0 only: group 1 is late */
    pmp_buffer_t b = {.data = "setup", .size = 5};
    CHECK(pmp_executor_submit(ex, 100, PMP_MSG_INIT, 0, &b, 1, NULL) == 0);
    CHECK(s_broadcast_text(ex, PMP_MSG_DEFINE, 5, "fnA") == 0);
    CHECK(s_broadcast_text(ex, PMP_MSG_DEFINE, 6, "fnB") == 0);
    CHECK(s_broadcast_text(ex, PMP_MSG_FORGET, 5, NULL) == 0);
    s_wait_hellos(ex, 1); /* group 1 */
    CHECK(s_broadcast_text(ex, PMP_MSG_DEFINE, 7, "fnC") == 0);
    CHECK(s_submit_text(ex, 1, "x") == 0); /* depth 1: one task on each group */
    CHECK(s_submit_text(ex, 2, "x") == 0);
    int group[S_MAX_IDS] = {0};
    char log[S_MAX_IDS][256];
    memset(log, 0, sizeof log);
    s_collect(ex, 2, group, log);
    CHECK(group[1] != group[2]);
    for (int id = 1; id <= 2; id++) {
        const char *want =
            group[id] == 0 ? "log=I:setup,D5:fnA,D6:fnB,F5,D7:fnC" : "log=I:setup,D6:fnB,D7:fnC";
        if (strcmp(log[id], want) != 0)
            fprintf(stderr, "group %d: %s, expected %s\n", group[id], log[id], want);
        CHECK(strcmp(log[id], want) == 0);
    }
    s_destroy(&ex, 2000);
}

/* Every way to misuse pmp_executor_broadcast fails with EINVAL (or
 * ESHUTDOWN after close) and calls no free_fn; a FORGET still works after
 * close. */
static void s_case_broadcast_invalid(void)
{
    static char data[64];
    g_freed = 0;
    pmp_executor_t *ex = s_new_unlaunched(1, 1, 1);
    pmp_error_t err = {{0}};
    pmp_buffer_t zc = {
        .data = data, .size = sizeof data, .free_fn = s_count_free, .hint = &g_freed};
    pmp_buffer_t two[2] = {{.data = "", .size = 0}, {.data = "", .size = 0}};
    pmp_buffer_t bad = {.data = NULL, .size = 3};

    CHECK(pmp_executor_broadcast(ex, PMP_MSG_TASK, 5, &zc, 1, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "DEFINE") != NULL);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_INIT, 5, &zc, 1, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 0, &zc, 1, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "key must not be 0") != NULL);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_FORGET, 0, NULL, 0, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 5, NULL, 0, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 5, &bad, 1, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_FORGET, 5, NULL, 0, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "not defined") != NULL);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 5, &zc, 1, &err) == 0);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 5, &zc, 1, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "already defined") != NULL);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_FORGET, 5, two, 2, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_pending(ex) == 0); /* broadcasts are not tasks */
    CHECK(pmp_executor_cancel(ex, 5) == 0);
    CHECK(s_freed() == 0); /* the kept DEFINE holds its buffer */
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_FORGET, 5, two, 1, &err) == 0);
    for (int64_t t0 = s_now_ms(); s_freed() < 1 && s_now_ms() - t0 < 5000;)
        usleep(10000);
    CHECK(s_freed() == 1); /* forgotten: released exactly once */
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_FORGET, 5, NULL, 0, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 5, &zc, 1, &err) == 0); /* again */
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 6, &zc, 1, &err) == 0);
    /* INIT after a DEFINE but before any task is still fine */
    pmp_buffer_t b = {.data = "setup", .size = 5};
    CHECK(pmp_executor_submit(ex, 1, PMP_MSG_INIT, 0, &b, 1, &err) == 0);
    pmp_executor_close(ex);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 8, &zc, 1, &err) == -1 && errno == ESHUTDOWN);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_FORGET, 5, NULL, 0, &err) == 0);
    for (int64_t t0 = s_now_ms(); s_freed() < 2 && s_now_ms() - t0 < 5000;)
        usleep(10000);
    CHECK(s_freed() == 2);
    pmp_executor_destroy(&ex, 0);
    CHECK(s_freed() == 3); /* key 6 was kept until destroy; the failed ones never count */
}

/* Zero-copy DEFINE buffers that went to a group are released exactly once:
 * after FORGET, or by destroy while still kept. */
static void s_case_define_zerocopy(void)
{
    static char fn[2][200000];
    g_freed = 0;
    const char *const args[] = {"--fake-log", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 2);
    memset(fn, 'f', sizeof fn);
    pmp_buffer_t b[2] = {
        {.data = fn[0], .size = sizeof fn[0], .free_fn = s_count_free, .hint = &g_freed},
        {.data = fn[1], .size = sizeof fn[1], .free_fn = s_count_free, .hint = &g_freed},
    };
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 5, b, 2, NULL) == 0);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 6, b, 1, NULL) == 0);
    for (uint64_t id = 1; id <= 4; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    for (int i = 0; i < 4; i++) {
        pmp_completion_t *c = s_wait(ex, 20000);
        CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT);
        pmp_completion_destroy(&c);
    }
    usleep(200000);
    CHECK(s_freed() == 0); /* both still kept for late groups */
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_FORGET, 5, NULL, 0, NULL) == 0);
    for (int64_t t0 = s_now_ms(); s_freed() < 2 && s_now_ms() - t0 < 5000;)
        usleep(10000);
    usleep(100000);
    CHECK(s_freed() == 2);
    s_destroy(&ex, 2000);
    CHECK(s_freed() == 3);
}

static void s_peer_send(void *sock, int type, uint64_t id, const char *payload, int nframes)
{
    pmp_header_t hdr = {.type = (uint16_t)type, .task_id = id, .nframes = (uint32_t)nframes};
    unsigned char buf[PMP_HEADER_SIZE];
    pmp_header_encode(&hdr, buf);
    CHECK(zmq_send(sock, buf, sizeof buf, payload ? ZMQ_SNDMORE : 0) == sizeof buf);
    if (payload)
        CHECK(zmq_send(sock, payload, strlen(payload), 0) >= 0);
}

/* Foreign, malformed and unexpected messages over ZeroMQ (TCP) are dropped
 * without a completion; the executor keeps working for a well-behaved
 * peer. */
static void s_case_malformed(void)
{
    pmp_executor_config_t cfg = s_cfg(1, 1, 1, NULL);
    cfg.launch = 0;
    cfg.hostname = "127.0.0.1"; /* ZeroMQ; a local link's are in test_links.c */
    pmp_executor_t *ex = pmp_executor_new(&cfg, NULL);
    CHECK(ex);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    s_peer_auth(sock, ex);
    CHECK(zmq_connect(sock, pmp_executor_endpoint(ex)) == 0);
    CHECK(zmq_send(sock, "garbage", 7, 0) == 7);                    /* short header */
    CHECK(zmq_send(sock, "XXXXXXXXXXXXXXXXXXXXXXXX", 24, 0) == 24); /* foreign magic */
    s_peer_send(sock, PMP_MSG_RESULT, 1, "r", 1);                   /* no hello yet */
    s_peer_send(sock, PMP_MSG_TASK, 1, "t", 1);                     /* wrong direction */
    s_peer_send(sock, PMP_MSG_HELLO, 0, "group=zero", 1);           /* bad hello */
    s_peer_send(sock, PMP_MSG_HELLO, 0, "x", 3);                    /* frame count */
    CHECK(s_submit_text(ex, 1, "x") == 0);
    CHECK(pmp_executor_wait(ex, 500) == NULL && errno == EAGAIN);
    CHECK(pmp_executor_pending(ex) == 1);
    pmp_hello_t hello;
    memset(&hello, 0, sizeof hello);
    hello.ngroups = hello.group_size = hello.world_size = 1;
    hello.pid = getpid();
    strcpy(hello.host, "testhost");
    char text[2048];
    int len = pmp_hello_encode(&hello, text, sizeof text);
    CHECK(len > 0);
    text[len] = '\0';
    s_peer_send(sock, PMP_MSG_HELLO, 0, text, 1);
    s_wait_hellos(ex, 1);
    s_peer_send(sock, PMP_MSG_HELLO, 0, text, 1); /* a second hello: dropped */
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    CHECK(zmq_poll(&item, 1, 5000) == 1);
    zmq_msg_t m;
    zmq_msg_init(&m);
    CHECK(zmq_msg_recv(&m, sock, 0) == PMP_HEADER_SIZE);
    pmp_header_t hdr;
    CHECK(pmp_header_decode(zmq_msg_data(&m), zmq_msg_size(&m), &hdr, NULL) == 0);
    CHECK(hdr.type == PMP_MSG_TASK && hdr.task_id == 1 && hdr.nframes == 1);
    CHECK(zmq_msg_recv(&m, sock, 0) == 1 && !zmq_msg_more(&m));
    zmq_msg_close(&m);
    s_peer_send(sock, PMP_MSG_RESULT, 2, "wrong task", 1); /* not in flight: dropped */
    s_peer_send(sock, PMP_MSG_RESULT, 1, "done", 1);
    pmp_completion_t *c = s_wait(ex, 5000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_task_id(c) == 1);
    CHECK(s_frame_is(c, 0, "done"));
    pmp_completion_destroy(&c);
    s_peer_send(sock, PMP_MSG_RESULT, 1, "again", 1); /* completed already: dropped */
    pmp_executor_close(ex);
    CHECK(zmq_poll(&item, 1, 5000) == 1); /* SHUTDOWN */
    zmq_msg_init(&m);
    CHECK(zmq_msg_recv(&m, sock, 0) == PMP_HEADER_SIZE);
    CHECK(pmp_header_decode(zmq_msg_data(&m), zmq_msg_size(&m), &hdr, NULL) == 0);
    CHECK(hdr.type == PMP_MSG_SHUTDOWN && hdr.nframes == 1);
    CHECK(zmq_msg_recv(&m, sock, 0) == 0);
    zmq_msg_close(&m);
    CHECK(pmp_executor_wait(ex, 300) == NULL && errno == EAGAIN); /* waits for the goodbye */
    s_peer_send(sock, PMP_MSG_GOODBYE, 0, "", 1);
    c = s_wait(ex, 5000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_CLOSED);
    pmp_completion_destroy(&c);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    s_destroy(&ex, 0);
}

/* A peer socket connected to the executor: how = 0 no security, 1 the
 * executor's credentials, 2 PLAIN with a wrong password, 3 CURVE with a
 * server key of its own, 4 CURVE with the right server key but a foreign
 * client key. */
static void *s_peer_new(void *ctx, pmp_executor_t *ex, int how)
{
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    char key_pub[41], key_sec[41], srv_pub[41], srv_sec[41];
    CHECK(zmq_curve_keypair(key_pub, key_sec) == 0 && zmq_curve_keypair(srv_pub, srv_sec) == 0);
    if (how == 1) {
        s_peer_auth(sock, ex);
    } else if (how == 2) {
        zmq_setsockopt(sock, ZMQ_PLAIN_USERNAME, PMP_CREDENTIALS_USER,
                       strlen(PMP_CREDENTIALS_USER));
        zmq_setsockopt(sock, ZMQ_PLAIN_PASSWORD, key_pub, 40);
    } else if (how == 3 || how == 4) {
        pmp_credentials_t c;
        memset(&c, 0, sizeof c);
        if (how == 4)
            CHECK(pmp_credentials_read(s_cred_path(ex), &c, NULL) == 0);
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, how == 4 ? c.server_public : srv_pub, 40);
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, key_pub, 40);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, key_sec, 40);
    }
    CHECK(zmq_connect(sock, pmp_executor_endpoint(ex)) == 0);
    return sock;
}

/* Sends a HELLO of one group of one rank from host. */
static void s_peer_hello(void *sock, const char *host)
{
    char text[2048];
    s_hello_text(host, text, sizeof text);
    s_peer_send(sock, PMP_MSG_HELLO, 0, text, 1);
}

/* TCP + CURVE on loopback: the (fake) runtime authenticates with the keys
 * of the file and works; the file is gone after start-up; foreign keys are
 * refused. */
static void s_case_tcp(void)
{
    pmp_executor_config_t cfg = s_cfg(2, 1, 1, NULL);
    cfg.hostname = "127.0.0.1";
    pmp_error_t err = {{0}};
    pmp_executor_t *ex = pmp_executor_new(&cfg, &err);
    if (!ex)
        fprintf(stderr, "%s\n", err.text);
    CHECK(ex);
    CHECK(strncmp(pmp_executor_endpoint(ex), "tcp://127.0.0.1:", 16) == 0);
    CHECK(atoi(pmp_executor_endpoint(ex) + 16) > 0);
    s_wait_hellos(ex, 2);
    CHECK(!s_exists(s_cred_path(ex), 0, 5000));
    CHECK(s_submit_text(ex, 1, "over tcp") == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && s_frame_is(c, 0, "over tcp"));
    pmp_completion_destroy(&c);
    s_destroy(&ex, 0);

    /* foreign peers: no security, a server key of their own, the right
     * server key with a foreign client key; then the right keys (no launch,
     * so that the file stays until the hello) */
    cfg.launch = 0;
    cfg.ranks = 1;
    ex = pmp_executor_new(&cfg, &err);
    CHECK(ex);
    CHECK(s_submit_text(ex, 3, "secret task") == 0);
    void *ctx = zmq_ctx_new();
    void *bad[3] = {s_peer_new(ctx, ex, 0), s_peer_new(ctx, ex, 3), s_peer_new(ctx, ex, 4)};
    for (int i = 0; i < 3; i++)
        s_peer_hello(bad[i], "intruder");
    CHECK(pmp_executor_wait(ex, 1500) == NULL && errno == EAGAIN);
    for (int i = 0; i < 3; i++) {
        zmq_pollitem_t item = {.socket = bad[i], .events = ZMQ_POLLIN};
        CHECK(zmq_poll(&item, 1, 100) == 0);
        zmq_close(bad[i]);
    }
    void *good = s_peer_new(ctx, ex, 1);
    s_peer_hello(good, "runtime");
    s_wait_hellos(ex, 1);
    CHECK(!s_exists(s_cred_path(ex), 0, 5000));
    zmq_pollitem_t item = {.socket = good, .events = ZMQ_POLLIN};
    CHECK(zmq_poll(&item, 1, 5000) == 1);
    zmq_close(good);
    zmq_ctx_term(ctx);
    s_destroy(&ex, 0);
}

/* A wildcard or an address that is not this host's is refused clearly. */
static void s_case_hostname_invalid(void)
{
    const char *bad[] = {"*", "0.0.0.0", "::", "", "no-such-interface0", "203.0.113.77"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pmp_executor_config_t cfg = s_cfg(1, 1, 1, NULL);
        cfg.launch = 0;
        cfg.hostname = bad[i];
        pmp_error_t err = {{0}};
        int before = s_tmpdir_entries();
        errno = 0;
        CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL);
        CHECK(strstr(err.text, "hostname") != NULL);
        CHECK(strstr(err.text, bad[i]) != NULL);
        CHECK(i > 1 || strstr(err.text, "wildcard") != NULL);
        CHECK(s_tmpdir_entries() == before); /* nothing left behind */
    }
}

/* A group whose connection vanished (no goodbye, no job to watch) is found
 * out at the next send: its task in flight completes as BROKEN, the task
 * being sent goes back to the queue. */
static void s_case_unreachable(void)
{
    pmp_executor_config_t cfg = s_cfg(1, 1, 2, NULL);
    cfg.launch = 0;
    cfg.hostname = "127.0.0.1"; /* ZeroMQ; a local link's end: test_links.c */
    pmp_executor_t *ex = pmp_executor_new(&cfg, NULL);
    CHECK(ex);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    s_peer_auth(sock, ex);
    CHECK(zmq_connect(sock, pmp_executor_endpoint(ex)) == 0);
    pmp_hello_t hello;
    memset(&hello, 0, sizeof hello);
    hello.ngroups = hello.group_size = hello.world_size = 1;
    hello.pid = getpid();
    strcpy(hello.host, "testhost");
    char text[2048];
    int len = pmp_hello_encode(&hello, text, sizeof text);
    CHECK(len > 0);
    text[len] = '\0';
    s_peer_send(sock, PMP_MSG_HELLO, 0, text, 1);
    s_wait_hellos(ex, 1);
    CHECK(s_submit_text(ex, 1, "x") == 0);
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    CHECK(zmq_poll(&item, 1, 5000) == 1); /* task 1 arrived: in flight */
    zmq_close(sock);
    zmq_ctx_term(ctx);
    usleep(300000); /* the ROUTER notices the disconnection */
    CHECK(s_submit_text(ex, 2, "y") == 0);
    pmp_completion_t *c = s_wait(ex, 5000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_BROKEN && pmp_completion_task_id(c) == 1);
    CHECK(strstr(pmp_completion_text(c), "unreachable"));
    pmp_completion_destroy(&c);
    CHECK(pmp_executor_pending(ex) == 1); /* task 2 waits for another group */
    s_destroy(&ex, 0);
}

/* destroy while tasks run and more are queued: returns within the grace
 * period plus the SIGTERM delay and leaves no process. */
static void s_case_destroy_busy(void)
{
    const char *const args[] = {"--fake-delay-ms", "60000", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 2);
    for (uint64_t id = 1; id <= 5; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    usleep(100000);
    CHECK(pmp_executor_pending(ex) == 3);
    int64_t t0 = s_now_ms();
    s_destroy(&ex, 300);
    CHECK(s_now_ms() - t0 < 4000);
}

/* ---- restart_limit and the hard time limit (unit.executor.restart*) ---- */

static pmp_executor_t *s_new_cfg(pmp_executor_config_t *cfg)
{
    pmp_error_t err = {{0}};
    pmp_executor_t *ex = pmp_executor_new(cfg, &err);
    if (!ex)
        fprintf(stderr, "pmp_executor_new: %s\n", err.text);
    CHECK(ex);
    return ex;
}

/* Checks that the log frame (index i) of a RESULT equals want. */
static int s_log_is(pmp_completion_t *c, size_t i, const char *want)
{
    pmp_frame_t *f = pmp_completion_take_frame(c, i);
    if (!f)
        return 0;
    int ok =
        pmp_frame_size(f) == strlen(want) && memcmp(pmp_frame_data(f), want, strlen(want)) == 0;
    if (!ok)
        fprintf(stderr, "log frame: %.*s, expected %s\n", (int)pmp_frame_size(f),
                (const char *)pmp_frame_data(f), want);
    pmp_frame_destroy(&f);
    return ok;
}

/* The job dies with restart_limit = 1: RESTART (why, "restart 1 of 1"),
 * the running task LOST, the queued one runs on the new job, which got the
 * INIT and the kept DEFINE again; the second death is final (EXIT, BROKEN,
 * EPIPE). */
static void s_case_restart(void)
{
    const char *const args[] = {"--fake-crash-at-task", "2", "--fake-log", NULL};
    pmp_executor_config_t cfg = s_cfg(1, 1, 1, args);
    cfg.restart_limit = 1;
    pmp_executor_t *ex = s_new_cfg(&cfg);
    pid_t first_pid = pmp_executor_pid(ex);
    s_wait_hellos(ex, 1);
    pmp_error_t err = {{0}};
    pmp_buffer_t init = {.data = "init", .size = 4}, fn = {.data = "fn", .size = 2};
    CHECK(pmp_executor_submit(ex, 100, PMP_MSG_INIT, 0, &init, 1, &err) == 0);
    CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 7, &fn, 1, &err) == 0);
    for (uint64_t id = 1; id <= 3; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_task_id(c) == 1);
    CHECK(s_log_is(c, 1, "log=I:init,D7:fn"));
    pmp_completion_destroy(&c);

    int64_t t0 = s_now_ms();
    c = s_wait(ex, 20000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_RESTART);
    fprintf(stderr, "restart text (%lld ms): %s\n", (long long)(s_now_ms() - t0),
            pmp_completion_text(c));
    CHECK(strstr(pmp_completion_text(c), "fake: crashing"));
    CHECK(strstr(pmp_completion_text(c), "restart 1 of 1"));
    CHECK(pmp_completion_status(c) != 0 && pmp_completion_status(c) != -1);
    pmp_completion_destroy(&c);
    c = s_wait(ex, 1000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_LOST && pmp_completion_task_id(c) == 2);
    CHECK(strstr(pmp_completion_text(c), "this call was running or held by a worker when"));
    CHECK(strstr(pmp_completion_text(c), "restart 1 of 1"));
    pmp_completion_destroy(&c);
    s_wait_hellos(ex, 1);
    c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_task_id(c) == 3);
    CHECK(s_log_is(c, 1, "log=I:init,D7:fn")); /* replayed to the new job */
    pmp_completion_destroy(&c);
    CHECK(pmp_executor_restarts(ex) == 1);
    CHECK(pmp_executor_pid(ex) != first_pid && pmp_executor_pid(ex) > 0);

    /* the second death (task 2 of the new job) is final */
    CHECK(s_submit_text(ex, 4, "x") == 0);
    c = s_wait(ex, 20000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_EXIT);
    CHECK(strstr(pmp_completion_text(c), "restarted") == NULL);
    pmp_completion_destroy(&c);
    c = s_wait(ex, 1000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_BROKEN && pmp_completion_task_id(c) == 4);
    pmp_completion_destroy(&c);
    pmp_buffer_t b = {.data = "y", .size = 1};
    CHECK(pmp_executor_submit(ex, 9, PMP_MSG_TASK, 0, &b, 1, &err) == -1 && errno == EPIPE);
    s_destroy(&ex, 2000);
}

/* A death while close() drains the queue still restarts (queued tasks must
 * run); destroy() right after a death does not hang and leaves nothing. */
static void s_case_restart_close(void)
{
    const char *const args[] = {"--fake-crash-at-task", "1", NULL};
    pmp_executor_config_t cfg = s_cfg(1, 1, 1, args);
    cfg.restart_limit = 5;
    pmp_executor_t *ex = s_new_cfg(&cfg);
    s_wait_hellos(ex, 1);
    for (uint64_t id = 1; id <= 3; id++)
        CHECK(s_submit_text(ex, id, "x") == 0);
    pmp_executor_close(ex);
    /* every task crashes its job: the first two deaths restart it (a task
     * is still queued), the last one does not (nothing left to run): 2
     * RESTART, 2 LOST, then EXIT, 1 BROKEN and CLOSED */
    int lost = 0, restarts = 0, closed = 0, broken = 0;
    int64_t t0 = s_now_ms();
    while (!closed) {
        pmp_completion_t *c = s_wait(ex, 20000);
        int kind = pmp_completion_kind(c);
        lost += kind == PMP_DONE_LOST;
        restarts += kind == PMP_EVENT_RESTART;
        closed = kind == PMP_EVENT_CLOSED;
        broken += kind == PMP_DONE_BROKEN;
        CHECK(kind != PMP_DONE_RESULT);
        pmp_completion_destroy(&c);
    }
    fprintf(stderr, "restart_close: %d lost, %d restarts in %lld ms\n", lost, restarts,
            (long long)(s_now_ms() - t0));
    CHECK(lost == 2 && restarts == 2 && broken == 1);
    s_destroy(&ex, 2000);

    /* destroy while a restart is under way */
    ex = s_new_cfg(&cfg);
    s_wait_hellos(ex, 1);
    CHECK(s_submit_text(ex, 1, "x") == 0);
    CHECK(s_submit_text(ex, 2, "x") == 0);
    t0 = s_now_ms();
    s_destroy(&ex, 1000);
    CHECK(s_now_ms() - t0 < 10000);
}

/* The hard time limit: a task that runs longer than run_time_max + grace
 * completes as TIMEOUT, the job is killed and relaunched (restart_limit 0:
 * free of charge), and a task the group held behind it is not lost but
 * sent again to the new job. */
static void s_case_time_limit(void)
{
    const char *const args[] = {"--fake-delay-ms", "30000", NULL};
    pmp_executor_config_t cfg = s_cfg(1, 1, 2, args);
    cfg.run_time_max_ms = 300;
    cfg.run_time_grace_ms = 200;
    pmp_executor_t *ex = s_new_cfg(&cfg);
    s_wait_hellos(ex, 1);
    CHECK(s_submit_text(ex, 1, "x") == 0);
    CHECK(s_submit_text(ex, 2, "x") == 0); /* pipelined behind 1 */
    int64_t t0 = s_now_ms();
    pmp_completion_t *c = s_wait(ex, 10000);
    int64_t took = s_now_ms() - t0;
    fprintf(stderr, "time_limit: TIMEOUT after %lld ms: %s\n", (long long)took,
            pmp_completion_text(c));
    CHECK(pmp_completion_kind(c) == PMP_DONE_TIMEOUT && pmp_completion_task_id(c) == 1);
    CHECK(strstr(pmp_completion_text(c), "run_time_max (0.3 s)"));
    CHECK(took >= 450 && took < 3000);
    pmp_completion_destroy(&c);
    c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_RESTART);
    CHECK(strstr(pmp_completion_text(c), "does not count against restart_limit"));
    pmp_completion_destroy(&c);
    s_wait_hellos(ex, 1);
    /* task 2 was re-sent: it times out on the new job in turn */
    c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_TIMEOUT && pmp_completion_task_id(c) == 2);
    pmp_completion_destroy(&c);
    c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_RESTART);
    pmp_completion_destroy(&c);
    CHECK(pmp_executor_restarts(ex) == 2);
    s_destroy(&ex, 500);
}

/* A chunk of n calls gets n times the limit; a task within it is untouched. */
static void s_case_time_limit_chunk(void)
{
    const char *const args[] = {"--fake-delay-ms", "700", NULL};
    pmp_executor_config_t cfg = s_cfg(1, 1, 1, args);
    cfg.run_time_max_ms = 300;
    cfg.run_time_grace_ms = 100;
    pmp_executor_t *ex = s_new_cfg(&cfg);
    s_wait_hellos(ex, 1);
    pmp_error_t err = {{0}};
    pmp_buffer_t b = {.data = "x", .size = 1};
    CHECK(pmp_executor_submit_calls(ex, 1, PMP_MSG_TASK, 0, &b, 1, 4, &err) == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_task_id(c) == 1);
    pmp_completion_destroy(&c);
    CHECK(pmp_executor_restarts(ex) == 0);
    s_destroy(&ex, 2000);
}

static void s_case_restart_invalid(void)
{
    pmp_error_t err = {{0}};
    pmp_executor_config_t cfg = s_cfg(1, 1, 1, NULL);
    cfg.restart_limit = -1;
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL);
    CHECK(strstr(err.text, "restart_limit"));
    cfg = s_cfg(1, 1, 1, NULL);
    cfg.launch = 0;
    cfg.restart_limit = 1;
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL);
    CHECK(strstr(err.text, "queue adapter"));
    cfg = s_cfg(1, 1, 1, NULL);
    cfg.run_time_max_ms = -5;
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL);
    CHECK(strstr(err.text, "run_time_max"));
    cfg = s_cfg(1, 1, 1, NULL);
    cfg.run_time_grace_ms = -5;
    CHECK(pmp_executor_new(&cfg, &err) == NULL && errno == EINVAL);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* as in a Python process */
    static const s_case_t cases[] = {
        {"ready", s_case_ready},
        {"groups2", s_case_groups2},
        {"fifo", s_case_fifo},
        {"spread", s_case_spread},
        {"zerocopy", s_case_zerocopy},
        {"zerocopy_destroy", s_case_zerocopy_destroy},
        {"zerocopy_fail", s_case_zerocopy_fail},
        {"large", s_case_large},
        {"cancel", s_case_cancel},
        {"cancel_all", s_case_cancel_all},
        {"pending", s_case_pending},
        {"close", s_case_close},
        {"crash", s_case_crash},
        {"crash_nopidfd", s_case_crash_nopidfd},
        {"fail_start", s_case_fail_start},
        {"missing", s_case_missing},
        {"invalid", s_case_invalid},
        {"launch0", s_case_launch0},
        {"tcp", s_case_tcp},
        {"hostname_invalid", s_case_hostname_invalid},
        {"error", s_case_error},
        {"init", s_case_init},
        {"destroy_busy", s_case_destroy_busy},
        {"malformed", s_case_malformed},
        {"unreachable", s_case_unreachable},
        {"define", s_case_define},
        {"define_late", s_case_define_late},
        {"broadcast_invalid", s_case_broadcast_invalid},
        {"define_zerocopy", s_case_define_zerocopy},
        {"restart", s_case_restart},
        {"restart_close", s_case_restart_close},
        {"restart_invalid", s_case_restart_invalid},
        {"time_limit", s_case_time_limit},
        {"time_limit_chunk", s_case_time_limit_chunk},
    };
    return s_harness_main(argc, argv, cases, sizeof cases / sizeof cases[0], "unit.executor");
}
