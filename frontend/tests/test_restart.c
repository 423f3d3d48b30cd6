/*
 * test_restart.c - restart_limit and the hard time limit
 * (unit.restart.<case>): a job that dies is relaunched and says why, the
 * tasks it held behind the running one run on the new job, close() during
 * a restart, a call or a chunk that overruns its time, bad settings.
 * Usage and exit status as test_executor.c.
 */
#include "executor_harness.h"

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
        {"restart", s_case_restart},
        {"restart_close", s_case_restart_close},
        {"time_limit", s_case_time_limit},
        {"time_limit_chunk", s_case_time_limit_chunk},
        {"restart_invalid", s_case_restart_invalid},
    };
    return s_harness_main(argc, argv, cases, sizeof cases / sizeof cases[0], "unit.restart");
}
