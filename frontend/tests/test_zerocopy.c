/*
 * test_zerocopy.c - the executor's zero-copy buffers and large frames
 * (unit.zerocopy.<case>): free_fn called exactly once per buffer, after
 * the round trip, at destroy, never for a submit that failed; a frame far
 * larger than any socket buffer.  Usage and exit status as test_executor.c.
 */
#include "executor_harness.h"

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
             .hint = s_freed_counter()},
            {.data = "copied", .size = 6},
            {.data = payload[2 * i + 1],
             .size = sizeof payload[0],
             .free_fn = s_count_free,
             .hint = s_freed_counter()},
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

/* Submits tasks 1..n, task i carrying data[i - 1] as a counted zero-copy
 * buffer. */
static void s_submit_counted(pmp_executor_t *ex, char (*data)[64], int n)
{
    for (int i = 0; i < n; i++) {
        pmp_buffer_t b = {.data = data[i],
                          .size = sizeof data[i],
                          .free_fn = s_count_free,
                          .hint = s_freed_counter()};
        CHECK(pmp_executor_submit(ex, (uint64_t)i + 1, PMP_MSG_TASK, 0, &b, 1, NULL) == 0);
    }
}

/* Queued zero-copy tasks are released exactly once by destroy and cancel. */
static void s_case_zerocopy_destroy(void)
{
    static char data[4][64];
    pmp_executor_t *ex = s_new_unlaunched(1, 1, 1);
    s_submit_counted(ex, data, 4);
    CHECK(pmp_executor_pending(ex) == 4);
    CHECK(s_freed() == 0);
    CHECK(pmp_executor_cancel(ex, 2) == 1);
    CHECK(s_freed() == 1);
    s_destroy(&ex, 0);
    CHECK(s_freed() == 4);

    /* with a running job that is still starting up (tasks queued) */
    *s_freed_counter() = 0;
    const char *const args[] = {"--fake-delay-ms", "2000", NULL};
    ex = s_new(1, 1, 1, args);
    s_submit_counted(ex, data, 4);
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
        {.data = data, .size = sizeof data, .free_fn = s_count_free, .hint = s_freed_counter()},
        {.data = data, .size = sizeof data, .free_fn = s_count_free, .hint = s_freed_counter()}};
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
    pmp_buffer_t b[2] = {
        {.data = "p", .size = 1},
        {.data = big, .size = size, .free_fn = s_count_free, .hint = s_freed_counter()}};
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

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* as in a Python process */
    static const s_case_t cases[] = {
        {"zerocopy", s_case_zerocopy},
        {"zerocopy_destroy", s_case_zerocopy_destroy},
        {"zerocopy_fail", s_case_zerocopy_fail},
        {"large", s_case_large},
    };
    return s_harness_main(argc, argv, cases, sizeof cases / sizeof cases[0], "unit.zerocopy");
}
