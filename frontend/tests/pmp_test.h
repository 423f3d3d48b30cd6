/*
 * pmp_test.h - the check macro of the frontend's unit tests (test_queue,
 * test_sched, test_banner, test_environ and, through executor_harness.h,
 * test_executor and test_process).  Not part of any library.
 *
 * No framework: a failed CHECK() prints its file, line and expression, with
 * errno when it is set (most checks are of calls that fail with errno), and
 * ends the test with status 1, so CTest shows the first broken check.
 */
#ifndef PMP_TEST_H
#define PMP_TEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            int check_errno_ = errno;                                                              \
            fprintf(stderr, "%s:%d: check failed: %s", __FILE__, __LINE__, #expr);                 \
            if (check_errno_)                                                                      \
                fprintf(stderr, " (errno %d: %s)", check_errno_, strerror(check_errno_));          \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif
