/*
 * test_window.c - unit test of pmp_window (unit.window): bad sizes
 * refused; the limit starts at base and stays there for the first
 * PMP_WINDOW_WARM results, then opens to max for tasks far shorter
 * than the budget, sits at budget / time per task in between, closes to
 * base after one long task and reopens over short ones; results read in
 * bursts (several at once after one long gap) give the mean, not the
 * burst's shape; an idle group's sample is its round trip; reset forgets;
 * a budget of 0 is always max.  Exits 0 on success; prints the failing
 * check and exits 1 otherwise.
 */
#include "pmp_window.h"

#include <errno.h>
#include <stdint.h>

#include "pmp_check.h"

#define US 1000LL
#define MS 1000000LL

/* Group 0 runs n tasks of task_ns each back to back from t on (one sent
 * whenever one is done, so it is never idle); returns the end time. */
static int64_t s_run(pmp_window_t *w, int64_t t, int n, int64_t task_ns)
{
    for (int i = 0; i < n; i++) {
        t += task_ns;
        pmp_window_done(w, 0, t);
        pmp_window_sent(w, 0, 1, t);
    }
    return t;
}

static void s_test_sizes(void)
{
    errno = 0;
    CHECK(pmp_window_new(0, 4, MS) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(pmp_window_new(3, 2, MS) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(pmp_window_new(1, 2, -1) == NULL && errno == EINVAL);
    pmp_window_destroy(NULL);
    pmp_window_t *w = pmp_window_new(2, 2, MS);
    CHECK(w && pmp_window_limit(w) == 2);
    s_run(w, 1, 100, 1); /* a fixed window never moves */
    CHECK(pmp_window_limit(w) == 2);
    pmp_window_destroy(&w);
    CHECK(w == NULL);
    w = pmp_window_new(2, 32, 0);
    CHECK(pmp_window_limit(w) == 32);
    s_run(w, 1, 10, 10 * MS);
    CHECK(pmp_window_limit(w) == 32 && pmp_window_task_ns(w) == 0);
    pmp_window_destroy(&w);
}

static void s_test_follows(void)
{
    pmp_window_t *w = pmp_window_new(2, 32, 2 * MS);
    CHECK(pmp_window_limit(w) == 2 && pmp_window_task_ns(w) == 0);
    /* an idle group: its first sample is the round trip from the send */
    pmp_window_sent(w, 0, 0, 1000 * MS);
    pmp_window_done(w, 0, 1000 * MS + 200 * US);
    CHECK(pmp_window_task_ns(w) == 200 * US);
    CHECK(pmp_window_limit(w) == 2); /* not before PMP_WINDOW_WARM results */
    for (int i = 1; i < PMP_WINDOW_WARM; i++) {
        CHECK(pmp_window_limit(w) == 2);
        pmp_window_sent(w, 0, 0, 1000 * MS + i * MS);
        pmp_window_done(w, 0, 1000 * MS + i * MS + 200 * US);
    }
    CHECK(pmp_window_task_ns(w) == 200 * US);
    CHECK(pmp_window_limit(w) == 10);
    pmp_window_sent(w, 0, 0, 1001 * MS);
    int64_t t = s_run(w, 1001 * MS, 200, 20 * US);
    CHECK(pmp_window_task_ns(w) < 21 * US && pmp_window_task_ns(w) >= 20 * US);
    CHECK(pmp_window_limit(w) == 32);
    /* 100 us a task: 2 ms hold 20 of them */
    t = s_run(w, t, 200, 100 * US);
    CHECK(pmp_window_limit(w) >= 19 && pmp_window_limit(w) <= 20);
    /* one task of a second closes it at once */
    t = s_run(w, t, 1, 1000 * MS);
    CHECK(pmp_window_limit(w) == 2);
    /* short ones reopen it, not at once but within a hundred results */
    t = s_run(w, t, 5, 20 * US);
    CHECK(pmp_window_limit(w) == 2);
    t = s_run(w, t, 150, 20 * US);
    CHECK(pmp_window_limit(w) == 32);
    /* bursts: 4 results read together every 160 us are 40 us a task */
    for (int i = 0; i < 400; i++) {
        t += 160 * US;
        for (int k = 0; k < 4; k++) {
            pmp_window_done(w, 0, t);
            pmp_window_sent(w, 0, 3, t);
        }
    }
    CHECK(pmp_window_task_ns(w) > 25 * US && pmp_window_task_ns(w) < 60 * US);
    pmp_window_reset(w);
    CHECK(pmp_window_limit(w) == 2 && pmp_window_task_ns(w) == 0);
    s_run(w, 1, PMP_WINDOW_WARM - 1, 10 * US); /* warming up again */
    CHECK(pmp_window_limit(w) == 2);
    s_run(w, 1 + PMP_WINDOW_WARM * 10 * US, 1, 10 * US);
    CHECK(pmp_window_limit(w) == 32);
    pmp_window_destroy(&w);
}

static void s_test_groups(void)
{
    pmp_window_t *w = pmp_window_new(1, 8, MS);
    /* far group numbers grow the table; a group busy since its send */
    pmp_window_sent(w, 1000, 0, 5 * MS);
    pmp_window_sent(w, 1000, 1, 5 * MS + 10 * US); /* busy: no new mark */
    pmp_window_done(w, 1000, 5 * MS + 500 * US);
    CHECK(pmp_window_task_ns(w) == 500 * US);
    CHECK(pmp_window_limit(w) == 1);
    pmp_window_done(w, 1000, 5 * MS + 600 * US); /* the second: 100 us after */
    CHECK(pmp_window_task_ns(w) == 500 * US - 400 * US / 8);
    /* a result for a group never sent to counts as no time */
    pmp_window_done(w, 7, 9 * MS);
    CHECK(pmp_window_task_ns(w) == 450 * US - 450 * US / 8);
    pmp_window_destroy(&w);
}

int main(void)
{
    s_test_sizes();
    s_test_follows();
    s_test_groups();
    return 0;
}
