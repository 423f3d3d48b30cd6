/*
 * executor_harness.h - what the executor's unit tests share (test_executor.c,
 * test_zerocopy.c, test_broadcast.c, test_peers.c, test_restart.c,
 * test_links.c, test_process.c): the fake runtime's command line, a private
 * TMPDIR whose leftovers are counted, a counter of released zero-copy
 * buffers, and small helpers that fail the test with the failed check.  Header-only (every helper
 * static inline), one executable per including file.
 *
 * A test program takes <case> <fake_runtime> <mpiexec> <flavour> and runs
 * s_harness_main() with its table of cases.
 */
#ifndef PMP_EXECUTOR_HARNESS_H
#define PMP_EXECUTOR_HARNESS_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pmp_executor.h"

#include "pmp_check.h"

static const char *g_fake, *g_mpiexec, *g_flavour;
static char g_tmpdir[256];

static inline int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline pmp_executor_config_t s_cfg(int ranks, int rpg, int depth, const char *const *args)
{
    pmp_executor_config_t cfg = {.ranks = ranks,
                                 .ranks_per_group = rpg,
                                 .pipeline_depth = depth,
                                 .launch = 1,
                                 .mpi_flavour = g_flavour,
                                 .mpiexec = g_mpiexec,
                                 .runtime = g_fake,
                                 .runtime_args = args};
    return cfg;
}

static inline pmp_executor_t *s_new(int ranks, int rpg, int depth, const char *const *args)
{
    pmp_executor_config_t cfg = s_cfg(ranks, rpg, depth, args);
    pmp_error_t err = {{0}};
    pmp_executor_t *ex = pmp_executor_new(&cfg, &err);
    if (!ex)
        fprintf(stderr, "pmp_executor_new: %s\n", err.text);
    CHECK(ex);
    return ex;
}

/* An executor that launches nothing (cfg.launch = 0): its groups are the
 * peers the test makes itself. */
static inline pmp_executor_t *s_new_unlaunched(int ranks, int rpg, int depth)
{
    pmp_executor_config_t cfg = s_cfg(ranks, rpg, depth, NULL);
    cfg.launch = 0;
    pmp_executor_t *ex = pmp_executor_new(&cfg, NULL);
    CHECK(ex);
    return ex;
}

/* The hello text (NUL-terminated) of the only group, of one rank, of a
 * job on host, as a hand-made peer says it. */
static inline void s_hello_text(const char *host, char *text, size_t size)
{
    pmp_hello_t hello;
    memset(&hello, 0, sizeof hello);
    hello.ngroups = hello.group_size = hello.world_size = 1;
    hello.pid = getpid();
    snprintf(hello.host, sizeof hello.host, "%s", host);
    int len = pmp_hello_encode(&hello, text, size - 1);
    CHECK(len > 0);
    text[len] = '\0';
}

/* Next completion within timeout_ms; fails the test on timeout. */
static inline pmp_completion_t *s_wait(pmp_executor_t *ex, int timeout_ms)
{
    pmp_completion_t *c = pmp_executor_wait(ex, timeout_ms);
    if (!c)
        fprintf(stderr, "no completion within %d ms\n", timeout_ms);
    CHECK(c);
    return c;
}

/* Waits for n HELLO events (other completions are not expected yet). */
static inline void s_wait_hellos(pmp_executor_t *ex, int n)
{
    for (int i = 0; i < n; i++) {
        pmp_completion_t *c = s_wait(ex, 20000);
        CHECK(pmp_completion_kind(c) == PMP_EVENT_HELLO);
        CHECK(strstr(pmp_completion_text(c), "group=") != NULL);
        CHECK(pmp_completion_task_id(c) == 0);
        CHECK(pmp_completion_nframes(c) == 0);
        pmp_completion_destroy(&c);
        CHECK(c == NULL);
    }
}

static inline int s_submit_text(pmp_executor_t *ex, uint64_t id, const char *text)
{
    pmp_buffer_t b = {.data = text, .size = strlen(text)};
    pmp_error_t err = {{0}};
    int rc = pmp_executor_submit(ex, id, PMP_MSG_TASK, 0, &b, 1, &err);
    if (rc < 0)
        fprintf(stderr, "submit %llu: %s\n", (unsigned long long)id, err.text);
    return rc;
}

static inline int s_frame_is(pmp_completion_t *c, size_t i, const char *text)
{
    pmp_frame_t *f = pmp_completion_take_frame(c, i);
    if (!f)
        return 0;
    int ok =
        pmp_frame_size(f) == strlen(text) && memcmp(pmp_frame_data(f), text, strlen(text)) == 0;
    pmp_frame_destroy(&f);
    return ok;
}

/* Zero-copy buffers: s_count_free is the free_fn, s_freed_counter() its
 * hint, s_freed() how many buffers were released so far. */
static inline int *s_freed_counter(void)
{
    static int freed;
    return &freed;
}

static inline void s_count_free(void *data, void *hint)
{
    CHECK(hint == s_freed_counter());
    (void)data;
    __atomic_add_fetch(s_freed_counter(), 1, __ATOMIC_SEQ_CST);
}

static inline int s_freed(void)
{
    return __atomic_load_n(s_freed_counter(), __ATOMIC_SEQ_CST);
}

/* The --credentials path of the executor's command. */
static inline const char *s_cred_path(pmp_executor_t *ex)
{
    const char *const *cmd = pmp_executor_command(ex);
    for (size_t i = 0; cmd[i] && cmd[i + 1]; i++)
        if (strcmp(cmd[i], "--credentials") == 0)
            return cmd[i + 1];
    CHECK(!"no --credentials in the command");
    return NULL;
}

/* Whether path exists, within timeout_ms for want == 0 (it is removed by
 * the I/O thread). */
static inline int s_exists(const char *path, int want, int timeout_ms)
{
    int64_t end = s_now_ms() + timeout_ms;
    struct stat st;
    for (;;) {
        int there = stat(path, &st) == 0;
        if (there == want || s_now_ms() >= end)
            return there;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Destroys the executor and checks that its directory and job are gone. */
static inline void s_destroy(pmp_executor_t **ex, int grace_ms)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", s_cred_path(*ex));
    *strrchr(dir, '/') = '\0';
    pid_t pid = pmp_executor_pid(*ex);
    int64_t t0 = s_now_ms();
    pmp_executor_destroy(ex, grace_ms);
    CHECK(*ex == NULL);
    CHECK(s_now_ms() - t0 < grace_ms + 5000);
    struct stat st;
    CHECK(stat(dir, &st) < 0 && errno == ENOENT);
    if (pid > 0)
        CHECK(kill(pid, 0) < 0 && errno == ESRCH);
    pmp_executor_destroy(ex, 0); /* NULL-safe */
}

static inline int s_tmpdir_entries(void)
{
    DIR *d = opendir(g_tmpdir);
    CHECK(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

typedef struct {
    const char *name;
    void (*fn)(void);
} s_case_t;

/* Runs the case named argv[1] of cases (n of them) with TMPDIR set to a
 * fresh private directory, and checks that the case left nothing in it.
 * prefix names the suite in the "ok" line ("unit.executor"). */
static inline int s_harness_main(int argc, char **argv, const s_case_t *cases, size_t n,
                                 const char *prefix)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s <case> <fake_runtime> <mpiexec> <flavour>\n", argv[0]);
        return 2;
    }
    g_fake = argv[2];
    g_mpiexec = argv[3];
    g_flavour = argv[4];
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/pmp-test-XXXXXX");
    CHECK(mkdtemp(g_tmpdir));
    setenv("TMPDIR", g_tmpdir, 1);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], cases[i].name) != 0)
            continue;
        cases[i].fn();
        CHECK(s_tmpdir_entries() == 0);
        CHECK(rmdir(g_tmpdir) == 0);
        printf("%s.%s: ok\n", prefix, cases[i].name);
        return 0;
    }
    fprintf(stderr, "unknown case %s\n", argv[1]);
    rmdir(g_tmpdir);
    return 2;
}

#endif
