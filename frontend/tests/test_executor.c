/*
 * test_executor.c - unit tests of the executor's API and its job
 * (unit.executor.<case>).
 *
 * Usage: test_executor <case> <fake_runtime> <mpiexec> <flavour>.  Each case
 * starts the fake runtime (tests/fake_runtime.c: protocol only, no MPI, no
 * Python) through a real mpiexec and checks one behaviour of
 * pmp_executor.h: the ready handshake, scheduling order and spread,
 * batches of submits and completions,
 * cancel, close, the job's crash or failed start, missing programs,
 * invalid configurations, the command of a launch-less executor, a task's
 * error, INIT, destroy while busy, and that nothing (directory, process)
 * is left behind.  Every case runs with TMPDIR set to a private directory
 * so that leftovers can be counted.  The other topics have files of their
 * own beside it: test_zerocopy.c, test_broadcast.c, test_peers.c,
 * test_restart.c, test_links.c, test_process.c.  Exits 0 on success;
 * prints the failed check and exits 1 otherwise.
 */
#include "executor_harness.h"

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

/* submit_many queues a batch in order, all or none; wait_many takes
 * completions in order, several at once, CLOSED last. */
static void s_case_many(void)
{
    pmp_executor_t *ex = s_new(1, 1, 2, NULL);
    enum { N = 200, K = 50 };
    static char text[N + 1][16];
    pmp_buffer_t bufs[N + 1];
    pmp_submission_t subs[N + 1];
    for (int i = 1; i <= N; i++) {
        snprintf(text[i], sizeof text[i], "task %d", i);
        bufs[i] = (pmp_buffer_t){.data = text[i], .size = strlen(text[i])};
        subs[i] = (pmp_submission_t){.task_id = (uint64_t)i, .bufs = &bufs[i], .nbufs = 1};
    }
    pmp_error_t err = {{0}};
    CHECK(pmp_executor_submit_many(ex, &subs[1], 0, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "no task"));
    CHECK(pmp_executor_submit_many(ex, NULL, 3, &err) == -1 && errno == EINVAL);
    /* a batch that cannot be queued whole is not queued at all, and the
     * caller keeps its zero-copy buffers */
    pmp_buffer_t kept = {
        .data = "kept", .size = 4, .free_fn = s_count_free, .hint = s_freed_counter()};
    pmp_submission_t bad[3] = {{.task_id = 900, .bufs = &kept, .nbufs = 1},
                               {.task_id = 901, .bufs = &bufs[1], .nbufs = 1},
                               {.task_id = 900, .bufs = &bufs[2], .nbufs = 1}};
    CHECK(pmp_executor_submit_many(ex, bad, 3, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "900") && strstr(err.text, "already in use"));
    bad[2].task_id = 0;
    CHECK(pmp_executor_submit_many(ex, bad, 3, &err) == -1 && errno == EINVAL);
    bad[2] = (pmp_submission_t){.task_id = 902, .flags = 0x80000000u, .bufs = &bufs[2], .nbufs = 1};
    CHECK(pmp_executor_submit_many(ex, bad, 3, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "unknown flags"));
    bad[2] = (pmp_submission_t){.task_id = 902, .bufs = &bufs[2], .nbufs = 0};
    CHECK(pmp_executor_submit_many(ex, bad, 3, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_pending(ex) == 0 && s_freed() == 0);
    /* half the tasks before the hello, half after, K at a time */
    for (int i = 1; i <= N / 2; i += K)
        CHECK(pmp_executor_submit_many(ex, &subs[i], K, &err) == 0);
    CHECK(pmp_executor_pending(ex) == N / 2);
    /* an id of the batch already queued: nothing of the batch is */
    subs[N / 2] = (pmp_submission_t){.task_id = 7, .bufs = &bufs[N / 2], .nbufs = 1};
    CHECK(pmp_executor_submit_many(ex, &subs[N / 2], 2, &err) == -1 && errno == EINVAL);
    subs[N / 2] = (pmp_submission_t){.task_id = N / 2, .bufs = &bufs[N / 2], .nbufs = 1};
    s_wait_hellos(ex, 1);
    for (int i = N / 2 + 1; i <= N; i += K)
        CHECK(pmp_executor_submit_many(ex, &subs[i], K, &err) == 0);
    /* the one task with a zero-copy buffer, at the end: released once */
    pmp_submission_t last = {.task_id = N + 1, .bufs = &kept, .nbufs = 1};
    CHECK(pmp_executor_submit_many(ex, &last, 1, &err) == 0);
    pmp_completion_t *got[7];
    CHECK(pmp_executor_wait_many(ex, NULL, 7, 0) == 0 && errno == EINVAL);
    CHECK(pmp_executor_wait_many(ex, got, 0, 0) == 0 && errno == EINVAL);
    uint64_t next = 1;
    while (next <= N + 1) {
        size_t n = pmp_executor_wait_many(ex, got, 7, 10000);
        CHECK(n >= 1 && n <= 7);
        for (size_t i = 0; i < n; i++, next++) { /* one group: in order */
            CHECK(pmp_completion_kind(got[i]) == PMP_DONE_RESULT);
            CHECK(pmp_completion_task_id(got[i]) == next);
            CHECK(s_frame_is(got[i], 0, next <= N ? text[next] : "kept"));
            pmp_completion_destroy(&got[i]);
        }
    }
    CHECK(s_freed() == 1);
    CHECK(pmp_executor_wait_many(ex, got, 7, 200) == 0 && errno == EAGAIN);
    /* completions queued behind the first come in one call */
    for (int i = 1; i <= 20; i += 10)
        CHECK(pmp_executor_submit_many(ex, &subs[i], 10, &err) == 0);
    for (int i = 0; i < 100 && pmp_executor_pending(ex) > 0; i++)
        usleep(100000);
    usleep(500000); /* the last two of 20 quick tasks are done by now */
    size_t n = pmp_executor_wait_many(ex, got, 7, 10000);
    CHECK(n >= 2 && n <= 7);
    for (size_t i = 0; i < n; i++)
        pmp_completion_destroy(&got[i]);
    /* CLOSED is the last, and nothing follows it */
    pmp_executor_close(ex);
    int closed = 0, results = (int)n;
    while (!closed) {
        n = pmp_executor_wait_many(ex, got, 7, 20000);
        CHECK(n >= 1);
        for (size_t i = 0; i < n; i++) {
            CHECK(!closed);
            if (pmp_completion_kind(got[i]) == PMP_EVENT_CLOSED)
                closed = 1;
            else if (pmp_completion_kind(got[i]) == PMP_DONE_RESULT)
                results++;
            pmp_completion_destroy(&got[i]);
        }
    }
    CHECK(results == 20);
    CHECK(pmp_executor_wait_many(ex, got, 7, 1000) == 0 && errno == ESHUTDOWN);
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

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* as in a Python process */
    static const s_case_t cases[] = {
        {"ready", s_case_ready},
        {"groups2", s_case_groups2},
        {"fifo", s_case_fifo},
        {"many", s_case_many},
        {"spread", s_case_spread},
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
        {"error", s_case_error},
        {"init", s_case_init},
        {"destroy_busy", s_case_destroy_busy},
    };
    return s_harness_main(argc, argv, cases, sizeof cases / sizeof cases[0], "unit.executor");
}
