/*
 * test_queue.c - unit test of pmp_queue (unit.queue): FIFO order, removal
 * by id from the head, middle and tail, unknown ids, duplicate ids, growth
 * of the hash map far past its initial size, and a long random sequence of
 * interleaved operations checked against a plain array model, and queues
 * that share one id map (moves between them, each id in one queue, the
 * map growing and outliving a queue destroyed).  Exits 0 on
 * success; prints the failing check and exits 1 otherwise.
 */
#include "pmp_queue.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_check.h"

/* Items are the ids themselves, offset so they are never NULL. */
static void *s_item(uint64_t id)
{
    return (void *)(uintptr_t)(id + 0x1000);
}

static void s_test_order(void)
{
    pmp_queue_t *q = pmp_queue_new();
    CHECK(q);
    CHECK(pmp_queue_pop(q, NULL) == NULL);
    CHECK(pmp_queue_peek(q, NULL) == NULL);
    for (uint64_t i = 1; i <= 10; i++)
        CHECK(pmp_queue_push(q, i, s_item(i)) == 0);
    CHECK(pmp_queue_size(q) == 10);
    CHECK(pmp_queue_push(q, 5, s_item(5)) == -1 && errno == EEXIST);
    CHECK(pmp_queue_push(q, 11, NULL) == -1 && errno == EINVAL);
    CHECK(pmp_queue_size(q) == 10);
    CHECK(pmp_queue_push_front(q, 0, s_item(0)) == 0);
    uint64_t id = 99;
    CHECK(pmp_queue_peek(q, &id) == s_item(0) && id == 0);
    for (uint64_t i = 0; i <= 10; i++) {
        CHECK(pmp_queue_pop(q, &id) == s_item(i));
        CHECK(id == i);
    }
    CHECK(pmp_queue_size(q) == 0);
    CHECK(pmp_queue_pop(q, &id) == NULL);
    pmp_queue_destroy(&q);
    CHECK(q == NULL);
    pmp_queue_destroy(&q); /* NULL-safe */
    pmp_queue_destroy(NULL);
}

static void s_test_remove(void)
{
    pmp_queue_t *q = pmp_queue_new();
    CHECK(q);
    for (uint64_t i = 1; i <= 5; i++)
        CHECK(pmp_queue_push(q, i, s_item(i)) == 0);
    CHECK(pmp_queue_remove(q, 1) == s_item(1)); /* head */
    CHECK(pmp_queue_remove(q, 3) == s_item(3)); /* middle */
    CHECK(pmp_queue_remove(q, 5) == s_item(5)); /* tail */
    CHECK(pmp_queue_remove(q, 5) == NULL);      /* already removed */
    CHECK(pmp_queue_remove(q, 42) == NULL);     /* unknown */
    CHECK(pmp_queue_find(q, 3) == NULL);
    CHECK(pmp_queue_find(q, 4) == s_item(4));
    CHECK(pmp_queue_size(q) == 2);
    uint64_t id;
    CHECK(pmp_queue_pop(q, &id) == s_item(2) && id == 2);
    CHECK(pmp_queue_pop(q, &id) == s_item(4) && id == 4);
    CHECK(pmp_queue_pop(q, &id) == NULL);
    /* the last element removed by id leaves a usable empty queue */
    CHECK(pmp_queue_push(q, 7, s_item(7)) == 0);
    CHECK(pmp_queue_remove(q, 7) == s_item(7));
    CHECK(pmp_queue_size(q) == 0 && pmp_queue_peek(q, NULL) == NULL);
    CHECK(pmp_queue_push(q, 8, s_item(8)) == 0);
    CHECK(pmp_queue_pop(q, &id) == s_item(8) && id == 8);
    pmp_queue_destroy(&q);
}

static void s_test_growth(void)
{
    enum { N = 100000 };
    pmp_queue_t *q = pmp_queue_new();
    CHECK(q);
    /* ids with a common stride, the worst case for a weak hash */
    for (uint64_t i = 0; i < N; i++)
        CHECK(pmp_queue_push(q, i << 20, s_item(i)) == 0);
    CHECK(pmp_queue_size(q) == N);
    for (uint64_t i = 0; i < N; i++)
        CHECK(pmp_queue_find(q, i << 20) == s_item(i));
    for (uint64_t i = 1; i < N; i += 2)
        CHECK(pmp_queue_remove(q, i << 20) == s_item(i));
    for (uint64_t i = 0; i < N; i += 2) {
        uint64_t id;
        CHECK(pmp_queue_pop(q, &id) == s_item(i) && id == i << 20);
    }
    CHECK(pmp_queue_size(q) == 0);
    pmp_queue_destroy(&q); /* also frees with items still linked: */
    q = pmp_queue_new();
    for (uint64_t i = 1; i < 1000; i++)
        CHECK(pmp_queue_push(q, i, s_item(i)) == 0);
    pmp_queue_destroy(&q);
}

/* Random push / push_front / pop / remove / find against an array model. */
static void s_test_model(void)
{
    enum { OPS = 200000, CAP = 4096 };
    static uint64_t model[CAP];
    size_t n = 0;
    uint64_t next_id = 1;
    unsigned int seed = 12345;
    pmp_queue_t *q = pmp_queue_new();
    CHECK(q);
    for (int op = 0; op < OPS; op++) {
        int r = rand_r(&seed) % 100;
        if (r < 40 && n < CAP) {
            uint64_t id = next_id++ * 7919;
            CHECK(pmp_queue_push(q, id, s_item(id)) == 0);
            model[n++] = id;
        } else if (r < 45 && n < CAP) {
            uint64_t id = next_id++ * 7919;
            CHECK(pmp_queue_push_front(q, id, s_item(id)) == 0);
            memmove(model + 1, model, n * sizeof *model);
            model[0] = id;
            n++;
        } else if (r < 70) {
            uint64_t id;
            void *it = pmp_queue_pop(q, &id);
            if (n == 0) {
                CHECK(it == NULL);
            } else {
                CHECK(it == s_item(model[0]) && id == model[0]);
                memmove(model, model + 1, (n - 1) * sizeof *model);
                n--;
            }
        } else if (r < 90 && n > 0) {
            size_t k = (size_t)rand_r(&seed) % n;
            uint64_t id = model[k];
            CHECK(pmp_queue_remove(q, id) == s_item(id));
            CHECK(pmp_queue_remove(q, id) == NULL);
            memmove(model + k, model + k + 1, (n - k - 1) * sizeof *model);
            n--;
        } else {
            uint64_t id = (uint64_t)rand_r(&seed) % (next_id * 7919 + 10);
            int present = 0;
            for (size_t k = 0; k < n; k++)
                present |= model[k] == id;
            CHECK((pmp_queue_find(q, id) != NULL) == present);
            if (present)
                CHECK(pmp_queue_push(q, id, s_item(id)) == -1 && errno == EEXIST);
        }
        CHECK(pmp_queue_size(q) == n);
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t id;
        CHECK(pmp_queue_pop(q, &id) == s_item(model[k]) && id == model[k]);
    }
    CHECK(pmp_queue_size(q) == 0);
    pmp_queue_destroy(&q);
}

static void s_collect(uint64_t id, void *item, void *arg)
{
    uint64_t **out = arg;
    CHECK(item == s_item(id));
    *(*out)++ = id;
}

static void s_test_foreach(void)
{
    pmp_queue_t *q = pmp_queue_new();
    CHECK(q);
    uint64_t seen[8], *p = seen;
    pmp_queue_foreach(q, s_collect, &p);
    CHECK(p == seen); /* empty: never called */
    for (uint64_t i = 1; i <= 5; i++)
        CHECK(pmp_queue_push(q, i * 10, s_item(i * 10)) == 0);
    CHECK(pmp_queue_push_front(q, 7, s_item(7)) == 0);
    CHECK(pmp_queue_remove(q, 30) == s_item(30));
    pmp_queue_foreach(q, s_collect, &p);
    static const uint64_t want[] = {7, 10, 20, 40, 50};
    CHECK(p - seen == 5 && memcmp(seen, want, sizeof want) == 0);
    CHECK(pmp_queue_size(q) == 5); /* unchanged */
    pmp_queue_destroy(&q);
}

/* Two queues sharing one id map: an id in one of them, moves between them
 * that keep both orders, growth of the map with ids of both, and the map
 * outliving the first queue destroyed. */
static void s_test_sharing(void)
{
    pmp_queue_t *a = pmp_queue_new();
    CHECK(a);
    CHECK(pmp_queue_new_sharing(NULL) == NULL && errno == EINVAL);
    pmp_queue_t *b = pmp_queue_new_sharing(a), *other = pmp_queue_new();
    CHECK(b && other);
    enum { N = 5000 }; /* the map grows many times over, holding ids of both */
    for (uint64_t i = 1; i <= N; i++)
        CHECK(pmp_queue_push(a, i, s_item(i)) == 0);
    CHECK(pmp_queue_push(b, 7, s_item(7)) == -1 && errno == EEXIST); /* a holds it */
    CHECK(pmp_queue_push(other, 7, s_item(7)) == 0);                 /* its own map */
    CHECK(pmp_queue_find(b, 7) == NULL && pmp_queue_remove(b, 7) == NULL);
    CHECK(pmp_queue_move_head(a, other, NULL) == NULL); /* no shared map */
    CHECK(pmp_queue_move_head(b, a, NULL) == NULL);     /* b is empty */
    /* the first half moves to b, in order */
    for (uint64_t i = 1; i <= N / 2; i++) {
        uint64_t id = 0;
        CHECK(pmp_queue_move_head(a, b, &id) == s_item(i) && id == i);
    }
    CHECK(pmp_queue_size(a) == N - N / 2 && pmp_queue_size(b) == N / 2);
    for (uint64_t i = 1; i <= N; i++) { /* each id is found in its queue only */
        pmp_queue_t *in = i <= N / 2 ? b : a, *out = i <= N / 2 ? a : b;
        CHECK(pmp_queue_find(in, i) == s_item(i) && pmp_queue_find(out, i) == NULL);
    }
    CHECK(pmp_queue_push(a, 3, s_item(3)) == -1 && errno == EEXIST); /* b holds it */
    CHECK(pmp_queue_remove(a, 3) == NULL && pmp_queue_remove(b, 3) == s_item(3));
    CHECK(pmp_queue_push_front(a, 3, s_item(3)) == 0); /* free again: now a's */
    uint64_t id = 0;
    CHECK(pmp_queue_peek(a, &id) == s_item(3) && id == 3);
    for (uint64_t i = N / 2 + 1; i <= N; i++) /* ids of both while the map grows */
        CHECK(pmp_queue_push(b, N + i, s_item(N + i)) == 0);
    CHECK(pmp_queue_find(b, 2 * N) == s_item(2 * N) && pmp_queue_find(a, N) == s_item(N));
    CHECK(pmp_queue_pop(b, &id) == s_item(1) && id == 1);
    CHECK(pmp_queue_pop(b, &id) == s_item(2) && id == 2);
    CHECK(pmp_queue_pop(b, &id) == s_item(4) && id == 4);
    /* destroying one queue takes its ids out of the map the other keeps */
    size_t left_in_b = pmp_queue_size(b);
    pmp_queue_destroy(&a);
    CHECK(a == NULL && pmp_queue_size(b) == left_in_b);
    pmp_queue_t *c = pmp_queue_new_sharing(b);
    CHECK(c && pmp_queue_push(c, N, s_item(N)) == 0); /* a's id, free now */
    CHECK(pmp_queue_find(b, 5) == s_item(5) && pmp_queue_find(c, 5) == NULL);
    pmp_queue_destroy(&b);
    CHECK(pmp_queue_find(c, N) == s_item(N) && pmp_queue_size(c) == 1);
    pmp_queue_destroy(&c);
    pmp_queue_destroy(&other);
}

int main(void)
{
    s_test_foreach();
    s_test_order();
    s_test_remove();
    s_test_growth();
    s_test_model();
    s_test_sharing();
    printf("unit.queue: ok\n");
    return 0;
}
