/*
 * pmp_job.c - the executor's job from launch to exit (see pmp_job.h):
 * starting it, killing it when a call overran its hard time limit, and
 * deciding at its exit between a relaunch and the end of the executor.
 *
 * Place in the design: the I/O thread (pmp_executor_io.c) calls in here
 * at start-up (pmp_job_launch), before every poll (pmp_job_check_time) and
 * when the job's pidfd fires (pmp_job_on_exit); the restart path is the
 * same launch as the first one, so whatever a launch needs (the
 * credentials file, a clean launcher environment, the relayed stdout) is
 * prepared once, in pmp_job_launch.
 *
 * What a restart keeps and what it loses.  At most once: every task a dead
 * group held completes as PMP_DONE_LOST, since the frontend cannot tell
 * whether a task waiting behind the oldest had started (a result may have
 * died in the leader's send queue).  Only the tasks behind a call that
 * exceeded run_time_max provably never started (the group was stuck in
 * that call): they go back to the head of the queue, in their order.  A
 * task pinned to a group (pmp_executor_submit_to) is never sent again: it
 * was meant for a group of the job that died, so it completes as LOST
 * too, queued or held, whatever the reason of the restart.  The
 * groups are forgotten (their places in the scheduler, their rank
 * watches, their time-limit records); the next job's groups say hello
 * afresh and get the INIT and the kept DEFINEs first; the queue, untouched,
 * resumes.  A relaunch after a time limit (the frontend killed the job on
 * purpose) does not count against restart_limit.  docs/architecture.md,
 * "Faults and restarts", has the measured timings.
 *
 * Its ranks: the I/O thread hands every rank exit its watch sees
 * (pmp_job_on_rank_exit) and every interrupt a caller asked for
 * (pmp_job_serve_interrupts) to this file too.
 *
 * The exit text says which rank died first and how (pmp_rankwatch), how
 * mpiexec ended and the tail of its stderr (pmp_launcher); every task the
 * job held fails with it when the executor ends.
 */
#include "pmp_job.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_executor_internal.h"
#include "pmp_slurmtext.h"

#define S_DRAIN_MS 500 /* how long to wait for the end of the job's output pipes */

/* The first launch and every relaunch (pmp_job.h).  I/O thread only:
 * PR_SET_PDEATHSIG ties the job to the thread that forks it. */
int pmp_job_launch(pmp_executor_t *self, pmp_error_t *err)
{
    /* fresh for every launch: the last one's file is removed after its
     * start-up, and its groups' hellos no longer count */
    if (pmp_endpoint_write_credentials(self->endpoint, err) < 0)
        return -1;
    self->hellos = 0;
    /* a clean launcher environment when this process is itself an MPI rank
     * (an executor made inside a task); stdout relayed, without the
     * launcher's banner */
    pmp_launcher_opts_t opts = {.cwd = self->cwd, .clean_environ = 1, .relay_stdout = 1};
    pmp_launcher_t *launcher = pmp_launcher_new(self->exec_path, self->argv, &opts, err);
    if (!launcher)
        return -1;
    self->launcher = launcher;
    __atomic_store_n(&self->pid, pmp_launcher_pid(launcher), __ATOMIC_RELAXED);
    return 0;
}

/* ---- the hard time limit ------------------------------------------------- */

/* The hard time limit.  The task a group runs is the oldest one it holds
 * (groups run their tasks in order); it started when it was sent or when
 * the group finished the one before, whichever came later (pmp_timelimit
 * keeps that clock).  One that has run longer than ncalls * run_time_max
 * + the grace completes as TIMEOUT and the job is killed; pmp_job_on_exit
 * then relaunches it (free of charge) and the other tasks in flight
 * complete as LOST.  Looks at the in-flight tasks only when the earliest
 * deadline may have passed.  Returns the milliseconds until the next
 * check is due (-1: none).  Takes mtx. */
long pmp_job_check_time(pmp_executor_t *self)
{
    if (!pmp_timelimit_limit_ms(self->timelimit) || !self->launch || !self->launcher ||
        pmp_launcher_exited(self->launcher))
        return -1;
    int64_t now = pmp_executor_now_ms();
    pthread_mutex_lock(&self->mtx);
    /* A rank already died: the job is ending anyway, and its tasks are
     * lost to that death, not to a time limit. */
    int died = pmp_rankwatch_death(self->watch) != NULL;
    int64_t next = pmp_timelimit_next(self->timelimit);
    if (self->timeout_kill || self->stop || self->exited || died || now < next) {
        if (self->timeout_kill || self->stop || self->exited || died)
            next = INT64_MAX;
        pthread_mutex_unlock(&self->mtx);
        return next == INT64_MAX ? -1 : (long)(next - now);
    }
    size_t expired = pmp_timelimit_scan_locked(self->timelimit, self->inflight, now);
    if (expired) {
        double limit = (double)pmp_timelimit_limit_ms(self->timelimit) / 1000.0;
        char text[PMP_ERROR_TEXT];
        size_t n = pmp_queue_size(self->inflight);
        for (size_t k = 0; k < n; k++) {
            uint64_t id;
            pmp_task_t *task = pmp_queue_pop(self->inflight, &id);
            if (task->sent_ms != PMP_TIMELIMIT_EXPIRED) {
                PMP_ASSERT(pmp_queue_push(self->inflight, id, task) == 0);
                continue;
            }
            pmp_executor_group_t *g = &self->groups[task->group];
            snprintf(text, sizeof text,
                     "the call ran longer than run_time_max (%g s%s) and did not stop at the "
                     "runtime's own timer; pympipool gave it %g s more, then killed the "
                     "pympipool-runtime job (group %d, leader pid %lld on %s) and restarted it",
                     limit * task->ncalls, task->ncalls > 1 ? " per call of its chunk" : "",
                     (double)pmp_timelimit_grace_ms(self->timelimit) / 1000.0, (int)g->hello.group,
                     (long long)g->hello.pid, g->hello.host);
            pmp_sched_dec(self->sched, task->group);
            pmp_timelimit_expire(self->timelimit, task->group);
            pmp_task_destroy(&task);
            pmp_executor_deliver_locked(self, PMP_DONE_TIMEOUT, id, text, -1);
        }
        self->timeout_kill = 1;
        pmp_timelimit_idle(self->timelimit);
        pthread_mutex_unlock(&self->mtx);
        pmp_log(PMP_LOG_INFO, "frontend: %zu task(s) exceeded run_time_max; killing the job",
                expired);
        pmp_launcher_quiet(self->launcher, PMP_LAUNCHER_QUIET_ALL); /* ended on purpose */
        pmp_launcher_signal(self->launcher, SIGKILL);
        return -1;
    }
    next = pmp_timelimit_next(self->timelimit);
    pthread_mutex_unlock(&self->mtx);
    return next == INT64_MAX ? -1 : (long)(next - now);
}

/* ---- the job's exit ------------------------------------------------------ */

/* The text of the job's exit for the user: which rank died first and how,
 * when the watch saw it, then mpiexec's status and the tail of its stderr
 * (pmp_launcher_exit_text).  Ends the watch of the ranks.  malloc'ed. */
static char *s_exit_text(pmp_executor_t *self)
{
    char *base = pmp_launcher_exit_text(self->launcher, "pympipool-runtime job");
    PMP_ASSERT(base != NULL);
    /* SLURM's account first, when SLURM ended the step (pmp_slurmtext.h):
     * the job, step, node and state, which its own lines spread over the
     * tail */
    char slurm[512];
    int from_slurm = pmp_slurmtext_summary(base, slurm, sizeof slurm) == 0;
    char *text = pmp_rankwatch_exit_text(self->watch, base);
    if (!from_slurm || !text)
        return text;
    size_t len = strlen(slurm) + strlen(text) + 3;
    char *both = malloc(len);
    PMP_ASSERT(both != NULL);
    snprintf(both, len, "%s; %s", slurm, text);
    free(text);
    return both;
}

/* Forgets every group of a job that is gone (their rank watches, their
 * time-limit records, their places in the scheduler): the next job's
 * groups say hello afresh.  Every task in flight must have been completed
 * already.  mtx held. */
static void s_forget_groups_locked(pmp_executor_t *self)
{
    PMP_ASSERT(pmp_queue_size(self->inflight) == 0);
    pmp_rankwatch_clear(self->watch);
    pmp_timelimit_clear(self->timelimit); /* nothing runs until the next job's first task */
    for (size_t i = 0; i < self->ngroups; i++)
        pmp_link_destroy(&self->groups[i].link);
    self->ngroups = 0;
    pmp_sched_destroy(&self->sched);
    self->sched = pmp_sched_new((size_t)self->depth_max);
    pmp_window_reset(self->window);
    PMP_ASSERT(self->sched != NULL);
}

/* Whether the job that just exited is relaunched: it must have been
 * launched here, nobody asked it to stop (destroy, or close() with nothing
 * left to run), and either the frontend killed it for a time limit (such a
 * restart is free) or restarts are left.  mtx held. */
static int s_should_restart_locked(const pmp_executor_t *self)
{
    if (!self->launch || self->stop || self->shutdown_sent)
        return 0;
    if (self->closing && pmp_queue_size(self->queue) == 0)
        return 0; /* nothing would run on a new job */
    return self->timeout_kill || self->restarts_counted < self->restart_limit;
}

/* The job died (text: how) and is relaunched: the tasks it held complete
 * as LOST (TIMEOUT ones were completed when the job was killed), the
 * groups are forgotten, EVENT_RESTART goes out first, and a new job is
 * started through pmp_job_launch, the same launch as the first one; its
 * groups get the INIT and the kept DEFINEs after their hello
 * (s_sync_group_locked in pmp_executor_io.c), and the queue, untouched,
 * resumes.  Returns 0, or -1 if the relaunch failed (text is then
 * extended with why, and the caller ends the executor as for a death
 * without restart).  Takes mtx. */
static int s_restart(pmp_executor_t *self, char **text_p)
{
    char *text = *text_p;
    pthread_mutex_lock(&self->mtx);
    int counted = !self->timeout_kill;
    if (counted)
        self->restarts_counted++;
    self->restarts++;
    size_t len = strlen(text) + 256;
    char *why = malloc(len), *lost = malloc(len + 64);
    PMP_ASSERT(why != NULL && lost != NULL);
    if (counted)
        snprintf(why, len,
                 "%s; the runtime was restarted (restart %d of %d allowed by restart_limit)", text,
                 self->restarts_counted, self->restart_limit);
    else
        snprintf(why, len,
                 "a call exceeded run_time_max, so pympipool killed the pympipool-runtime job "
                 "and restarted it (a restart after a time limit does not count against "
                 "restart_limit)");
    snprintf(lost, len + 64, "this call was running or held by a worker when %s", why);
    int status = pmp_launcher_status(self->launcher);
    pmp_executor_deliver_locked(self, PMP_EVENT_RESTART, 0, why, status);
    /* At most once: every task a dead group held is lost, since the
     * frontend cannot tell whether a task waiting behind the oldest had
     * started (a result may have died in the leader's send queue).  Only
     * the tasks behind a call that exceeded run_time_max provably never
     * started (the group was stuck in that call): they go back to the head
     * of the queue, in their order, and run on the next job. */
    size_t n = pmp_queue_size(self->inflight), nagain = 0;
    pmp_task_t **again = n ? malloc(n * sizeof *again) : NULL;
    PMP_ASSERT(n == 0 || again != NULL);
    for (size_t k = 0; k < n; k++) {
        uint64_t id;
        pmp_task_t *task = pmp_queue_pop(self->inflight, &id);
        pmp_sched_dec(self->sched, task->group);
        if (task->pin >= 0 || !pmp_timelimit_timed_out(self->timelimit, task->group)) {
            pmp_task_destroy(&task);
            pmp_executor_deliver_locked(self, PMP_DONE_LOST, id, lost, -1);
        } else {
            again[nagain++] = task;
        }
    }
    while (nagain > 0) {
        pmp_task_t *task = again[--nagain];
        PMP_ASSERT(pmp_queue_push_front(self->queue, task->id, task) == 0);
    }
    free(again);
    /* a pinned task was meant for a group of the job that died */
    pmp_executor_pin_fail_locked(self, PMP_DONE_LOST, lost);
    s_forget_groups_locked(self);
    self->timeout_kill = 0;
    pthread_mutex_unlock(&self->mtx);
    pmp_log(PMP_LOG_WARNING, "frontend: %s", why);
    free(lost);
    free(why);

    pmp_launcher_t *old = self->launcher;
    self->launcher = NULL;
    pmp_error_t err = {{0}};
    if (pmp_job_launch(self, &err) == 0) {
        pmp_launcher_destroy(&old);
        return 0;
    }
    self->launcher = old; /* exited: the caller reports its status */
    size_t size = strlen(text) + strlen(err.text) + 64;
    char *more = malloc(size);
    PMP_ASSERT(more != NULL);
    snprintf(more, size, "%s; relaunching it failed: %s", text, err.text);
    free(text);
    *text_p = more;
    return -1;
}

/* Relaunch or end (pmp_job.h).  Takes mtx. */
void pmp_job_on_exit(pmp_executor_t *self)
{
    /* no runtime will read the credentials any more; a relaunch writes them again */
    pmp_endpoint_remove_credentials(self->endpoint, "the job exited");
    /* all of its stderr (and banner) into the tail before the text is made */
    pmp_launcher_drain(self->launcher, S_DRAIN_MS);
    /* ranks that outlived mpiexec would be orphans: end them */
    pmp_launcher_signal(self->launcher, SIGKILL);
    char *text = s_exit_text(self);
    pmp_log(PMP_LOG_INFO, "frontend: %s", text);
    pthread_mutex_lock(&self->mtx);
    int restart = s_should_restart_locked(self);
    pthread_mutex_unlock(&self->mtx);
    if (restart && s_restart(self, &text) == 0) {
        free(text);
        return;
    }
    pthread_mutex_lock(&self->mtx);
    self->exited = 1;
    self->exit_text = text;
    pmp_executor_deliver_locked(self, PMP_EVENT_EXIT, 0, text, pmp_launcher_status(self->launcher));
    pmp_executor_io_fail_inflight_locked(self, SIZE_MAX, PMP_DONE_BROKEN, text);
    pmp_task_t *task;
    uint64_t id;
    while ((task = pmp_queue_pop(self->queue, &id))) {
        pmp_task_destroy(&task);
        pmp_executor_deliver_locked(self, PMP_DONE_BROKEN, id, text, -1);
    }
    pmp_executor_pin_fail_locked(self, PMP_DONE_BROKEN, text);
    while ((task = pmp_queue_pop(self->bcasts, NULL))) /* broadcasts have no completion */
        pmp_task_destroy(&task);
    for (size_t i = 0; i < self->ngroups; i++)
        pmp_executor_io_group_gone(self, &self->groups[i]);
    pthread_mutex_unlock(&self->mtx);
}

/* ---- its ranks: exits and interrupts -------------------------------------- */

/* Poll item k of the rank watch fired: that rank has exited.  While the
 * job should be running that is a crash: the first one is remembered for
 * the error text, and the job gets PMP_RANKWATCH_DEATH_GRACE_MS to end by
 * itself (mpiexec notices and kills the other ranks) before it is killed,
 * so that no rank is left waiting on a dead peer. */
void pmp_job_on_rank_exit(pmp_executor_t *self, int k)
{
    const pmp_executor_group_t *g = &self->groups[pmp_rankwatch_item_group(self->watch, k)];
    pthread_mutex_lock(&self->mtx);
    int expected = self->stop || self->shutdown_sent || self->exited || g->gone;
    pthread_mutex_unlock(&self->mtx);
    pmp_rankwatch_on_exit(self->watch, k, expected);
}

/* Serves pmp_executor_interrupt(): SIGINT, through its pidfd, to every
 * watched rank of every group that holds a task.  The group table is the
 * I/O thread's, so the callers only ask (intr_asked) and wait for the
 * answer.  A pidfd never reaches a recycled pid: the watch closes it as
 * soon as the rank exits.  Takes mtx (only when something was asked). */
void pmp_job_serve_interrupts(pmp_executor_t *self)
{
    if (__atomic_load_n(&self->intr_asked, __ATOMIC_RELAXED) == self->intr_served)
        return; /* the usual case: no lock taken */
    int n = 0;
    pthread_mutex_lock(&self->mtx);
    if (!self->exited && !self->stop) {
        for (size_t gi = 0; gi < self->ngroups; gi++) {
            if (self->groups[gi].gone || pmp_sched_load(self->sched, gi) == 0)
                continue;
            n += pmp_rankwatch_signal(self->watch, gi, SIGINT);
        }
    }
    if (n > 0 && self->launcher) /* a rank that dies of it is no news to the caller */
        pmp_launcher_quiet(self->launcher, PMP_LAUNCHER_QUIET_BANNER);
    self->intr_served = self->intr_asked;
    self->intr_count = n;
    pthread_cond_broadcast(&self->intr_cv);
    pthread_mutex_unlock(&self->mtx);
    pmp_log(PMP_LOG_INFO, "frontend: interrupt: SIGINT sent to %d rank(s)", n);
}
