/*
 * pmp_check.h - the check macro of the protocol's unit tests
 * (test_protocol.c, test_credentials.c).  Not part of any library.
 *
 * No framework: CHECK() counts, records a failure with its file and line
 * and goes on, so one run reports every broken check; pmp_check_verdict()
 * prints the totals and returns the exit status.  Include it from one
 * source file per executable (the counters are static).
 */
#ifndef PMP_CHECK_H
#define PMP_CHECK_H

#include <stdio.h>

static int s_failures = 0;
static int s_checks = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        s_checks++;                                                                                \
        if (!(cond)) {                                                                             \
            s_failures++;                                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

/* Prints "<name>: all N checks passed" or the failures, and returns the
 * exit status (0 or 1). */
static inline int pmp_check_verdict(const char *name)
{
    if (s_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, s_failures, s_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, s_checks);
    return 0;
}

#endif
