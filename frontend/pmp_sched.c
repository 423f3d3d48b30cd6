/*
 * pmp_sched.c - the group table of the executor (see pmp_sched.h).
 *
 * Why: the I/O thread looks a group up by its ZeroMQ identity on every
 * message it receives and chooses a group for every task it sends.  Both
 * used to be linear scans over the groups; with thousands of groups (one
 * frontend feeding thousands of serial workers) that cost grows with the
 * job.  Here both are independent of the number of groups.
 *
 * How: the groups live in one array, numbered in the order they were
 * added.  An open-addressing hash map (FNV-1a of the identity bytes, linear
 * probing, power-of-two capacity, load factor at most 1/2, no deletion
 * because groups are never removed) maps an identity to its number.  Every
 * live group with room (load < depth) is linked into the doubly linked list
 * of its load, bucket[load], appended at the tail when it arrives there.
 * pick() returns the head of the lowest non-empty bucket: the least loaded
 * group, and among those the one that has waited longest, which spreads
 * tasks round-robin over idle groups.  inc/dec move one group between two
 * neighbouring buckets; a full group (load == depth) and a retired group
 * are in no bucket.  Links are array indices, so growing the array does not
 * invalidate them.  An identity of up to S_SMALL_ID bytes (ZeroMQ makes
 * 5-byte ones) is kept in its member, so a lookup touches the slot and the
 * member and nothing else: one cache miss less for every message received
 * (bench/frontend_scale.c).
 */
#include "pmp_sched.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S_NONE PMP_SCHED_NONE
#define S_MIN_SLOTS 16
/* Identities up to this long (ZeroMQ's own are 5 bytes) live in the member. */
#define S_SMALL_ID 16

typedef struct {
    unsigned char *identity; /* a copy of a long one; NULL when it fits in small */
    unsigned char small[S_SMALL_ID];
    size_t len;
    uint64_t hash;
    size_t load;
    int retired;
    size_t prev, next; /* links in bucket[load] while linked */
} s_member_t;

struct pmp_sched {
    size_t depth;
    s_member_t *members;
    size_t count, cap;
    size_t live;
    size_t *heads, *tails; /* depth buckets */
    size_t *sizes;         /* members in each bucket */
    size_t *slots;         /* hash map: member index, S_NONE = empty */
    size_t mask;           /* number of slots - 1 */
};

static uint64_t s_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

pmp_sched_t *pmp_sched_new(size_t depth)
{
    if (depth < 1) {
        errno = EINVAL;
        return NULL;
    }
    pmp_sched_t *self = calloc(1, sizeof *self);
    if (!self)
        goto nomem;
    self->depth = depth;
    self->heads = malloc(depth * sizeof *self->heads);
    self->tails = malloc(depth * sizeof *self->tails);
    self->sizes = calloc(depth, sizeof *self->sizes);
    self->slots = malloc(S_MIN_SLOTS * sizeof *self->slots);
    if (!self->heads || !self->tails || !self->sizes || !self->slots)
        goto nomem;
    for (size_t l = 0; l < depth; l++)
        self->heads[l] = self->tails[l] = S_NONE;
    for (size_t i = 0; i < S_MIN_SLOTS; i++)
        self->slots[i] = S_NONE;
    self->mask = S_MIN_SLOTS - 1;
    return self;
nomem:
    pmp_sched_destroy(&self);
    errno = ENOMEM;
    return NULL;
}

void pmp_sched_destroy(pmp_sched_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_sched_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        free(self->members[i].identity);
    free(self->members);
    free(self->heads);
    free(self->tails);
    free(self->sizes);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

/* ---- buckets -------------------------------------------------------------- */

static int s_linked(const pmp_sched_t *self, const s_member_t *m)
{
    return !m->retired && m->load < self->depth;
}

static void s_link(pmp_sched_t *self, size_t i)
{
    s_member_t *m = &self->members[i];
    size_t l = m->load;
    m->next = S_NONE;
    m->prev = self->tails[l];
    if (m->prev != S_NONE)
        self->members[m->prev].next = i;
    else
        self->heads[l] = i;
    self->tails[l] = i;
    self->sizes[l]++;
}

static void s_unlink(pmp_sched_t *self, size_t i)
{
    s_member_t *m = &self->members[i];
    size_t l = m->load;
    if (m->prev != S_NONE)
        self->members[m->prev].next = m->next;
    else
        self->heads[l] = m->next;
    if (m->next != S_NONE)
        self->members[m->next].prev = m->prev;
    else
        self->tails[l] = m->prev;
    m->prev = m->next = S_NONE;
    self->sizes[l]--;
}

/* ---- hash map ------------------------------------------------------------- */

/* The identity bytes of m. */
static const unsigned char *s_id(const s_member_t *m)
{
    return m->identity ? m->identity : m->small;
}

/* Slot holding the member with this identity, or the empty slot where it
 * would go. */
static size_t s_probe(const pmp_sched_t *self, const void *identity, size_t len, uint64_t h)
{
    size_t i = (size_t)h & self->mask;
    while (self->slots[i] != S_NONE) {
        const s_member_t *m = &self->members[self->slots[i]];
        if (m->hash == h && m->len == len && memcmp(s_id(m), identity, len) == 0)
            break;
        i = (i + 1) & self->mask;
    }
    return i;
}

static int s_grow_slots(pmp_sched_t *self)
{
    size_t n = (self->mask + 1) * 2;
    size_t *slots = malloc(n * sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < n; i++)
        slots[i] = S_NONE;
    free(self->slots);
    self->slots = slots;
    self->mask = n - 1;
    for (size_t k = 0; k < self->count; k++) {
        size_t i = (size_t)self->members[k].hash & self->mask;
        while (self->slots[i] != S_NONE)
            i = (i + 1) & self->mask;
        self->slots[i] = k;
    }
    return 0;
}

/* ---- public --------------------------------------------------------------- */

int pmp_sched_add(pmp_sched_t *self, const void *identity, size_t len, size_t *index)
{
    if (!identity || len == 0) {
        errno = EINVAL;
        return -1;
    }
    uint64_t h = s_hash(identity, len);
    size_t slot = s_probe(self, identity, len, h);
    if (self->slots[slot] != S_NONE) {
        if (index)
            *index = self->slots[slot];
        errno = EEXIST;
        return -1;
    }
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 8;
        s_member_t *members = realloc(self->members, cap * sizeof *members);
        if (!members)
            goto nomem;
        self->members = members;
        self->cap = cap;
    }
    unsigned char *copy = len > S_SMALL_ID ? malloc(len) : NULL;
    if (len > S_SMALL_ID && !copy)
        goto nomem;
    if ((self->count + 1) * 2 > self->mask + 1) {
        if (s_grow_slots(self) < 0) {
            free(copy);
            goto nomem;
        }
        slot = s_probe(self, identity, len, h);
    }
    size_t i = self->count++;
    self->members[i] = (s_member_t){.identity = copy, .len = len, .hash = h};
    memcpy(copy ? copy : self->members[i].small, identity, len);
    self->slots[slot] = i;
    self->live++;
    s_link(self, i);
    if (index)
        *index = i;
    return 0;
nomem:
    errno = ENOMEM;
    return -1;
}

size_t pmp_sched_find(const pmp_sched_t *self, const void *identity, size_t len)
{
    if (!identity || len == 0)
        return S_NONE;
    return self->slots[s_probe(self, identity, len, s_hash(identity, len))];
}

size_t pmp_sched_pick(const pmp_sched_t *self)
{
    for (size_t l = 0; l < self->depth; l++)
        if (self->heads[l] != S_NONE)
            return self->heads[l];
    return S_NONE;
}

size_t pmp_sched_up_to(const pmp_sched_t *self, size_t load)
{
    size_t n = 0;
    for (size_t l = 0; l <= load && l < self->depth; l++)
        n += self->sizes[l];
    return n;
}

void pmp_sched_inc(pmp_sched_t *self, size_t i)
{
    assert(i < self->count);
    s_member_t *m = &self->members[i];
    assert(m->load < self->depth);
    if (s_linked(self, m))
        s_unlink(self, i);
    m->load++;
    if (s_linked(self, m))
        s_link(self, i);
}

void pmp_sched_dec(pmp_sched_t *self, size_t i)
{
    assert(i < self->count);
    s_member_t *m = &self->members[i];
    assert(m->load > 0);
    if (s_linked(self, m))
        s_unlink(self, i);
    m->load--;
    if (s_linked(self, m))
        s_link(self, i);
}

size_t pmp_sched_load(const pmp_sched_t *self, size_t i)
{
    assert(i < self->count);
    return self->members[i].load;
}

void pmp_sched_retire(pmp_sched_t *self, size_t i)
{
    assert(i < self->count);
    s_member_t *m = &self->members[i];
    if (m->retired)
        return;
    if (s_linked(self, m))
        s_unlink(self, i);
    m->retired = 1;
    self->live--;
}

int pmp_sched_retired(const pmp_sched_t *self, size_t i)
{
    assert(i < self->count);
    return self->members[i].retired;
}

size_t pmp_sched_count(const pmp_sched_t *self)
{
    return self->count;
}

size_t pmp_sched_live(const pmp_sched_t *self)
{
    return self->live;
}
