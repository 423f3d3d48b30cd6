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
 * Queues that share one id map (pmp_queue_new_sharing): the executor's
 * queue of waiting tasks and its table of tasks in flight.  A task moves
 * from the one to the other when it is sent, and the move only relinks
 * its node (pmp_queue_move_head): its slot in the map stays where it is,
 * and a node says which queue it is in.  So a task costs the map one
 * insert (its submit) and one find and delete (its reply), instead of a
 * delete from one table and an insert into another in between, each a
 * cache miss once the tables hold thousands of tasks.  An id lives in one
 * of the sharing queues at a time; each queue keeps its own order and
 * size, and sees only its own ids.
 *
 * Cache misses are the cost that matters: the executor's I/O thread pops,
 * pushes, finds and removes a task in these tables for every task, and with
 * thousands of groups the tables hold thousands of ids.  So a slot keeps
 * the id next to its node: a probe and the backward shift of a deletion
 * compare and rehash the ids in the slot array itself and never follow a
 * node pointer they do not need (benchmark: bench/frontend_scale.c), a
 * push probes once, and the nodes of removed items are kept for the next
 * pushes instead of a free() and a malloc() per item: up to as many as
 * the map holds ids, and S_MIN_SPARE more, at most S_MAX_SPARE (6 MiB of
 * nodes).  That keeps malloc out of a stream of tasks, where one thread
 * (a caller) pushes and another (the I/O thread) removes: glibc hands a
 * block freed by another thread back to the arena it came from, and the
 * next malloc there pays to sort it out.
 */
#include "pmp_queue.h"

#include <errno.h>
#include <stdlib.h>

typedef struct s_node {
    struct s_node *prev, *next;
    uint64_t id;
    void *item;
    pmp_queue_t *queue; /* the queue it is linked in */
} s_node_t;

typedef struct {
    uint64_t id;
    s_node_t *node;
} s_slot_t;

/* The id map, shared by the queues made with pmp_queue_new_sharing. */
typedef struct {
    s_slot_t *slots; /* hash map id -> node; node NULL = empty slot */
    size_t mask;     /* capacity - 1 */
    size_t count;    /* ids in the map, over every queue that shares it */
    s_node_t *spare; /* nodes of removed items, kept for the next push (linked by next) */
    size_t nspare;
    int users; /* queues that share it */
} s_map_t;

struct pmp_queue {
    s_node_t *head, *tail;
    size_t size;
    s_map_t *map;
};

#define S_MIN_CAPACITY 16
#define S_MIN_SPARE 64
#define S_MAX_SPARE (1u << 17)

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

static pmp_queue_t *s_new(s_map_t *map)
{
    pmp_queue_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    if (!map) {
        map = calloc(1, sizeof *map);
        if (map)
            map->slots = calloc(S_MIN_CAPACITY, sizeof *map->slots);
        if (!map || !map->slots) {
            free(map);
            free(self);
            errno = ENOMEM;
            return NULL;
        }
        map->mask = S_MIN_CAPACITY - 1;
    }
    map->users++;
    self->map = map;
    return self;
}

pmp_queue_t *pmp_queue_new(void)
{
    return s_new(NULL);
}

pmp_queue_t *pmp_queue_new_sharing(pmp_queue_t *other)
{
    if (!other) {
        errno = EINVAL;
        return NULL;
    }
    return s_new(other->map);
}

/* Index of id's slot, or of the empty slot where it would go. */
static size_t s_probe(const s_map_t *map, uint64_t id)
{
    size_t i = s_hash(id) & map->mask;
    while (map->slots[i].node && map->slots[i].id != id)
        i = (i + 1) & map->mask;
    return i;
}

/* Empties slot i and shifts later members of its probe run back so that
 * lookups never stop early at a hole. */
static void s_slot_delete(s_map_t *map, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & map->mask;
        if (!map->slots[j].node)
            break;
        size_t k = s_hash(map->slots[j].id) & map->mask;
        /* move j back to i unless its home k lies cyclically in (i, j] */
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            map->slots[i] = map->slots[j];
            i = j;
        }
    }
    map->slots[i].node = NULL;
    map->count--;
}

static void s_spare(s_map_t *map, s_node_t *n)
{
    if (map->nspare < map->count + S_MIN_SPARE && map->nspare < S_MAX_SPARE) {
        n->next = map->spare;
        map->spare = n;
        map->nspare++;
    } else {
        free(n);
    }
}

void pmp_queue_destroy(pmp_queue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_queue_t *self = *self_p;
    s_map_t *map = self->map;
    int last = --map->users == 0;
    s_node_t *n = self->head;
    while (n) {
        s_node_t *next = n->next;
        if (!last) /* the others still look ids up */
            s_slot_delete(map, s_probe(map, n->id));
        free(n);
        n = next;
    }
    if (last) {
        for (n = map->spare; n;) {
            s_node_t *next = n->next;
            free(n);
            n = next;
        }
        free(map->slots);
        free(map);
    }
    free(self);
    *self_p = NULL;
}

/* Doubles the map: every id of every queue that shares it is placed again. */
static int s_grow(s_map_t *map)
{
    size_t old_cap = map->mask + 1, cap = old_cap * 2;
    s_slot_t *slots = calloc(cap, sizeof *slots), *old = map->slots;
    if (!slots)
        return -1;
    map->slots = slots;
    map->mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].node)
            map->slots[s_probe(map, old[i].id)] = old[i];
    free(old);
    return 0;
}

static void s_link(pmp_queue_t *self, s_node_t *n, int front)
{
    n->queue = self;
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
    self->size++;
}

static void s_unlink(pmp_queue_t *self, s_node_t *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        self->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        self->tail = n->prev;
    self->size--;
}

static int s_insert(pmp_queue_t *self, uint64_t id, void *item, int front)
{
    if (!item) {
        errno = EINVAL;
        return -1;
    }
    s_map_t *map = self->map;
    size_t slot = s_probe(map, id);
    if (map->slots[slot].node) {
        errno = EEXIST;
        return -1;
    }
    if ((map->count + 1) * 2 > map->mask + 1) {
        if (s_grow(map) < 0) {
            errno = ENOMEM;
            return -1;
        }
        slot = s_probe(map, id);
    }
    s_node_t *n = map->spare;
    if (n) {
        map->spare = n->next;
        map->nspare--;
    } else if (!(n = malloc(sizeof *n))) {
        errno = ENOMEM;
        return -1; /* a grown table is still a valid table */
    }
    n->id = id;
    n->item = item;
    s_link(self, n, front);
    map->slots[slot] = (s_slot_t){id, n};
    map->count++;
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

/* Takes n (in slot) out of self and out of the map. */
static void *s_take(pmp_queue_t *self, s_node_t *n, size_t slot, uint64_t *id)
{
    s_unlink(self, n);
    s_slot_delete(self->map, slot);
    void *item = n->item;
    if (id)
        *id = n->id;
    s_spare(self->map, n);
    return item;
}

void *pmp_queue_pop(pmp_queue_t *self, uint64_t *id)
{
    if (!self->head)
        return NULL;
    s_node_t *n = self->head;
    return s_take(self, n, s_probe(self->map, n->id), id);
}

void *pmp_queue_move_head(pmp_queue_t *from, pmp_queue_t *to, uint64_t *id)
{
    s_node_t *n = from->head;
    if (!n || from->map != to->map)
        return NULL;
    s_unlink(from, n);
    s_link(to, n, 0);
    if (id)
        *id = n->id;
    return n->item;
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
    size_t i = s_probe(self->map, id);
    s_node_t *n = self->map->slots[i].node;
    if (!n || n->queue != self)
        return NULL;
    return s_take(self, n, i, NULL);
}

void *pmp_queue_find(const pmp_queue_t *self, uint64_t id)
{
    s_node_t *n = self->map->slots[s_probe(self->map, id)].node;
    return n && n->queue == self ? n->item : NULL;
}

void pmp_queue_prefetch(const pmp_queue_t *self, uint64_t id)
{
    __builtin_prefetch(&self->map->slots[s_hash(id) & self->map->mask]);
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
