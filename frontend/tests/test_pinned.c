/*
 * test_pinned.c - tasks pinned to one group (pmp_executor_submit_to,
 * pmp_executor_pin.c), run against the fake runtime under a real mpiexec
 * (unit.pinned.<case>): each goes to its group and no other, first in
 * first out per group, over local links and over ZeroMQ (TCP); a task for
 * a group that has not said hello waits for it while the others work;
 * several tasks for several groups are queued all or none, sharing one
 * zero-copy buffer released once; cancel, cancel_all, pending and close
 * count pinned tasks; the job's
 * exit fails them as BROKEN, a restart as LOST.  Usage and exit status as
 * test_executor.c.
 */
#include "executor_harness.h"

/* Submits text pinned to group; returns what pmp_executor_submit_to did. */
static int s_submit_to(pmp_executor_t *ex, int group, uint64_t id, const char *text,
                       pmp_error_t *err)
{
    pmp_buffer_t b = {.data = text, .size = strlen(text)};
    return pmp_executor_submit_to(ex, &group, &id, 1, 0, &b, 1, err);
}

static void s_pin(pmp_executor_t *ex, int group, uint64_t id)
{
    pmp_error_t err = {{0}};
    if (s_submit_to(ex, group, id, "x", &err) < 0)
        fprintf(stderr, "submit_to: %s\n", err.text);
    CHECK(err.text[0] == '\0');
}

/* The group a --fake-tag result says it ran on. */
static int s_result_group(pmp_completion_t *c)
{
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_nframes(c) == 2);
    pmp_frame_t *f = pmp_completion_take_frame(c, 1);
    CHECK(f && pmp_frame_size(f) > 6 && memcmp(pmp_frame_data(f), "group=", 6) == 0);
    int g = atoi((const char *)pmp_frame_data(f) + 6);
    pmp_frame_destroy(&f);
    return g;
}

/* Three groups of one rank, every one said hello: tasks pinned to group 2
 * (two of them), 0 and 1 each run there, group 2's in order, while an
 * unpinned one goes wherever there is room; a group out of range is
 * refused.  tcp: the same over ZeroMQ. */
static void s_run_each_to_its_group(int tcp)
{
    const char *const args[] = {"--fake-tag", "--fake-delay-ms", "50", NULL};
    pmp_executor_config_t cfg = s_cfg(3, 1, 1, args);
    if (tcp)
        cfg.hostname = "127.0.0.1";
    pmp_error_t err = {{0}};
    pmp_executor_t *ex = pmp_executor_new(&cfg, &err);
    CHECK(ex);
    s_wait_hellos(ex, 3);
    CHECK(s_submit_to(ex, 3, 9, "x", &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "group 3 does not exist (the job has groups 0 to 2)"));
    CHECK(s_submit_to(ex, -1, 9, "x", &err) == -1 && errno == EINVAL);
    s_pin(ex, 2, 1);
    s_pin(ex, 2, 2);
    s_pin(ex, 0, 3);
    s_pin(ex, 1, 4);
    CHECK(s_submit_text(ex, 5, "free") == 0);
    CHECK(s_submit_to(ex, 1, 4, "x", &err) == -1 && errno == EINVAL); /* id in use */
    int seen = 0, last_on_2 = 0;
    for (int i = 0; i < 5; i++) {
        pmp_completion_t *c = s_wait(ex, 20000);
        uint64_t id = pmp_completion_task_id(c);
        int g = s_result_group(c);
        static const int want[] = {0, 2, 2, 0, 1};
        if (id <= 4)
            CHECK(g == want[id]);
        if (g == 2 && id <= 2) {
            CHECK((int)id > last_on_2); /* first in, first out on group 2 */
            last_on_2 = (int)id;
        }
        seen |= 1 << id;
        pmp_completion_destroy(&c);
    }
    CHECK(seen == 0x3e);
    s_destroy(&ex, 1000);
}

static void s_case_groups(void)
{
    s_run_each_to_its_group(0);
}

static void s_case_tcp(void)
{
    s_run_each_to_its_group(1);
}

/* Three tasks for groups 2, 0 and 1 in one submit share one zero-copy
 * buffer: each group gets it, and it is released once, after the last.  A
 * submit whose ids clash (with each other or with a task in flight) or
 * whose group is out of range queues none of its tasks and releases
 * nothing.  The tasks take 500 ms, so that those of the first submit are
 * surely still in flight when the clashing one comes. */
static void s_case_many(void)
{
    const char *const args[] = {"--fake-tag", "--fake-delay-ms", "500", NULL};
    pmp_executor_t *ex = s_new(3, 1, 1, args);
    s_wait_hellos(ex, 3);
    static const char text[] = "shared";
    pmp_buffer_t b = {.data = text, .size = 6, .free_fn = s_count_free, .hint = s_freed_counter()};
    pmp_error_t err = {{0}};
    int groups[] = {2, 0, 1}, bad_groups[] = {0, 5};
    uint64_t ids[] = {1, 2, 3}, twice[] = {7, 7}, clash[] = {8, 1};
    CHECK(pmp_executor_submit_to(ex, groups, twice, 2, 0, &b, 1, &err) == -1 && errno == EINVAL);
    CHECK(strstr(err.text, "task id 7 is already in use"));
    CHECK(pmp_executor_submit_to(ex, bad_groups, ids, 2, 0, &b, 1, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_submit_to(ex, groups, ids, 0, 0, &b, 1, &err) == -1 && errno == EINVAL);
    CHECK(pmp_executor_pending(ex) == 0 && s_freed() == 0);
    CHECK(pmp_executor_submit_to(ex, groups, ids, 3, 0, &b, 1, &err) == 0);
    CHECK(pmp_executor_submit_to(ex, groups, clash, 2, 0, &b, 1, &err) == -1 && errno == EINVAL);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        pmp_completion_t *c = s_wait(ex, 20000);
        uint64_t id = pmp_completion_task_id(c);
        CHECK(s_frame_is(c, 0, "shared"));
        CHECK(s_result_group(c) == groups[id - 1]);
        seen |= 1 << id;
        pmp_completion_destroy(&c);
    }
    CHECK(seen == 0xe);
    CHECK(s_freed() == 1); /* once, for the three */
    s_destroy(&ex, 1000);
}

/* Group 1 says hello 1.5 s late: a task pinned to it waits (counted by
 * pending) although group 0 is idle and runs an unpinned task meanwhile;
 * once group 1 is there the task goes to it. */
static void s_case_late(void)
{
    const char *const args[] = {"--fake-tag", "--fake-late-ms", "1500", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 1);
    s_pin(ex, 1, 1);
    CHECK(s_submit_text(ex, 2, "free") == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_task_id(c) == 2 && s_result_group(c) == 0);
    pmp_completion_destroy(&c);
    CHECK(pmp_executor_pending(ex) == 1);
    c = s_wait(ex, 20000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_HELLO);
    pmp_completion_destroy(&c);
    c = s_wait(ex, 10000);
    CHECK(pmp_completion_task_id(c) == 1 && s_result_group(c) == 1);
    pmp_completion_destroy(&c);
    CHECK(pmp_executor_pending(ex) == 0);
    s_destroy(&ex, 1000);
}

/* Pinned tasks not sent yet are cancelled like any other, one by one or
 * all at once with the unpinned ones; close() then ends the executor. */
static void s_case_cancel(void)
{
    const char *const args[] = {"--fake-late-ms", "8000", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 1);
    for (uint64_t id = 1; id <= 3; id++)
        s_pin(ex, 1, id);
    CHECK(pmp_executor_pending(ex) == 3);
    CHECK(pmp_executor_cancel(ex, 2) == 1);
    CHECK(pmp_executor_cancel(ex, 2) == 0);
    CHECK(pmp_executor_pending(ex) == 2);
    uint64_t *ids = NULL;
    size_t n = 0;
    CHECK(pmp_executor_cancel_all(ex, &ids, &n) == 0);
    CHECK(n == 2 && ids[0] == 1 && ids[1] == 3);
    free(ids);
    CHECK(pmp_executor_pending(ex) == 0);
    CHECK(pmp_executor_wait(ex, 300) == NULL && errno == EAGAIN); /* no completion */
    s_destroy(&ex, 0);
}

/* close() waits for the pinned tasks too: they run, then the job ends
 * (EXIT) and CLOSED comes last. */
static void s_case_close(void)
{
    const char *const args[] = {"--fake-tag", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_pin(ex, 1, 1); /* before any hello */
    s_pin(ex, 1, 2);
    CHECK(pmp_executor_close(ex) == 0);
    int results = 0, closed = 0;
    while (!closed) {
        pmp_completion_t *c = s_wait(ex, 20000);
        int kind = pmp_completion_kind(c);
        if (kind == PMP_DONE_RESULT) {
            CHECK(s_result_group(c) == 1 && pmp_completion_task_id(c) == (uint64_t)++results);
        } else {
            CHECK(kind == PMP_EVENT_HELLO || kind == PMP_EVENT_EXIT || kind == PMP_EVENT_CLOSED);
            closed = kind == PMP_EVENT_CLOSED;
        }
        pmp_completion_destroy(&c);
    }
    CHECK(results == 2);
    s_destroy(&ex, 0);
}

/* Waits for the completion of id among others (events, other tasks)
 * within timeout_ms; returns its kind. */
static int s_kind_of(pmp_executor_t *ex, uint64_t id, int *events, int timeout_ms)
{
    for (;;) {
        pmp_completion_t *c = s_wait(ex, timeout_ms);
        int kind = pmp_completion_kind(c);
        uint64_t got = pmp_completion_task_id(c);
        pmp_completion_destroy(&c);
        if (got == id)
            return kind;
        if (got == 0)
            *events |= 1 << kind;
    }
}

/* The job dies while a task pinned to a late group waits: it completes
 * as BROKEN with the one that was running. */
static void s_case_exit(void)
{
    const char *const args[] = {"--fake-crash-at-task", "1", "--fake-late-ms", "8000",
                                "--fake-ranks",         NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 1);
    s_pin(ex, 1, 2);
    s_pin(ex, 0, 1); /* crashes group 0, and the job */
    int events = 0;
    CHECK(s_kind_of(ex, 1, &events, 20000) == PMP_DONE_BROKEN);
    CHECK(s_kind_of(ex, 2, &events, 5000) == PMP_DONE_BROKEN);
    CHECK(events & (1 << PMP_EVENT_EXIT));
    CHECK(pmp_executor_pending(ex) == 0);
    s_destroy(&ex, 0);
}

/* With restart_limit: a pinned task still queued when the job died was
 * meant for a group of that job, so it is LOST like the running one,
 * while an unpinned task queued behind stays for the new job. */
static void s_case_restart(void)
{
    const char *const args[] = {"--fake-crash-at-task", "1", "--fake-late-ms", "8000",
                                "--fake-ranks",         NULL};
    pmp_executor_config_t cfg = s_cfg(2, 1, 1, args);
    cfg.restart_limit = 1;
    pmp_error_t err = {{0}};
    pmp_executor_t *ex = pmp_executor_new(&cfg, &err);
    CHECK(ex);
    s_wait_hellos(ex, 1);
    s_pin(ex, 1, 2);
    s_pin(ex, 0, 1);
    int events = 0;
    CHECK(s_kind_of(ex, 1, &events, 20000) == PMP_DONE_LOST);
    CHECK(s_kind_of(ex, 2, &events, 5000) == PMP_DONE_LOST);
    CHECK(events & (1 << PMP_EVENT_RESTART));
    CHECK(pmp_executor_restarts(ex) == 1);
    s_destroy(&ex, 0);
}

int main(int argc, char **argv)
{
    static const s_case_t cases[] = {
        {"groups", s_case_groups}, {"tcp", s_case_tcp},         {"many", s_case_many},
        {"late", s_case_late},     {"cancel", s_case_cancel},   {"close", s_case_close},
        {"exit", s_case_exit},     {"restart", s_case_restart},
    };
    return s_harness_main(argc, argv, cases, sizeof cases / sizeof cases[0], "unit.pinned");
}
