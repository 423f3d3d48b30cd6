/*
 * pmp_keyset.c - a set of non-zero 64-bit keys (see pmp_keyset.h).
 *
 * Why its own type: the executor needs to know which function keys are
 * defined, nothing else; a keyed queue with a dummy item per key said more
 * than it meant and cost a node per key.
 *
 * How: a power-of-two table of keys, 0 marking an empty slot.  A key's
 * home slot is its hash (a multiplicative mix, since keys are often small
 * consecutive numbers); it is stored at the first empty slot from there.
 * The table is kept at most half full, so a probe is short.  Deleting
 * shifts the keys behind the hole back when the hole lies on their probe
 * path (the classic backward-shift deletion), so a lookup can stop at the
 * first empty slot and no tombstones are needed.
 */
#include "pmp_keyset.h"

#include <errno.h>
#include <stdlib.h>

#define S_MIN_SLOTS 16

struct pmp_keyset {
    uint64_t *slots;
    size_t mask; /* slots - 1 */
    size_t size;
};

static size_t s_home(const pmp_keyset_t *self, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 17) & self->mask;
}

pmp_keyset_t *pmp_keyset_new(void)
{
    pmp_keyset_t *self = calloc(1, sizeof *self);
    if (self)
        self->slots = calloc(S_MIN_SLOTS, sizeof *self->slots);
    if (!self || !self->slots) {
        free(self);
        errno = ENOMEM;
        return NULL;
    }
    self->mask = S_MIN_SLOTS - 1;
    return self;
}

void pmp_keyset_destroy(pmp_keyset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t s_find(const pmp_keyset_t *self, uint64_t key)
{
    size_t i = s_home(self, key);
    while (self->slots[i] != 0 && self->slots[i] != key)
        i = (i + 1) & self->mask;
    return i;
}

static int s_grow(pmp_keyset_t *self)
{
    size_t n = (self->mask + 1) * 2;
    uint64_t *slots = calloc(n, sizeof *slots);
    if (!slots) {
        errno = ENOMEM;
        return -1;
    }
    uint64_t *old = self->slots;
    size_t old_n = self->mask + 1;
    self->slots = slots;
    self->mask = n - 1;
    for (size_t i = 0; i < old_n; i++)
        if (old[i] != 0)
            self->slots[s_find(self, old[i])] = old[i];
    free(old);
    return 0;
}

int pmp_keyset_add(pmp_keyset_t *self, uint64_t key)
{
    if (key == 0) {
        errno = EINVAL;
        return -1;
    }
    if (self->slots[s_find(self, key)] == key)
        return 0;
    if (2 * (self->size + 1) > self->mask + 1 && s_grow(self) < 0)
        return -1;
    self->slots[s_find(self, key)] = key;
    self->size++;
    return 1;
}

int pmp_keyset_has(const pmp_keyset_t *self, uint64_t key)
{
    return key != 0 && self->slots[s_find(self, key)] == key;
}

int pmp_keyset_del(pmp_keyset_t *self, uint64_t key)
{
    if (key == 0)
        return 0;
    size_t hole = s_find(self, key);
    if (self->slots[hole] != key)
        return 0;
    self->slots[hole] = 0;
    self->size--;
    /* Shift back the keys after the hole whose probe path crosses it. */
    for (size_t i = (hole + 1) & self->mask; self->slots[i] != 0; i = (i + 1) & self->mask) {
        size_t home = s_home(self, self->slots[i]);
        /* the key at i may move to the hole when its home is not in the
         * cyclic range (hole, i] */
        int home_after_hole = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!home_after_hole) {
            self->slots[hole] = self->slots[i];
            self->slots[i] = 0;
            hole = i;
        }
    }
    return 1;
}

size_t pmp_keyset_size(const pmp_keyset_t *self)
{
    return self->size;
}
