/*
 * test_sched.c - unit test of pmp_sched (unit.sched): identities found and
 * duplicates refused, the least loaded group picked and ties spread
 * round-robin, full and retired groups never picked, growth far past the
 * initial sizes, and a long random sequence of operations on 1000 groups
 * checked against a brute-force model (the linear scan the executor used to
 * do).  Exits 0 on success; prints the failing check and exits 1 otherwise.
 */
#include "pmp_sched.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_check.h"

static uint64_t s_rng = 0x9e3779b97f4a7c15ULL;

static uint32_t s_rand(void)
{
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return (uint32_t)((s_rng * 0x2545f4914f6cdd1dULL) >> 32);
}

/* ZeroMQ-like identities: 5 bytes, a zero byte then a 32-bit counter. */
static void s_identity(unsigned char id[5], uint32_t n)
{
    id[0] = 0;
    memcpy(id + 1, &n, 4);
}

static void s_test_basics(void)
{
    CHECK(pmp_sched_new(0) == NULL && errno == EINVAL);
    pmp_sched_t *s = pmp_sched_new(2);
    CHECK(s);
    CHECK(pmp_sched_pick(s) == PMP_SCHED_NONE);
    CHECK(pmp_sched_count(s) == 0 && pmp_sched_live(s) == 0);
    size_t i = 99;
    CHECK(pmp_sched_add(s, "a", 0, &i) == -1 && errno == EINVAL);
    CHECK(pmp_sched_add(s, NULL, 1, &i) == -1 && errno == EINVAL);
    CHECK(pmp_sched_add(s, "alpha", 5, &i) == 0 && i == 0);
    CHECK(pmp_sched_add(s, "beta", 4, &i) == 0 && i == 1);
    CHECK(pmp_sched_add(s, "gamma", 5, &i) == 0 && i == 2);
    i = 99;
    CHECK(pmp_sched_add(s, "beta", 4, &i) == -1 && errno == EEXIST && i == 1);
    CHECK(pmp_sched_count(s) == 3 && pmp_sched_live(s) == 3);
    CHECK(pmp_sched_find(s, "alpha", 5) == 0);
    CHECK(pmp_sched_find(s, "gamma", 5) == 2);
    CHECK(pmp_sched_find(s, "gamm", 4) == PMP_SCHED_NONE);
    CHECK(pmp_sched_find(s, "alphaX", 6) == PMP_SCHED_NONE);
    CHECK(pmp_sched_find(s, "", 0) == PMP_SCHED_NONE);

    /* Round-robin over idle groups, then the second slot of each. */
    size_t order[6];
    for (int k = 0; k < 6; k++) {
        order[k] = pmp_sched_pick(s);
        CHECK(order[k] != PMP_SCHED_NONE);
        pmp_sched_inc(s, order[k]);
    }
    static const size_t want[6] = {0, 1, 2, 0, 1, 2};
    CHECK(memcmp(order, want, sizeof want) == 0);
    CHECK(pmp_sched_pick(s) == PMP_SCHED_NONE); /* all full */
    CHECK(pmp_sched_load(s, 1) == 2);
    CHECK(pmp_sched_up_to(s, 1) == 0 && pmp_sched_up_to(s, 99) == 0); /* full: no room */

    /* The group that gets room first is picked first. */
    pmp_sched_dec(s, 2);
    pmp_sched_dec(s, 0);
    CHECK(pmp_sched_pick(s) == 2);
    CHECK(pmp_sched_up_to(s, 0) == 0 && pmp_sched_up_to(s, 1) == 2);
    pmp_sched_dec(s, 0); /* 0 is now idle: lower load wins over 2 */
    CHECK(pmp_sched_pick(s) == 0);
    CHECK(pmp_sched_up_to(s, 0) == 1 && pmp_sched_up_to(s, 1) == 2);

    /* Retired: never picked, still found, load still tracked. */
    pmp_sched_retire(s, 0);
    pmp_sched_retire(s, 0); /* idempotent */
    CHECK(pmp_sched_retired(s, 0) && !pmp_sched_retired(s, 1));
    CHECK(pmp_sched_live(s) == 2);
    CHECK(pmp_sched_up_to(s, 1) == 1); /* a retired group has no room */
    CHECK(pmp_sched_pick(s) == 2);
    CHECK(pmp_sched_find(s, "alpha", 5) == 0);
    pmp_sched_retire(s, 2);
    CHECK(pmp_sched_pick(s) == PMP_SCHED_NONE); /* 1 is full */
    pmp_sched_dec(s, 2);                        /* a retired group's task ends */
    CHECK(pmp_sched_load(s, 2) == 0);
    CHECK(pmp_sched_pick(s) == PMP_SCHED_NONE);
    pmp_sched_dec(s, 1);
    CHECK(pmp_sched_pick(s) == 1);
    pmp_sched_destroy(&s);
    CHECK(s == NULL);
    pmp_sched_destroy(&s); /* NULL-safe */
    pmp_sched_destroy(NULL);
}

static void s_test_growth(void)
{
    enum { N = 50000 };
    pmp_sched_t *s = pmp_sched_new(1);
    CHECK(s);
    unsigned char id[5];
    for (uint32_t n = 0; n < N; n++) {
        size_t i;
        s_identity(id, n);
        CHECK(pmp_sched_add(s, id, sizeof id, &i) == 0 && i == n);
    }
    for (uint32_t n = 0; n < N; n++) {
        s_identity(id, n);
        CHECK(pmp_sched_find(s, id, sizeof id) == n);
    }
    s_identity(id, N);
    CHECK(pmp_sched_find(s, id, sizeof id) == PMP_SCHED_NONE);
    /* depth 1: picking fills the groups in order */
    for (uint32_t n = 0; n < N; n++) {
        size_t i = pmp_sched_pick(s);
        CHECK(i == n);
        pmp_sched_inc(s, i);
    }
    CHECK(pmp_sched_pick(s) == PMP_SCHED_NONE);
    pmp_sched_destroy(&s);
}

/* Identities of every length from 1 to 255 bytes (those up to 16 live in
 * the member, longer ones are copied apart), sharing their first bytes:
 * each is found by its own bytes and no other. */
static void s_test_lengths(void)
{
    pmp_sched_t *s = pmp_sched_new(2);
    CHECK(s);
    unsigned char id[255];
    memset(id, 'x', sizeof id);
    for (size_t len = 1; len <= sizeof id; len++) {
        size_t i;
        CHECK(pmp_sched_add(s, id, len, &i) == 0 && i == len - 1);
    }
    for (size_t len = 1; len <= sizeof id; len++)
        CHECK(pmp_sched_find(s, id, len) == len - 1);
    id[0] = 'y';
    for (size_t len = 1; len <= sizeof id; len++)
        CHECK(pmp_sched_find(s, id, len) == PMP_SCHED_NONE);
    id[0] = 'x';
    id[sizeof id - 1] = 'y';
    CHECK(pmp_sched_find(s, id, sizeof id) == PMP_SCHED_NONE);
    CHECK(pmp_sched_find(s, id, sizeof id - 1) == sizeof id - 2);
    pmp_sched_destroy(&s);
}

/* Random operations on G groups against a model: the lowest load wins, and
 * among equal loads the group that reached that load earliest. */
static void s_test_model(void)
{
    enum { G = 1000, DEPTH = 3, OPS = 300000 };
    static size_t load[G];
    static int retired[G];
    static uint64_t since[G]; /* when the group reached its current load */
    uint64_t clock = 0;
    pmp_sched_t *s = pmp_sched_new(DEPTH);
    CHECK(s);
    size_t added = 0;
    unsigned char id[5];
    for (int op = 0; op < OPS; op++) {
        uint32_t r = s_rand() % 100;
        if (added < G && (r < 2 || added == 0)) {
            size_t i;
            s_identity(id, (uint32_t)added * 7919u);
            CHECK(pmp_sched_add(s, id, sizeof id, &i) == 0 && i == added);
            load[i] = 0;
            retired[i] = 0;
            since[i] = clock++;
            added++;
        } else if (r < 50) {
            /* pick + inc, as the executor dispatches */
            size_t best = PMP_SCHED_NONE;
            for (size_t i = 0; i < added; i++)
                if (!retired[i] && load[i] < DEPTH &&
                    (best == PMP_SCHED_NONE || load[i] < load[best] ||
                     (load[i] == load[best] && since[i] < since[best])))
                    best = i;
            size_t got = pmp_sched_pick(s);
            if (got != best)
                fprintf(stderr, "op %d: picked %zu, model %zu\n", op, got, best);
            CHECK(got == best);
            if (got != PMP_SCHED_NONE) {
                pmp_sched_inc(s, got);
                load[got]++;
                since[got] = clock++;
            }
        } else if (r < 95) {
            size_t i = s_rand() % added;
            if (load[i] > 0) {
                pmp_sched_dec(s, i);
                load[i]--;
                since[i] = clock++;
            }
        } else if (r < 96) {
            size_t i = s_rand() % added;
            pmp_sched_retire(s, i);
            retired[i] = 1;
        } else {
            size_t i = s_rand() % added;
            s_identity(id, (uint32_t)i * 7919u);
            CHECK(pmp_sched_find(s, id, sizeof id) == i);
            CHECK(pmp_sched_load(s, i) == load[i]);
            CHECK(pmp_sched_retired(s, i) == retired[i]);
        }
    }
    size_t live = 0;
    for (size_t i = 0; i < added; i++)
        live += !retired[i];
    CHECK(pmp_sched_live(s) == live && pmp_sched_count(s) == added);
    CHECK(added == G);
    pmp_sched_destroy(&s);
}

int main(void)
{
    s_test_basics();
    s_test_growth();
    s_test_lengths();
    s_test_model();
    printf("test_sched: ok\n");
    return 0;
}
