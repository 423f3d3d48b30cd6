/*
 * pmp_executor_pin.c - the executor's tasks pinned to one group
 * (pmp_executor_submit_to): finding their group, and failing them.
 *
 * Place in the design.  Most tasks go to whichever group is least loaded
 * (pmp_sched); a caller that schedules ranks itself (FlexExecutor, which
 * picks the free ranks of a call and builds the call's communicator from
 * them) needs a task to reach one given group instead.  Such tasks wait in
 * a queue of their own (self->pinned, guarded by mtx like the task queue),
 * which the I/O thread serves first in every round
 * (s_step_pinned_locked in pmp_executor_io.c), in order, each task to its
 * group once that group said hello and has room.  Cancel, cancel_all,
 * pending and close look at both queues (pmp_executor.c).
 *
 * The pass (s_step_pinned_locked in pmp_executor_io.c) pops every pinned
 * task once, in order, and either takes it or puts it back at the end, so
 * the queue keeps its order.  Whether a task can go depends only on its
 * group (said hello, has room) and on the broadcasts older than it (sent
 * first), so a task that waits holds back every later one of its group:
 * first in, first out per group.  A group with a local link gets its task
 * in the round's batch (written after the unlock); one over ZeroMQ at
 * once, and when it cannot be routed to, the task is put back and the
 * group given up (s_unreachable_locked), as for any task.
 *
 * A group is named by the runtime's number of it (its hello's "group",
 * world rank / ranks_per_group), which stays the same across a restart,
 * while its index in the group table is the order of the hellos and
 * changes.  The lookup here is a scan of the group table, O(groups): the
 * caller pins a task only to a group it knows is free, so few pinned
 * tasks wait at any time.
 *
 * What a restart does to them (pmp_job.c): a pinned task still queued
 * completes as PMP_DONE_LOST with those the groups held, since it was
 * meant for a group of the job that died; the members of one MPI call
 * started on the old job must not meet half of it on the new one.
 */
#include <stdint.h>

#include "pmp_executor_internal.h"

size_t pmp_executor_pin_group(const pmp_executor_t *self, int pin)
{
    for (size_t i = 0; i < self->ngroups; i++) {
        const pmp_executor_group_t *g = &self->groups[i];
        if (g->hello.group == pin && !g->gone && !g->shutdown_sent &&
            !pmp_sched_retired(self->sched, i))
            return i;
    }
    return SIZE_MAX;
}

void pmp_executor_pin_fail_locked(pmp_executor_t *self, int kind, const char *text)
{
    pmp_task_t *task;
    uint64_t id;
    while ((task = pmp_queue_pop(self->pinned, &id))) {
        pmp_task_destroy(&task); /* its buffers go before its completion */
        pmp_executor_deliver_locked(self, kind, id, text, -1);
    }
}
