/*
 * test_error.c - unit test of the error and logging helpers (pmp_error.h)
 * that every C part of pympipool shares, run by CTest as unit.error: the
 * error text (truncated, errno kept), the log levels and their
 * environment variable, long messages, and the assertion's hook.
 * Logging and assertions are tested in forked children, so that the
 * once-per-process log level and abort() do not affect the rest.
 *
 * No framework: CHECK() records a failure and goes on; the exit status is
 * the verdict.
 */
#include "pmp_error.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pmp_check.h"

static void test_error_set(void)
{
    pmp_error_t err;
    errno = EMSGSIZE;
    pmp_error_set(&err, "value %d of %s", 3, "x");
    CHECK(errno == EMSGSIZE);
    CHECK(strcmp(err.text, "value 3 of x") == 0);
    errno = ENOENT;
    pmp_error_set(NULL, "ignored %d", 1);
    CHECK(errno == ENOENT);
    char big[PMP_ERROR_TEXT * 2];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    pmp_error_set(&err, "%s", big);
    CHECK(strlen(err.text) == PMP_ERROR_TEXT - 1);
}

/* Runs fn in a child with stderr captured; returns its wait status and
 * fills out with what it wrote. */
static int s_run_child(void (*fn)(void), const char *level, char *out, size_t outsize)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        if (level)
            setenv("PYMPIPOOL_LOG_LEVEL", level, 1);
        else
            unsetenv("PYMPIPOOL_LOG_LEVEL");
        fn();
        fflush(stderr);
        _exit(0);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t n;
    while ((n = read(fds[0], out + used, outsize - 1 - used)) > 0)
        used += (size_t)n;
    out[used] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static void s_log_all_levels(void)
{
    pmp_log_set_prefix("pympipool-runtime[rank 1/4 nodeA]");
    pmp_log(PMP_LOG_ERROR, "e-line %d", 1);
    pmp_log(PMP_LOG_WARNING, "w-line");
    pmp_log(PMP_LOG_INFO, "i-line");
    pmp_log(PMP_LOG_DEBUG, "d-line");
    errno = EBADF;
    pmp_log(PMP_LOG_ERROR, "errno kept");
    if (errno != EBADF)
        _exit(3);
}

static void s_log_long(void)
{
    char big[8192];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    pmp_log(PMP_LOG_ERROR, "%s", big);
}

static void s_hook_exit(void)
{
    fprintf(stderr, "hook ran\n");
    _exit(42);
}

static void s_assert_with_hook(void)
{
    pmp_set_fatal_hook(s_hook_exit);
    errno = ENOENT;
    int one = 1;
    PMP_ASSERT(one == 2);
    _exit(0); /* not reached */
}

static void s_assert_without_hook(void)
{
    int one = 1;
    PMP_ASSERT(one == 1); /* passes */
    errno = 0;
    PMP_ASSERT(one == 3);
    _exit(0);
}

static void test_logging(void)
{
    char out[16384];
    int st;

    st = s_run_child(s_log_all_levels, NULL, out, sizeof out); /* default: warning */
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(out, "pympipool-runtime[rank 1/4 nodeA]: error: e-line 1\n") != NULL);
    CHECK(strstr(out, "pympipool-runtime[rank 1/4 nodeA]: warning: w-line\n") != NULL);
    CHECK(strstr(out, "i-line") == NULL && strstr(out, "d-line") == NULL);

    st = s_run_child(s_log_all_levels, "debug", out, sizeof out);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(out, "info: i-line\n") != NULL && strstr(out, "debug: d-line\n") != NULL);

    st = s_run_child(s_log_all_levels, "0", out, sizeof out);
    CHECK(strstr(out, "e-line") != NULL && strstr(out, "w-line") == NULL);
    st = s_run_child(s_log_all_levels, "ERROR", out, sizeof out);
    CHECK(strstr(out, "e-line") != NULL && strstr(out, "w-line") == NULL);
    st = s_run_child(s_log_all_levels, "2", out, sizeof out);
    CHECK(strstr(out, "i-line") != NULL && strstr(out, "d-line") == NULL);

    /* A typo is reported and falls back to warning. */
    st = s_run_child(s_log_all_levels, "verbose", out, sizeof out);
    CHECK(strstr(out, "PYMPIPOOL_LOG_LEVEL='verbose'") != NULL);
    CHECK(strstr(out, "w-line") != NULL && strstr(out, "i-line") == NULL);

    st = s_run_child(s_log_long, NULL, out, sizeof out);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(strstr(out, "pympipool: error: qqq") == out);
    CHECK(strstr(out, "qq...\n") != NULL && strlen(out) < 4096);

    st = s_run_child(s_assert_with_hook, NULL, out, sizeof out);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42);
    CHECK(strstr(out, "assertion 'one == 2' failed at") != NULL);
    CHECK(strstr(out, "test_error.c:") != NULL);
    CHECK(strstr(out, "errno 2") != NULL);
    CHECK(strstr(out, "hook ran") != NULL);

    st = s_run_child(s_assert_without_hook, NULL, out, sizeof out);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(strstr(out, "assertion 'one == 3' failed") != NULL);
    CHECK(strstr(out, "one == 1") == NULL);
}

int main(void)
{
    test_error_set();
    test_logging();
    return pmp_check_verdict("test_error");
}
