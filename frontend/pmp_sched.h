/*
 * pmp_sched.h - the executor's table of groups: which group a peer identity
 * belongs to, and which group gets the next task.  Internal to the frontend.
 *
 * Groups are numbered 0, 1, 2, ... in the order they are added and never
 * removed (a group that leaves is retired: it stays findable by identity so
 * that late messages from it can be recognised, but it is never picked
 * again).  Each group has a load, the number of tasks it holds, between 0
 * and depth.  pmp_sched_pick() returns a group with the lowest load among
 * the live groups whose load is below depth; among equally loaded groups
 * the one that reached that load first, so work spreads over the groups.
 *
 * Cost: find is O(1) expected (a hash map of the identity bytes); pick,
 * inc, dec and retire are O(depth) at worst and O(1) in the usual case,
 * up_to O(its load),
 * independent of the number of groups (groups with room live in one list
 * per load); add is O(1) amortised.  Not thread-safe: the executor's I/O
 * thread owns it.
 */
#ifndef PMP_SCHED_H
#define PMP_SCHED_H

#include <stddef.h>
#include <stdint.h>

/* Returned by find and pick when there is no such group. */
#define PMP_SCHED_NONE SIZE_MAX

typedef struct pmp_sched pmp_sched_t;

/* Returns an empty table for groups that hold at most depth (>= 1) tasks,
 * or NULL with errno = EINVAL (depth 0) or ENOMEM. */
pmp_sched_t *pmp_sched_new(size_t depth);

/* Frees the table.  NULL-safe; nulls *self_p. */
void pmp_sched_destroy(pmp_sched_t **self_p);

/* Adds a live group of load 0 under a copy of identity (len >= 1 bytes) and
 * stores its number in *index.  Returns 0, or -1 with errno = EEXIST (the
 * identity is known; *index is then its number), EINVAL (len 0) or ENOMEM;
 * the table is unchanged on failure. */
int pmp_sched_add(pmp_sched_t *self, const void *identity, size_t len, size_t *index);

/* The number of the group with this identity, or PMP_SCHED_NONE. */
size_t pmp_sched_find(const pmp_sched_t *self, const void *identity, size_t len);

/* A live group with the lowest load below depth, or PMP_SCHED_NONE when
 * every live group is full (or there is none). */
size_t pmp_sched_pick(const pmp_sched_t *self);

/* The live groups with room whose load is at most load.  O(load). */
size_t pmp_sched_up_to(const pmp_sched_t *self, size_t load);

/* One more / one fewer task on group i.  inc needs load < depth, dec needs
 * load > 0 (programmer errors otherwise: assert).  Works on retired groups
 * too (their tasks still finish or break). */
void pmp_sched_inc(pmp_sched_t *self, size_t i);
void pmp_sched_dec(pmp_sched_t *self, size_t i);

size_t pmp_sched_load(const pmp_sched_t *self, size_t i);

/* Group i is never picked again.  Idempotent. */
void pmp_sched_retire(pmp_sched_t *self, size_t i);

int pmp_sched_retired(const pmp_sched_t *self, size_t i);

/* Groups ever added (live and retired). */
size_t pmp_sched_count(const pmp_sched_t *self);

/* Groups not retired. */
size_t pmp_sched_live(const pmp_sched_t *self);

#endif
