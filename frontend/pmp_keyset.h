/*
 * pmp_keyset.h - a set of non-zero 64-bit keys: the function keys a caller
 * has DEFINEd and not yet FORGOTten (pmp_executor_broadcast checks a key
 * against it before the broadcast is queued).  Internal to the frontend.
 *
 * Contract: add, has and del take expected O(1) time (open addressing with
 * linear probing, at most half full, backward-shift deletion so that no
 * tombstones accumulate); the table grows by doubling and never shrinks.
 * Memory: 8 bytes a slot, at least 16 slots.
 *
 * Threads: none of its own and no locking: the owner serialises every call
 * (the executor calls it with its mutex held).
 */
#ifndef PMP_KEYSET_H
#define PMP_KEYSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct pmp_keyset pmp_keyset_t;

/* An empty set, or NULL with errno = ENOMEM. */
pmp_keyset_t *pmp_keyset_new(void);

/* Frees the set.  NULL-safe; nulls *self_p. */
void pmp_keyset_destroy(pmp_keyset_t **self_p);

/* Adds key (non-zero).  Returns 1 when it was added, 0 when it was there
 * already, -1 with errno = EINVAL (key 0) or ENOMEM (the set is then
 * unchanged). */
int pmp_keyset_add(pmp_keyset_t *self, uint64_t key);

/* Whether key is in the set (0 is never). */
int pmp_keyset_has(const pmp_keyset_t *self, uint64_t key);

/* Removes key; returns whether it was there. */
int pmp_keyset_del(pmp_keyset_t *self, uint64_t key);

/* Keys in the set. */
size_t pmp_keyset_size(const pmp_keyset_t *self);

#endif
