/*
 * pmp_rankwatch.h - the executor's watch of the job's ranks on this host:
 * a pidfd per rank, so that the frontend learns which rank died first, and
 * when, although only mpiexec can reap it.  Internal to the frontend.
 *
 * Every group's hello names its ranks (world rank, pid, host).  Each rank
 * on this host (when the job was launched here) gets a pidfd, polled by
 * the I/O thread next to its socket; the first rank that exits while the
 * job should run is remembered, and the job gets PMP_RANKWATCH_DEATH_GRACE_MS to
 * end by itself before the executor kills it.  The same pidfds carry the
 * executor's interrupt (pidfd_send_signal never reaches a recycled pid:
 * the watch closes a pidfd as soon as its rank exits).
 *
 * Ownership and threads: the executor's I/O thread alone, with no lock;
 * destroyed after that thread is joined.  Groups are numbered as in the
 * executor's group table (pmp_sched), in the order of their hellos.
 *
 * Cost: add is O(ranks of the group) system calls; count is O(1);
 * pollitems is O(ranks watched), and O(groups) only in the round after a
 * pidfd was opened or closed (the I/O thread asks every round, so with
 * thousands of groups and no rank watched, as for a job a queue adapter
 * started, a round costs nothing here: bench/frontend_scale.c); exit_text
 * is O(ranks watched); the rest O(1) or O(ranks of a group).
 * Out of memory is fatal (PMP_ASSERT): a watch that silently lost a rank
 * could leave a dead peer's group hanging.
 */
#ifndef PMP_RANKWATCH_H
#define PMP_RANKWATCH_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "pmp_protocol.h"

/* After a rank died, how long mpiexec gets to notice and exit by itself
 * (and to print its report) before the job is killed. */
#define PMP_RANKWATCH_DEATH_GRACE_MS 3000

typedef struct pmp_rankwatch pmp_rankwatch_t;

/* Returns an empty watch; local: the job was launched here, so ranks on
 * this host can be watched (otherwise nothing is).  NULL with errno =
 * ENOMEM. */
pmp_rankwatch_t *pmp_rankwatch_new(int local);

/* Closes every pidfd and frees the watch.  NULL-safe; nulls *self_p. */
void pmp_rankwatch_destroy(pmp_rankwatch_t **self_p);

/* Watches the ranks of group number group (the next one: 0, 1, ... since
 * the last clear), decoded from its hello payload (len bytes) for the
 * hello already decoded into *hello.  Ranks the hello does not name (an
 * older runtime) or that cannot be decoded (logged as a warning) are not
 * watched; the group still counts. */
void pmp_rankwatch_add(pmp_rankwatch_t *self, size_t group, const pmp_hello_t *hello,
                       const void *payload, size_t len);

/* Forgets every group (the job is gone; the next job's groups say hello
 * afresh), closing their pidfds.  A first death stays until exit_text. */
void pmp_rankwatch_clear(pmp_rankwatch_t *self);

/* The number of pidfds open: the poll items pollitems() will fill. */
size_t pmp_rankwatch_count(const pmp_rankwatch_t *self);

/* Fills items (room for count()) with the open pidfds for ZMQ_POLLIN and
 * remembers whose each one is; returns how many. */
int pmp_rankwatch_pollitems(pmp_rankwatch_t *self, zmq_pollitem_t *items);

/* The group of item k of the last pollitems(). */
size_t pmp_rankwatch_item_group(const pmp_rankwatch_t *self, int k);

/* Item k of the last pollitems() fired: its rank has exited.  Closes its
 * pidfd.  Unless expected (the job is ending anyway) or a death is already
 * known, this rank is the first death: "rank R of N (pid P on host H,
 * group G)", logged, and the grace before the kill starts. */
void pmp_rankwatch_on_exit(pmp_rankwatch_t *self, int k, int expected);

/* The first death's text, or NULL while no rank died. */
const char *pmp_rankwatch_death(const pmp_rankwatch_t *self);

/* Milliseconds until the grace after the first death ends (0 when it
 * has), or -1 when no kill is pending. */
int64_t pmp_rankwatch_left(const pmp_rankwatch_t *self);

/* Whether the grace after the first death has just ended: returns 1 once,
 * then 0 (the caller kills the job). */
int pmp_rankwatch_kill_due(pmp_rankwatch_t *self);

/* Sends sig to every watched rank of group through its pidfd; returns how
 * many it reached. */
int pmp_rankwatch_signal(pmp_rankwatch_t *self, size_t group, int sig);

/* The text of the job's exit for the user, from base, the launcher's
 * (malloc'ed; taken): with a first death, "rank R of N (...) <how>; the
 * <base>", where how is the rank's own fatal-signal line found in base
 * ("was killed by signal 11 (Segmentation fault)") or "died".  Ends the
 * watch (every pidfd closed) and forgets the death.  malloc'ed. */
char *pmp_rankwatch_exit_text(pmp_rankwatch_t *self, char *base);

#endif
