/*
 * pmp_queue.c - the executor's task queue: a FIFO with O(1) removal by id.
 *
 * Tasks wait here between pmp_executor_submit() and the moment the I/O
 * thread hands them to a group; the executor also keeps the tasks in flight
 * in a second queue so that a RESULT finds its task in O(1).  cancel()
 * needs to take a task out of the middle, so the order lives in a doubly
 * linked list of nodes, and an open-addressing hash map (linear probing,
 * power-of-two capacity, load factor at most 1/2, backward-shift deletion so
 * there are no tombstones) maps each id to its node.  Every operation is
 * O(1) expected; growth doubles the table and rehashes (amortised O(1)).
 * A failed push leaves the queue exactly as it was.  There is no locking
 * here: the owner serialises access.
 *
 * Cache misses are the cost that matters: the executor's I/O thread pops,
 * pushes, finds and removes a task in these tables for every task, and with
 * thousands of groups the tables hold thousands of ids.  So a slot keeps
 * the id next to its node: a probe and the backward shift of a deletion
 * compare and rehash the ids in the slot array itself and never follow a
 * node pointer they do not need (benchmark: bench/frontend_scale.c), a
 * push probes once, and up to S_MAX_SPARE nodes of removed items are kept
 * for the next pushes instead of a free() and a malloc() per item.
 */
#include "pmp_queue.h"

#include <errno.h>
#include <stdlib.h>

typedef struct s_node {
    struct s_node *prev, *next;
    uint64_t id;
    void *item;
} s_node_t;

typedef struct {
    uint64_t id;
    s_node_t *node;
} s_slot_t;

struct pmp_queue {
    s_node_t *head, *tail;
    size_t size;
    s_slot_t *slots; /* hash map id -> node; node NULL = empty slot */
    size_t mask;     /* capacity - 1 */
    s_node_t *spare; /* nodes of removed items, kept for the next push (linked by next) */
    size_t nspare;
};

#define S_MIN_CAPACITY 16
#define S_MAX_SPARE 64

static size_t s_hash(uint64_t id)
{
    /* splitmix64 finaliser: consecutive ids spread over the table */
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ULL;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebULL;
    id ^= id >> 31;
    return (size_t)id;
}

pmp_queue_t *pmp_queue_new(void)
{
    pmp_queue_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->slots = calloc(S_MIN_CAPACITY, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        errno = ENOMEM;
        return NULL;
    }
    self->mask = S_MIN_CAPACITY - 1;
    return self;
}

void pmp_queue_destroy(pmp_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_queue_t *self = *self_p;
    s_node_t *lists[] = {self->head, self->spare};
    for (size_t l = 0; l < 2; l++) {
        s_node_t *n = lists[l];
        while (n) {
            s_node_t *next = n->next;
            free(n);
            n = next;
        }
    }
    free(self->slots);
    free(self);
    *self_p = NULL;
}

/* Index of id's slot, or of the empty slot where it would go. */
static size_t s_probe(const pmp_queue_t *self, uint64_t id)
{
    size_t i = s_hash(id) & self->mask;
    while (self->slots[i].node && self->slots[i].id != id)
        i = (i + 1) & self->mask;
    return i;
}

static int s_grow(pmp_queue_t *self)
{
    size_t cap = (self->mask + 1) * 2;
    s_slot_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    free(self->slots);
    self->slots = slots;
    self->mask = cap - 1;
    for (s_node_t *n = self->head; n; n = n->next)
        self->slots[s_probe(self, n->id)] = (s_slot_t){n->id, n};
    return 0;
}

static int s_insert(pmp_queue_t *self, uint64_t id, void *item, int front)
{
    if (!item) {
        errno = EINVAL;
        return -1;
    }
    size_t slot = s_probe(self, id);
    if (self->slots[slot].node) {
        errno = EEXIST;
        return -1;
    }
    if ((self->size + 1) * 2 > self->mask + 1) {
        if (s_grow(self) < 0) {
            errno = ENOMEM;
            return -1;
        }
        slot = s_probe(self, id);
    }
    s_node_t *n = self->spare;
    if (n) {
        self->spare = n->next;
        self->nspare--;
    } else if (!(n = malloc(sizeof *n))) {
        errno = ENOMEM;
        return -1; /* a grown table is still a valid table */
    }
    n->id = id;
    n->item = item;
    if (front) {
        n->prev = NULL;
        n->next = self->head;
        if (self->head)
            self->head->prev = n;
        else
            self->tail = n;
        self->head = n;
    } else {
        n->next = NULL;
        n->prev = self->tail;
        if (self->tail)
            self->tail->next = n;
        else
            self->head = n;
        self->tail = n;
    }
    self->slots[slot] = (s_slot_t){id, n};
    self->size++;
    return 0;
}

int pmp_queue_push(pmp_queue_t *self, uint64_t id, void *item)
{
    return s_insert(self, id, item, 0);
}

int pmp_queue_push_front(pmp_queue_t *self, uint64_t id, void *item)
{
    return s_insert(self, id, item, 1);
}

/* Empties slot i and shifts later members of its probe run back so that
 * lookups never stop early at a hole. */
static void s_slot_delete(pmp_queue_t *self, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & self->mask;
        if (!self->slots[j].node)
            break;
        size_t k = s_hash(self->slots[j].id) & self->mask;
        /* move j back to i unless its home k lies cyclically in (i, j] */
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            self->slots[i] = self->slots[j];
            i = j;
        }
    }
    self->slots[i].node = NULL;
}

static void *s_unlink(pmp_queue_t *self, s_node_t *n, size_t slot, uint64_t *id)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        self->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        self->tail = n->prev;
    s_slot_delete(self, slot);
    self->size--;
    void *item = n->item;
    if (id)
        *id = n->id;
    if (self->nspare < S_MAX_SPARE) {
        n->next = self->spare;
        self->spare = n;
        self->nspare++;
    } else {
        free(n);
    }
    return item;
}

void *pmp_queue_pop(pmp_queue_t *self, uint64_t *id)
{
    if (!self->head)
        return NULL;
    s_node_t *n = self->head;
    return s_unlink(self, n, s_probe(self, n->id), id);
}

void *pmp_queue_peek(const pmp_queue_t *self, uint64_t *id)
{
    if (!self->head)
        return NULL;
    if (id)
        *id = self->head->id;
    return self->head->item;
}

void *pmp_queue_remove(pmp_queue_t *self, uint64_t id)
{
    size_t i = s_probe(self, id);
    if (!self->slots[i].node)
        return NULL;
    return s_unlink(self, self->slots[i].node, i, NULL);
}

void *pmp_queue_find(const pmp_queue_t *self, uint64_t id)
{
    s_node_t *n = self->slots[s_probe(self, id)].node;
    return n ? n->item : NULL;
}

void pmp_queue_prefetch(const pmp_queue_t *self, uint64_t id)
{
    __builtin_prefetch(&self->slots[s_hash(id) & self->mask]);
}

size_t pmp_queue_size(const pmp_queue_t *self)
{
    return self->size;
}

void pmp_queue_foreach(const pmp_queue_t *self, void (*fn)(uint64_t id, void *item, void *arg),
                       void *arg)
{
    for (const s_node_t *n = self->head; n; n = n->next)
        fn(n->id, n->item, arg);
}
