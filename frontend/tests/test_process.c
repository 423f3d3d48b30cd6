/*
 * test_process.c - unit tests of how an executor lives among processes and
 * descriptors (unit.process.<case>), with the fake runtime through a real
 * mpiexec (tests/fake_runtime.c, helpers in executor_harness.h):
 *
 *   fork            a forked child finds the executor dead: every call fails
 *                   at once with PMP_EFORKED and a sentence naming both
 *                   processes, destroy returns at once and removes nothing,
 *                   even when the parent's threads held the lock at the
 *                   fork; the parent goes on unaffected.
 *   interrupt       SIGINT reaches exactly the ranks of the groups that hold
 *                   a task; 0 when nothing runs; the job survives.
 *   stdout          what a task prints reaches this process's stdout,
 *                   partial lines included; MPICH's banner about a rank that
 *                   died goes to stderr and the exit text, not to stdout.
 *   stdout_kill     destroy while a task runs: neither stdout nor stderr
 *                   gets the launcher's noise.
 *   stdout_broken   stdout is a pipe nobody reads any more (EPIPE), with
 *                   SIGPIPE at its default action: nothing dies, tasks run.
 *   stdout_blocked  stdout is a pipe nobody drains (full): the I/O thread
 *                   still serves, and destroy returns in bounded time.
 *   stdout_slow     stdout is a non-blocking pipe drained slowly (EAGAIN):
 *                   every byte arrives, in order.
 *   nested_env      run as if inside a rank: the job's launcher does not see
 *                   the enclosing job's variables, and sees the user's.
 *
 * SIGPIPE keeps its default action here (unlike in test_executor, which
 * mimics Python): the frontend must not depend on it being ignored.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>

#include "executor_harness.h"

/* A check inside a forked child: report and leave without atexit. */
#define CHILD_CHECK(expr)                                                                          \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            fprintf(stderr, "%s:%d: child %ld: check failed: %s (errno %d: %s)\n", __FILE__,       \
                    __LINE__, (long)getpid(), #expr, errno, strerror(errno));                      \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

static void s_result_is(pmp_executor_t *ex, uint64_t id, const char *text, int timeout_ms)
{
    pmp_completion_t *c = s_wait(ex, timeout_ms);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT);
    CHECK(pmp_completion_task_id(c) == id);
    CHECK(s_frame_is(c, 0, text));
    pmp_completion_destroy(&c);
}

/* ---- fork ------------------------------------------------------------- */

static volatile int g_hammer_stop;

/* Takes and releases the executor's lock as fast as it can, so that a fork
 * catches it held now and then. */
static void *s_hammer(void *arg)
{
    pmp_executor_t *ex = arg;
    while (!__atomic_load_n(&g_hammer_stop, __ATOMIC_RELAXED)) {
        pmp_executor_pending(ex);
        pmp_executor_restarts(ex);
    }
    return NULL;
}

/* What the child does with the parent's executor; exits 0 if all is well. */
static void s_child(pmp_executor_t *ex, pid_t parent)
{
    alarm(10); /* a hang is a failure, not a stuck test */
    int64_t t0 = s_now_ms();
    CHILD_CHECK(pmp_executor_forked(ex) == 1);
    CHILD_CHECK(pmp_executor_owner(ex) == parent);
    pmp_error_t err = {{0}};
    pmp_buffer_t b = {.data = "c", .size = 1};
    errno = 0;
    CHILD_CHECK(pmp_executor_submit(ex, 100, PMP_MSG_TASK, 0, &b, 1, &err) == -1);
    CHILD_CHECK(errno == PMP_EFORKED);
    char want[200];
    snprintf(want, sizeof want,
             "this executor belongs to process %ld; it cannot be used in a forked child (pid %ld)",
             (long)parent, (long)getpid());
    CHILD_CHECK(strcmp(err.text, want) == 0);
    CHILD_CHECK(pmp_executor_broadcast(ex, PMP_MSG_DEFINE, 5, &b, 1, &err) == -1 &&
                errno == PMP_EFORKED);
    CHILD_CHECK(pmp_executor_wait(ex, -1) == NULL && errno == PMP_EFORKED);
    CHILD_CHECK(pmp_executor_cancel(ex, 1) == -1 && errno == PMP_EFORKED);
    uint64_t *ids = NULL;
    size_t n = 7;
    CHILD_CHECK(pmp_executor_cancel_all(ex, &ids, &n) == -1 && errno == PMP_EFORKED);
    CHILD_CHECK(ids == NULL && n == 0);
    errno = 0;
    CHILD_CHECK(pmp_executor_pending(ex) == 0 && errno == PMP_EFORKED);
    CHILD_CHECK(pmp_executor_close(ex) == -1 && errno == PMP_EFORKED);
    CHILD_CHECK(pmp_executor_interrupt(ex) == -1 && errno == PMP_EFORKED);
    CHILD_CHECK(pmp_executor_restarts(ex) == -1 && errno == PMP_EFORKED);
    CHILD_CHECK(strncmp(pmp_executor_endpoint(ex), "ipc://", 6) == 0); /* still readable */
    pmp_executor_destroy(&ex, 5000);
    CHILD_CHECK(ex == NULL);
    CHILD_CHECK(s_now_ms() - t0 < 1000); /* at once, not after the grace */
    _exit(0);
}

static void s_case_fork(void)
{
    const char *const args[] = {"--fake-tag", NULL};
    pmp_executor_t *ex = s_new(1, 1, 1, args);
    s_wait_hellos(ex, 1);
    CHECK(pmp_executor_forked(ex) == 0 && pmp_executor_owner(ex) == getpid());
    CHECK(s_submit_text(ex, 1, "before") == 0);
    s_result_is(ex, 1, "before", 10000);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", s_cred_path(ex));
    *strrchr(dir, '/') = '\0';
    pid_t job = pmp_executor_pid(ex);

    /* Many forks while another thread keeps taking the lock, and one while
     * the dispatcher-like caller waits inside pmp_executor_wait(). */
    pthread_t hammer;
    CHECK(pthread_create(&hammer, NULL, s_hammer, ex) == 0);
    int64_t slowest = 0;
    for (int i = 0; i < 40; i++) {
        int64_t t0 = s_now_ms();
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            s_child(ex, getppid());
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "child %d: status 0x%x\n", i, status);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        if (s_now_ms() - t0 > slowest)
            slowest = s_now_ms() - t0;
    }
    __atomic_store_n(&g_hammer_stop, 1, __ATOMIC_RELAXED);
    CHECK(pthread_join(hammer, NULL) == 0);
    fprintf(stderr, "fork: slowest child lived %lld ms\n", (long long)slowest);

    /* the parent: its job, directory and credentials untouched, still working */
    struct stat st;
    CHECK(stat(dir, &st) == 0);
    CHECK(kill(job, 0) == 0);
    CHECK(pmp_executor_forked(ex) == 0);
    CHECK(s_submit_text(ex, 2, "after") == 0);
    s_result_is(ex, 2, "after", 10000);
    s_destroy(&ex, 2000);
}

/* ---- interrupt -------------------------------------------------------- */

/* Waits until no task is queued (all were sent to groups). */
static void s_wait_sent(pmp_executor_t *ex)
{
    int64_t end = s_now_ms() + 10000;
    while (pmp_executor_pending(ex) > 0 && s_now_ms() < end)
        usleep(10000);
    CHECK(pmp_executor_pending(ex) == 0);
    usleep(200000); /* and the fake rank is inside its sleep */
}

static void s_case_interrupt(void)
{
    const char *const args[] = {"--fake-ranks", "--fake-sigint", "--fake-delay-ms", "30000", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    CHECK(pmp_executor_interrupt(ex) == 0); /* nothing runs, maybe nobody connected */
    s_wait_hellos(ex, 2);
    CHECK(pmp_executor_interrupt(ex) == 0); /* idle groups are not disturbed */

    CHECK(s_submit_text(ex, 1, "one") == 0);
    s_wait_sent(ex);
    int64_t t0 = s_now_ms();
    CHECK(pmp_executor_interrupt(ex) == 1); /* only the busy group's rank */
    s_result_is(ex, 1, "interrupted", 10000);
    CHECK(s_now_ms() - t0 < 5000);

    CHECK(s_submit_text(ex, 2, "two") == 0);
    CHECK(s_submit_text(ex, 3, "three") == 0);
    s_wait_sent(ex);
    CHECK(pmp_executor_interrupt(ex) == 2);
    for (int i = 0; i < 2; i++) {
        pmp_completion_t *c = s_wait(ex, 10000);
        CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT);
        CHECK(s_frame_is(c, 0, "interrupted"));
        pmp_completion_destroy(&c);
    }
    CHECK(pmp_executor_interrupt(ex) == 0);
    /* the job is alive: no EXIT follows */
    CHECK(pmp_executor_wait(ex, 500) == NULL && errno == EAGAIN);
    s_destroy(&ex, 2000);
}

/* ---- stdout ------------------------------------------------------------ */

/* Points fd (1 or 2) at a fresh file in the test directory; returns the
 * saved original, to be given back with s_restore_fd.  path receives the
 * file's name. */
static int s_redirect(int fd, char *path, size_t size, const char *name)
{
    snprintf(path, size, "%s/%s", g_tmpdir, name);
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(f >= 0);
    fflush(NULL);
    int saved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    CHECK(saved >= 0 && dup2(f, fd) == fd);
    close(f);
    return saved;
}

/* Points fd 1 at the write end of a fresh pipe (p[0] is the caller's to
 * read, or not); returns the saved original, for s_restore_fd. */
static int s_stdout_to_pipe(int p[2])
{
    CHECK(pipe(p) == 0);
    fflush(NULL);
    int saved = fcntl(1, F_DUPFD_CLOEXEC, 10);
    CHECK(saved >= 0 && dup2(p[1], 1) == 1);
    close(p[1]);
    return saved;
}

static void s_restore_fd(int fd, int saved)
{
    fflush(NULL);
    CHECK(dup2(saved, fd) == fd);
    close(saved);
}

/* The whole file (malloc'ed, NUL-terminated), removed afterwards when
 * unlink_it. */
static char *s_slurp(const char *path, int unlink_it)
{
    FILE *f = fopen(path, "rb");
    CHECK(f);
    char *buf = malloc(1 << 20);
    CHECK(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (unlink_it)
        unlink(path);
    return buf;
}

/* Waits until the file contains text (the relay is asynchronous). */
static int s_file_has(const char *path, const char *text, int timeout_ms)
{
    int64_t end = s_now_ms() + timeout_ms;
    for (;;) {
        char *all = s_slurp(path, 0);
        int has = strstr(all, text) != NULL;
        free(all);
        if (has || s_now_ms() >= end)
            return has;
        usleep(20000);
    }
}

static int s_mpich(void)
{
    return strcmp(g_flavour, "mpich") == 0;
}

static void s_case_stdout(void)
{
    char out[512];
    int saved = s_redirect(1, out, sizeof out, "stdout.txt");
    const char *const args[] = {"--fake-print", "printed by the task, no newline",
                                "--fake-kill-at-task", "2", NULL};
    pmp_executor_t *ex = s_new(1, 1, 1, args);
    s_wait_hellos(ex, 1);
    CHECK(s_submit_text(ex, 1, "x") == 0);
    s_result_is(ex, 1, "x", 10000);
    /* a partial line arrives without waiting for its end */
    int partial = s_file_has(out, "printed by the task, no newline", 3000);
    CHECK(s_submit_text(ex, 2, "y") == 0); /* the rank dies of SIGKILL: hydra's banner */
    pmp_completion_t *c = s_wait(ex, 20000);
    CHECK(pmp_completion_kind(c) == PMP_EVENT_EXIT);
    char *text = strdup(pmp_completion_text(c));
    pmp_completion_destroy(&c);
    c = s_wait(ex, 2000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_BROKEN);
    pmp_completion_destroy(&c);
    s_destroy(&ex, 2000);
    s_restore_fd(1, saved);
    char *got = s_slurp(out, 1);
    fprintf(stderr, "stdout was [%s]\nexit text: %s\n", got, text);
    CHECK(partial);
    CHECK(strstr(got, "printed by the task, no newline") != NULL);
    CHECK(strstr(got, "BAD TERMINATION") == NULL);
    CHECK(strstr(got, "=====") == NULL);
    if (s_mpich()) /* hydra's banner, kept in the tail */
        CHECK(strstr(text, "BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES") != NULL);
    CHECK(strstr(text, "fake: killing myself") != NULL);
    free(got);
    free(text);
}

/* A launcher that always answers SIGTERM with hydra's banner on stdout and
 * a line on stderr (hydra itself prints its banner only when it gets to
 * report the ranks' deaths first, which a signal to the whole group may
 * or may not allow): $PMP_TEST_MPIEXEC does the real launch. */
static const char s_noisy_launcher[] =
    "#!/bin/sh\n"
    "r================================================================================\n"
    "trap 'printf \"\\n=%s\\n=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\\n"
    "=   EXIT CODE: 15\\n=%s\\n\" $r $r; echo launcher noise on stderr >&2; exit 143' TERM\n"
    "\"$PMP_TEST_MPIEXEC\" \"$@\" &\n"
    "wait $!\n";

static void s_case_stdout_kill(void)
{
    char launcher[512];
    snprintf(launcher, sizeof launcher, "%s/noisy-mpiexec", g_tmpdir);
    FILE *f = fopen(launcher, "w");
    CHECK(f && fputs(s_noisy_launcher, f) >= 0 && fclose(f) == 0);
    CHECK(chmod(launcher, 0700) == 0);
    setenv("PMP_TEST_MPIEXEC", g_mpiexec, 1);
    g_mpiexec = launcher;
    char out[512], err[512];
    int saved_out = s_redirect(1, out, sizeof out, "stdout.txt");
    int saved_err = s_redirect(2, err, sizeof err, "stderr.txt");
    const char *const args[] = {"--fake-print", "task output\n", "--fake-delay-ms", "30000", NULL};
    pmp_executor_t *ex = s_new(2, 1, 1, args);
    s_wait_hellos(ex, 2);
    CHECK(s_submit_text(ex, 1, "x") == 0);
    CHECK(s_submit_text(ex, 2, "x") == 0);
    s_wait_sent(ex);
    int printed = s_file_has(out, "task output\ntask output\n", 3000);
    pmp_executor_destroy(&ex, 0); /* SIGTERM now: the banner follows */
    s_restore_fd(2, saved_err);
    s_restore_fd(1, saved_out);
    unlink(launcher);
    char *got_out = s_slurp(out, 1), *got_err = s_slurp(err, 1);
    fprintf(stderr, "stdout was [%s]\nstderr was [%s]\n", got_out, got_err);
    CHECK(printed);
    CHECK(strcmp(got_out, "task output\ntask output\n") == 0);
    CHECK(strstr(got_err, "BAD TERMINATION") == NULL);
    CHECK(strstr(got_err, "=====") == NULL);
    CHECK(strstr(got_err, "launcher noise") == NULL);
    free(got_out);
    free(got_err);
}

static void s_case_stdout_broken(void)
{
    int p[2];
    int saved = s_stdout_to_pipe(p);
    close(p[0]); /* nobody will ever read: every write gets EPIPE (and SIGPIPE) */
    const char *const args[] = {"--fake-print", "into a broken pipe\n", NULL};
    pmp_executor_t *ex = s_new(1, 1, 1, args);
    s_wait_hellos(ex, 1);
    for (uint64_t id = 1; id <= 5; id++) {
        CHECK(s_submit_text(ex, id, "x") == 0);
        s_result_is(ex, id, "x", 10000);
    }
    s_destroy(&ex, 2000);
    s_restore_fd(1, saved);
}

static void s_case_stdout_blocked(void)
{
    int p[2];
    int saved = s_stdout_to_pipe(p); /* p[0] stays open and is never read */
    const char *const args[] = {"--fake-print-bytes", "1000000", NULL};
    pmp_executor_t *ex = s_new(1, 1, 1, args);
    s_wait_hellos(ex, 1);
    /* the task prints more than our stdout, the relay and the launcher's
     * pipes take: it blocks, as it would on an inherited stdout */
    CHECK(s_submit_text(ex, 1, "x") == 0);
    int queued = 0;
    int64_t end = s_now_ms() + 5000;
    while (queued < 65536 && s_now_ms() < end) {
        CHECK(ioctl(p[0], FIONREAD, &queued) == 0);
        usleep(20000);
    }
    CHECK(queued >= 65536); /* full: a blocking write would hang there */
    int64_t t0 = s_now_ms();
    for (int i = 0; i < 20; i++) /* each one a round trip through the I/O thread */
        CHECK(pmp_executor_interrupt(ex) == 0);
    CHECK(pmp_executor_wait(ex, 100) == NULL && errno == EAGAIN);
    CHECK(s_now_ms() - t0 < 2000);
    t0 = s_now_ms();
    pmp_executor_destroy(&ex, 0);
    fprintf(stderr, "stdout_blocked: destroy took %lld ms\n", (long long)(s_now_ms() - t0));
    CHECK(s_now_ms() - t0 < 6000);
    s_restore_fd(1, saved);
    close(p[0]);
}

typedef struct {
    int fd;
    long total, bad;
} s_reader_t;

/* Drains the pipe slowly, counting 'y' bytes, until end of file. */
static void *s_slow_reader(void *arg)
{
    s_reader_t *r = arg;
    char buf[4096];
    for (;;) {
        ssize_t n = read(r->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        for (ssize_t i = 0; i < n; i++)
            r->bad += buf[i] != 'y';
        r->total += n;
        usleep(2000);
    }
}

static void s_case_stdout_slow(void)
{
    int p[2];
    int saved = s_stdout_to_pipe(p);
    /* the user made stdout non-blocking: writes may fail with EAGAIN */
    CHECK(fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK) == 0);
    s_reader_t r = {.fd = p[0]};
    pthread_t reader;
    CHECK(pthread_create(&reader, NULL, s_slow_reader, &r) == 0);
    const char *const args[] = {"--fake-print-bytes", "300000", NULL};
    pmp_executor_t *ex = s_new(1, 1, 1, args);
    s_wait_hellos(ex, 1);
    for (uint64_t id = 1; id <= 2; id++) {
        CHECK(s_submit_text(ex, id, "x") == 0);
        s_result_is(ex, id, "x", 30000);
    }
    pmp_executor_close(ex);
    for (int kind = 0; kind != PMP_EVENT_CLOSED;) { /* EXIT, then CLOSED */
        pmp_completion_t *c = s_wait(ex, 30000);
        kind = pmp_completion_kind(c);
        CHECK(kind == PMP_EVENT_EXIT || kind == PMP_EVENT_CLOSED);
        pmp_completion_destroy(&c);
    }
    int64_t end = s_now_ms() + 20000;
    while (__atomic_load_n(&r.total, __ATOMIC_RELAXED) < 600000 && s_now_ms() < end)
        usleep(20000);
    s_destroy(&ex, 2000);
    s_restore_fd(1, saved); /* the last writer of the pipe goes: the reader ends */
    CHECK(pthread_join(reader, NULL) == 0);
    close(p[0]);
    fprintf(stderr, "stdout_slow: %ld bytes arrived, %ld wrong\n", r.total, r.bad);
    CHECK(r.total == 600000 && r.bad == 0);
}

/* ---- nested launch ----------------------------------------------------- */

static void s_case_nested_env(void)
{
    /* as in a rank of an enclosing Open MPI job, plus two user settings */
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_RANK", "3", 1);
    setenv("OMPI_MCA_ess", "pmi", 1);
    setenv("OMPI_MCA_orte_hnp_uri", "1.0;tcp://192.0.2.1:1", 1);
    setenv("PMIX_NAMESPACE", "outer", 1);
    setenv("PMIX_SERVER_URI4", "1.0;tcp4://127.0.0.1:1", 1);
    setenv("SLURM_STEP_ID", "7", 1);
    setenv("SLURM_CPU_BIND", "quiet,mask_cpu:0x1", 1);
    setenv("SLURM_JOB_ID", "4711", 1);
    setenv("OMPI_MCA_btl", "self,vader", 1);
    setenv("PMIX_MCA_gds", "hash", 1);
    const char *const args[] = {
        "--fake-getenv",
        "OMPI_COMM_WORLD_SIZE,OMPI_MCA_ess,OMPI_MCA_orte_hnp_uri,PMIX_NAMESPACE,"
        "PMIX_SERVER_URI4,SLURM_STEP_ID,SLURM_CPU_BIND,SLURM_JOB_ID,OMPI_MCA_btl,PMIX_MCA_gds",
        NULL};
    pmp_executor_t *ex = s_new(1, 1, 1, args);
    s_wait_hellos(ex, 1);
    CHECK(s_submit_text(ex, 1, "x") == 0);
    pmp_completion_t *c = s_wait(ex, 10000);
    CHECK(pmp_completion_kind(c) == PMP_DONE_RESULT && pmp_completion_nframes(c) == 2);
    pmp_frame_t *f = pmp_completion_take_frame(c, 1);
    CHECK(f);
    char env[1024];
    snprintf(env, sizeof env, "%.*s", (int)pmp_frame_size(f), (const char *)pmp_frame_data(f));
    pmp_frame_destroy(&f);
    pmp_completion_destroy(&c);
    fprintf(stderr, "the rank saw: %s\n", env);
    /* hydra sets none of these for its ranks: what the rank sees is what
     * the launcher got from us */
    const char *want = "OMPI_COMM_WORLD_SIZE=-,OMPI_MCA_ess=-,OMPI_MCA_orte_hnp_uri=-,"
                       "PMIX_NAMESPACE=-,PMIX_SERVER_URI4=-,SLURM_STEP_ID=-,SLURM_CPU_BIND=-,"
                       "SLURM_JOB_ID=4711,OMPI_MCA_btl=self,vader,PMIX_MCA_gds=hash";
    if (s_mpich())
        CHECK(strcmp(env, want) == 0);
    /* and this process's own environment is untouched */
    CHECK(getenv("OMPI_COMM_WORLD_SIZE") && getenv("PMIX_NAMESPACE"));
    s_destroy(&ex, 2000);
}

int main(int argc, char **argv)
{
    static const s_case_t cases[] = {
        {"fork", s_case_fork},
        {"interrupt", s_case_interrupt},
        {"stdout", s_case_stdout},
        {"stdout_kill", s_case_stdout_kill},
        {"stdout_broken", s_case_stdout_broken},
        {"stdout_blocked", s_case_stdout_blocked},
        {"stdout_slow", s_case_stdout_slow},
        {"nested_env", s_case_nested_env},
    };
    return s_harness_main(argc, argv, cases, sizeof cases / sizeof cases[0], "unit.process");
}
