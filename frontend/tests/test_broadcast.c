/*
 * test_broadcast.c - the executor's broadcasts (unit.broadcast.<case>):
 * DEFINE and FORGET reach every group in order with the tasks, a group
 * that connects late gets the kept DEFINEs first, bad broadcasts are
 * refused at once, and a broadcast's zero-copy buffer is released once,
 * when the last group is done with it.  Usage and exit status as
 * test_executor.c.
 */
#include "executor_harness.h"

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
    *s_freed_counter() = 0;
    pmp_executor_t *ex = s_new_unlaunched(1, 1, 1);
    pmp_error_t err = {{0}};
    pmp_buffer_t zc = {
        .data = data, .size = sizeof data, .free_fn = s_count_free, .hint = s_freed_counter()};
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
    *s_freed_counter() = 0;
    const char *const args[] = {"--fake-log", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 2);
    memset(fn, 'f', sizeof fn);
    pmp_buffer_t b[2] = {
        {.data = fn[0], .size = sizeof fn[0], .free_fn = s_count_free, .hint = s_freed_counter()},
        {.data = fn[1], .size = sizeof fn[1], .free_fn = s_count_free, .hint = s_freed_counter()},
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

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* as in a Python process */
    static const s_case_t cases[] = {
        {"define", s_case_define},
        {"define_late", s_case_define_late},
        {"broadcast_invalid", s_case_broadcast_invalid},
        {"define_zerocopy", s_case_define_zerocopy},
    };
    return s_harness_main(argc, argv, cases, sizeof cases / sizeof cases[0], "unit.broadcast");
}
