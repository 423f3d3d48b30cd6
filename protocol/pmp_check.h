/*
 * pmp_check.h - the check macros of every C unit test of the project
 * (protocol/test_*.c, frontend/tests/test_*.c).  Not part of any library.
 *
 * No framework: a failed CHECK() prints its file, line and expression,
 * with errno when it is set (most checks are of calls that fail with
 * errno), and ends the test with status 1, so that CTest shows the first
 * broken check.  CHECK_REJECT() checks that a decoder refused its input
 * (-1, EPROTO) for a reason that names what was wrong.
 * pmp_check_verdict() prints how many checks ran and returns 0 for main.
 * Include it from one source file per executable (the counter is static).
 */
#ifndef PMP_CHECK_H
#define PMP_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_checks = 0;

static inline void pmp_check_fail(const char *file, int line, const char *expr)
{
    int e = errno;
    fprintf(stderr, "%s:%d: check failed: %s", file, line, expr);
    if (e)
        fprintf(stderr, " (errno %d: %s)", e, strerror(e));
    fputc('\n', stderr);
    exit(1);
}

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        s_checks++;                                                                                \
        if (!(expr))                                                                               \
            pmp_check_fail(__FILE__, __LINE__, #expr);                                             \
    } while (0)

/* rc_expr must return -1 with errno EPROTO and a reason in err (a
 * pmp_error_t) that contains want. */
#define CHECK_REJECT(rc_expr, err, want)                                                           \
    do {                                                                                           \
        (err).text[0] = '\0';                                                                      \
        errno = 0;                                                                                 \
        int rc_ = (rc_expr);                                                                       \
        int errno_ = errno;                                                                        \
        s_checks++;                                                                                \
        if (rc_ != -1 || errno_ != EPROTO || !strstr((err).text, (want))) {                        \
            fprintf(stderr,                                                                        \
                    "%s:%d: expected rejection mentioning \"%s\" from %s; got rc=%d errno=%d "     \
                    "reason=\"%s\"\n",                                                             \
                    __FILE__, __LINE__, (want), #rc_expr, rc_, errno_, (err).text);                \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Prints "<name>: all N checks passed"; returns main's status, 0 (a failed
 * check has ended the test already). */
static inline int pmp_check_verdict(const char *name)
{
    printf("%s: all %d checks passed\n", name, s_checks);
    return 0;
}

#endif
