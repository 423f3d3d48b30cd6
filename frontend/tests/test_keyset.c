/*
 * test_keyset.c - unit test of pmp_keyset (unit.keyset): the set agrees
 * with a plain array model through random adds and deletes (many keys on
 * few home slots, so that probe chains form, wrap around and are shifted
 * back on delete), key 0 refused, growth.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "pmp_check.h"
#include "pmp_keyset.h"

#define S_KEYS 3000

static uint64_t s_rng = 0x2545F4914F6CDD1DULL;
static uint64_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

int main(void)
{
    pmp_keyset_t *set = pmp_keyset_new();
    CHECK(set != NULL && pmp_keyset_size(set) == 0);
    errno = 0;
    CHECK(pmp_keyset_add(set, 0) == -1 && errno == EINVAL);
    CHECK(!pmp_keyset_has(set, 0) && pmp_keyset_del(set, 0) == 0);

    /* the model: in[k] says whether key k + 1 is in the set */
    static unsigned char in[S_KEYS];
    size_t size = 0;
    for (int round = 0; round < 200000; round++) {
        uint64_t k = s_rand() % S_KEYS;
        /* small keys and keys spread over 64 bits, both */
        uint64_t key = (k % 2) ? k + 1 : (k + 1) << 40;
        switch (s_rand() % 3) {
        case 0:
        case 1: {
            int rc = pmp_keyset_add(set, key);
            CHECK(rc == (in[k] ? 0 : 1));
            size += !in[k];
            in[k] = 1;
            break;
        }
        default:
            CHECK(pmp_keyset_del(set, key) == in[k]);
            size -= in[k];
            in[k] = 0;
            break;
        }
        CHECK(pmp_keyset_size(set) == size);
        if (round % 997 == 0)
            for (uint64_t j = 0; j < S_KEYS; j++)
                CHECK(pmp_keyset_has(set, (j % 2) ? j + 1 : (j + 1) << 40) == in[j]);
    }
    /* empty it: every key found on the way out, none after */
    for (uint64_t j = 0; j < S_KEYS; j++)
        CHECK(pmp_keyset_del(set, (j % 2) ? j + 1 : (j + 1) << 40) == in[j]);
    CHECK(pmp_keyset_size(set) == 0);
    for (uint64_t j = 0; j < S_KEYS; j++)
        CHECK(!pmp_keyset_has(set, (j % 2) ? j + 1 : (j + 1) << 40));
    pmp_keyset_destroy(&set);
    CHECK(set == NULL);
    pmp_keyset_destroy(&set);
    return pmp_check_verdict("test_keyset");
}
