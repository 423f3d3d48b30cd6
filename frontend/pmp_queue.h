/*
 * pmp_queue.h - a FIFO of opaque items keyed by a 64-bit task id, with O(1)
 * push, pop, push_front and remove-by-id.  Internal to the frontend.
 *
 * Not thread-safe: the executor's mutex protects every queue it owns.
 * The queue never owns or frees the items; it only links them.  Several
 * queues may share one id map (pmp_queue_new_sharing), so that an item
 * moves from one to another without a hash operation.
 */
#ifndef PMP_QUEUE_H
#define PMP_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pmp_queue pmp_queue_t;

/* Returns an empty queue, or NULL with errno = ENOMEM. */
pmp_queue_t *pmp_queue_new(void);

/* Returns an empty queue that shares other's id map: an id is in at most
 * one of the queues that share a map (a push of an id another one holds
 * fails with EEXIST); each has its own order and size, and find, remove
 * and pop see only its own ids.  pmp_queue_move_head moves an item
 * between them without touching the map.  NULL with errno = EINVAL (other
 * NULL) or ENOMEM.  The map is freed with the last of them. */
pmp_queue_t *pmp_queue_new_sharing(pmp_queue_t *other);

/* Frees the queue and its links (not the items), and takes its ids out
 * of the map it shares, if any.  NULL-safe; nulls *self_p. */
void pmp_queue_destroy(pmp_queue_t **self_p);

/* Appends item (non-NULL) under id.  Returns 0, or -1 with errno = EEXIST
 * when id is already queued (here or in a queue sharing the map), EINVAL
 * when item is NULL, ENOMEM when allocation fails; the queue is unchanged
 * on failure. */
int pmp_queue_push(pmp_queue_t *self, uint64_t id, void *item);

/* Same as pmp_queue_push, but puts the item at the head. */
int pmp_queue_push_front(pmp_queue_t *self, uint64_t id, void *item);

/* Removes and returns the head item (its id in *id if id is not NULL), or
 * NULL when the queue is empty. */
void *pmp_queue_pop(pmp_queue_t *self, uint64_t *id);

/* Moves the head item of from to the tail of to, which share one id map,
 * and returns it (its id in *id if id is not NULL): O(1), the map is not
 * touched.  NULL when from is empty or the two do not share a map. */
void *pmp_queue_move_head(pmp_queue_t *from, pmp_queue_t *to, uint64_t *id);

/* The head item without removing it, or NULL. */
void *pmp_queue_peek(const pmp_queue_t *self, uint64_t *id);

/* Removes and returns the item queued under id, or NULL if there is none. */
void *pmp_queue_remove(pmp_queue_t *self, uint64_t id);

/* The item queued under id, or NULL. */
void *pmp_queue_find(const pmp_queue_t *self, uint64_t id);

/* Starts loading the slot where id is or would be, without waiting for
 * it: a caller about to look up several ids (the replies of one message,
 * or an id in two tables) lets their cache misses overlap.  No effect on
 * the queue; cannot fail. */
void pmp_queue_prefetch(const pmp_queue_t *self, uint64_t id);

size_t pmp_queue_size(const pmp_queue_t *self);

/* Calls fn(id, item, arg) for every item from head to tail.  fn must not
 * change the queue. */
void pmp_queue_foreach(const pmp_queue_t *self, void (*fn)(uint64_t id, void *item, void *arg),
                       void *arg);

#endif
