/*
 * pmp_fork.h - tells an object made by this process from one inherited by
 * a forked child.  Internal to the frontend (the public side is
 * pmp_executor_forked(), pmp_channel_forked() and PMP_EFORKED).
 *
 * A fork copies memory but only the calling thread: in the child an
 * executor's I/O thread, a channel's keeper and ZeroMQ's own threads do not
 * exist, and any mutex one of them held at the fork stays locked forever.
 * Such an object can only be recognised and left alone.  pmp_fork_watch()
 * registers (once per process, pthread_once) a pthread_atfork child handler
 * that adds one to a process-wide generation counter; every object stores
 * the generation it was made in, and a public call compares the two before
 * touching anything else: one relaxed load and an integer compare, cheap
 * enough for submit's hot path.  Thread-safe; async-signal-safe except
 * pmp_fork_watch().
 */
#ifndef PMP_FORK_H
#define PMP_FORK_H

#include <sys/types.h>

#include "pmp_error.h"

/* Changed only by the atfork child handler (in the child, before fork()
 * returns there), so a process sees one value for as long as it runs. */
extern unsigned pmp_fork_gen;

/* Registers the atfork handler once; call before reading the generation an
 * object will remember.  Aborts (PMP_ASSERT) if it cannot be registered:
 * without it an inherited object would hang its child. */
void pmp_fork_watch(void);

/* The current fork generation. */
static inline unsigned pmp_fork_generation(void)
{
    return __atomic_load_n(&pmp_fork_gen, __ATOMIC_RELAXED);
}

/* Sets errno to PMP_EFORKED and, with err, the sentence "this <what>
 * belongs to process <owner>; it cannot be used in a forked child (pid
 * <this process>)".  Returns -1. */
int pmp_fork_fail(pmp_error_t *err, const char *what, pid_t owner);

#endif
