/*
 * pmp_job.h - the executor's job: launching it, enforcing the hard time
 * limit on it, and what follows its exit (a relaunch within
 * restart_limit, or the end of the executor).  Internal to the frontend;
 * the functions work on the executor's shared state
 * (pmp_executor_internal.h).
 *
 * Thread: the executor's I/O thread only, which alone owns the launcher:
 * PR_SET_PDEATHSIG ties the job to the thread that forked it.  Each
 * function takes the executor's mutex itself where it touches the guarded
 * state; none may be called with it held.
 *
 * Cost: a launch is a fork and exec (pmp_launcher_new returns once the
 * exec is known to have happened); an exit drains the job's output for up
 * to half a second and is O(tasks queued and in flight); the time check
 * is O(1) unless a deadline may have passed (pmp_timelimit.h).
 */
#ifndef PMP_JOB_H
#define PMP_JOB_H

#include "pmp_executor.h"

/* Starts the job, the first time and after every restart: the one place
 * a job is launched, so that whatever must be prepared before each launch
 * (the credentials file) is prepared here.  Sets self->launcher and
 * self->pid only on success.  Returns 0, or -1 with errno and a sentence
 * in err (no child is left). */
int pmp_job_launch(pmp_executor_t *self, pmp_error_t *err);

/* The job has exited (reaped).  Composes the exit text (which rank died
 * first and how, mpiexec's status, its stderr's tail) and either relaunches
 * the job (PMP_EVENT_RESTART, the tasks it held as PMP_DONE_LOST) or ends
 * the executor: PMP_EVENT_EXIT, every task in flight or queued completes as
 * PMP_DONE_BROKEN, later submits fail with EPIPE. */
void pmp_job_on_exit(pmp_executor_t *self);

/* The hard time limit: completes every task that ran longer than its
 * limit plus the grace as PMP_DONE_TIMEOUT and kills the job, whose exit
 * then relaunches it without using up restart_limit.  Returns the
 * milliseconds until the next check is due, or -1 when none is. */
long pmp_job_check_time(pmp_executor_t *self);

/* Poll item k of the rank watch fired: that rank has exited.  While the
 * job should run that is a crash: the first one is remembered for the
 * error text and the job gets PMP_RANKWATCH_DEATH_GRACE_MS to end by
 * itself before it is killed.  Takes mtx. */
void pmp_job_on_rank_exit(pmp_executor_t *self, int k);

/* Serves pmp_executor_interrupt(): SIGINT to every watched rank of every
 * group that holds a task, and the answer to the callers that asked.
 * Takes mtx only when something was asked. */
void pmp_job_serve_interrupts(pmp_executor_t *self);

#endif
