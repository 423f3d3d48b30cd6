/*
 * pmp_executor.c - the executor actor's public side: construction,
 * destruction and every call of pmp_executor.h, run on the callers'
 * threads.  This essay is the design of the executor as a whole.
 *
 * Files.  The executor is one struct (pmp_executor_internal.h) in three
 * files, one per thread role, and small opaque helpers, one per concern:
 *   pmp_executor.c     the public API (callers' threads)
 *   pmp_executor_io.c  the I/O thread: poll loop, sending
 *   pmp_executor_recv.c   the I/O thread's message handlers
 *   pmp_executor_links.c  the I/O thread's local links (groups on this host)
 *   pmp_job.c          the job: launch, hard time limit, exit and restart
 *   pmp_task           a task or broadcast and its zero-copy frames
 *   pmp_completion_queue  completions on their way to pmp_executor_wait()
 *   pmp_endpoint       private directory, listening or ROUTER socket, auth
 *   pmp_rankwatch      pidfds of the local ranks, the first death
 *   pmp_timelimit      the clock of the hard time limit
 *   pmp_sched, pmp_queue, pmp_launcher  group table, FIFO, the child job
 *
 * Threads and ownership.  pmp_executor_new() listens on the Unix socket
 * ipc://<dir>/frontend (<dir> a fresh 0700 directory; the groups connect
 * over local links, pmp_link.h) or binds a ROUTER socket to a TCP address
 * (pmp_endpoint), then starts the I/O thread and hands it the socket; from
 * then on only that thread touches the socket and the links, the launcher (the job's
 * pid, pidfd and output pipes), the group table, the rank watch and the
 * time limit.  Callers on any thread share with it one mutex that guards
 * the task queue (FIFO, O(1) cancel by id), the in-flight table (id ->
 * task), the broadcasts, the state flags (closing, exited, stop) and the
 * completion queue.  A caller that changes something writes to an eventfd
 * that the I/O thread polls next to everything else; the I/O thread hands
 * results back through the completion queue, whose condition variable
 * pmp_executor_wait() sleeps on.  With cfg->launch the I/O thread itself
 * forks the job before it reports ready, because PR_SET_PDEATHSIG ties the
 * job to the thread that forked it.  pmp_executor_internal.h marks every
 * field with its rule; a function that needs the mutex ends in _locked.
 *
 * Which sends happen under the callers' mutex: over ZeroMQ all of them;
 * over local links all but the tasks.  The I/O thread holds the mutex for
 * each broadcast to every group, the INIT and kept DEFINEs replayed to a
 * group after its hello, SHUTDOWN to every group (close() once drained,
 * destroy(), a group that says hello while the executor shuts down) and,
 * over ZeroMQ, each task it sends (s_step in pmp_executor_io.c).  Why: a
 * task leaves the queue, is sent and enters the in-flight table in one
 * step, so cancel() and pending() never see a task that is in neither, a
 * send to a group that vanished can put the task back at the head of the
 * queue in order and complete the group's other tasks as BROKEN, and the
 * order of broadcasts and tasks (their submit-time sequence numbers) is
 * decided where they are queued.  Over a local link a task's write cannot
 * fail in a way that needs it back in the queue (a link that ended is
 * known before, and one that ends later completes what its group holds),
 * so the task enters the in-flight table under the mutex and is written
 * right after the unlock, by the same thread, which alone can take it out
 * of that table again; a broadcast waits until the tasks before it are
 * written.  Callers then never wait for this thread's system calls.  Why
 * the rest is cheap: a send never blocks (a link writes what the socket
 * takes and queues the rest for POLLOUT; a ROUTER has no send limit and
 * mandatory routing fails at once for a peer that is gone), frames move
 * into the link or ZeroMQ or are shared by reference count, never copied,
 * so a caller waits at most for one round of s_step, O(tasks sent in it)
 * or O(groups) for a broadcast.  Receiving takes the mutex only to update
 * the tables; a result's completion is queued under it and its waiter
 * woken after the unlock.  Callers never send: they only queue and wake.
 *
 * Scheduling.  A group may hold pipeline_depth tasks, and while the tasks
 * are short up to pipeline_depth_max (the window, pmp_window.h: about
 * PMP_EXECUTOR_WINDOW_NS of work by the recent results, and only once
 * every group of the job said hello); whenever
 * something changes (a submit, a hello, a result) the I/O thread pops
 * tasks from the head of the queue and sends each to the live group with
 * the fewest tasks in flight, while that group is inside the window.  The
 * group table (pmp_sched) finds that group and the group of a peer
 * identity without looking at the other groups, so the cost per task does
 * not grow with the number of groups.  Tasks submitted before any group
 * connected simply wait.  A task pinned to one group (pmp_executor_submit_to)
 * waits in a queue of its own (pinned) for room in that group instead, and
 * each round serves those first, in order (pmp_executor_pin.c).
 *
 * Broadcasts.  INIT, DEFINE and FORGET go to every group.  They wait in
 * their own FIFO (bcasts) next to the task queue, and every message, task
 * or broadcast, carries a sequence number taken at submit time; the I/O
 * thread always handles the older of the two heads first.  A broadcast at
 * the head is sent at once to every live group (it needs no free slot), so
 * each group receives it after every task submitted before it and before
 * every task submitted after it, while cancel(), pending() and the task ids
 * never see broadcasts.  What a group that connects later must know is
 * kept: the INIT and the DEFINEs not yet forgotten, in order; a new group
 * gets them right after its HELLO, before anything else.  The frames of a
 * broadcast are shared between the groups with zmq_msg_copy (reference
 * counted, no byte copy), so a zero-copy buffer is released once, when the
 * last group's copy and the kept original are gone.  Which keys are
 * defined is also tracked on the caller's side (defined), so that
 * pmp_executor_broadcast() can refuse a double DEFINE or an unknown FORGET
 * at once.
 *
 * Buffers.  A buffer without free_fn is copied at submit; one with free_fn
 * becomes a zmq_msg_init_data message whose release callback calls
 * free_fn(data, hint) exactly once, whenever the transport is done with it (sent,
 * dropped, cancelled, destroyed).  Until submit has fully succeeded those
 * callbacks are disarmed, so a failed submit never calls free_fn
 * (pmp_task).
 *
 * Faults.  The job's exit (pidfd readable, or a 100 ms waitpid poll where
 * there is no pidfd) is reported as PMP_EVENT_EXIT with the status and the
 * tail of its stderr, and every task in flight or queued completes as
 * PMP_DONE_BROKEN with the same text; later submits fail with EPIPE.
 * Malformed messages and messages from peers that never said hello are
 * dropped with a warning in the log; they cannot crash the frontend.
 *
 * Restarts and time limits.  With cfg->restart_limit a job that dies is
 * relaunched (pmp_job.c, through pmp_job_launch like the first launch):
 * the task each group was running completes as PMP_DONE_LOST, the tasks
 * it held behind that one go back to the head of the queue, the new
 * groups get the INIT and the kept DEFINEs after their hello, and
 * PMP_EVENT_RESTART says why.  With cfg->run_time_max_ms the I/O thread
 * times the task each group runs (pmp_timelimit, pmp_job_check_time); one
 * that overruns ncalls * limit + grace completes as PMP_DONE_TIMEOUT and
 * the job is killed and relaunched, a restart that does not count against
 * restart_limit.  docs/architecture.md, "Faults and restarts", has the
 * details.
 *
 * Shutdown.  close() lets the queue drain, then sends SHUTDOWN to every
 * group and delivers PMP_EVENT_CLOSED once the job has exited (launch) or
 * every group said GOODBYE (no launch).  destroy() asks the thread to stop:
 * SHUTDOWN, up to grace_ms for the job to exit, SIGTERM to its process
 * group, 2 s, SIGKILL (the launcher's stop steps); then joins the thread
 * and removes the directory.  Before the frontend kills a job on purpose
 * (destroy, a time limit) it tells the launcher to stop echoing what the
 * job says about it.
 *
 * The job's output.  The launcher (pmp_launcher) pipes the job's stderr
 * and stdout; the I/O thread polls them with everything else and pumps
 * them (stderr echoed and kept, stdout relayed to the user's fd 1 without
 * the MPI launcher's banner, never blocking on it: pmp_relay).
 *
 * Interrupt.  pmp_executor_interrupt() asks (intr_asked, under mtx), wakes
 * the I/O thread and waits; the thread, which alone owns the group table,
 * signals the local ranks of every group holding a task through their
 * pidfds (pmp_rankwatch) and answers with the count.
 *
 * Fork.  The executor remembers the fork generation it was made in
 * (pmp_fork.h); every public entry point compares it first and, in a forked
 * child, fails at once without touching the mutex, the eventfd or the
 * thread, which stayed in the parent.
 */
#include "pmp_executor.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pmp_command.h"
#include "pmp_executor_internal.h"
#include "pmp_fork.h"

static char *s_strdup_or_null(const char *s, int *failed)
{
    if (!s)
        return NULL;
    char *copy = strdup(s);
    if (!copy)
        *failed = 1;
    return copy;
}

/* ---- construction -------------------------------------------------------- */

/* Frees everything new() may have made; the thread must not be running. */
static void s_free_all(pmp_executor_t *self)
{
    pmp_launcher_destroy(&self->launcher);
    pmp_endpoint_destroy(&self->endpoint); /* the socket, the directory and what is in it */
    if (self->efd >= 0)
        close(self->efd);
    pmp_task_t *task;
    if (self->queue) {
        while ((task = pmp_queue_pop(self->queue, NULL)))
            pmp_task_destroy(&task);
        pmp_queue_destroy(&self->queue);
    }
    pmp_queue_t **queues[] = {&self->pinned, &self->inflight, &self->bcasts, &self->kept};
    for (size_t q = 0; q < sizeof queues / sizeof queues[0]; q++) {
        if (!*queues[q])
            continue;
        while ((task = pmp_queue_pop(*queues[q], NULL)))
            pmp_task_destroy(&task);
        pmp_queue_destroy(queues[q]);
    }
    pmp_keyset_destroy(&self->defined);
    pmp_task_destroy(&self->init_kept);
    pmp_sched_destroy(&self->sched);
    pmp_window_destroy(&self->window);
    pmp_completion_queue_destroy(&self->done);
    if (self->argv) {
        for (size_t i = 0; self->argv[i]; i++)
            free(self->argv[i]);
        free(self->argv);
    }
    pmp_rankwatch_destroy(&self->watch);
    pmp_timelimit_destroy(&self->timelimit);
    free(self->groups);
    free(self->items);
    free(self->exit_text);
    free(self->cwd);
    free(self->exec_path);
    pthread_mutex_destroy(&self->mtx);
    pthread_cond_destroy(&self->ready_cv);
    pthread_cond_destroy(&self->intr_cv);
    free(self);
}

pmp_executor_t *pmp_executor_new(const pmp_executor_config_t *cfg, pmp_error_t *err)
{
    if (pmp_command_validate(cfg, err) < 0) {
        errno = EINVAL;
        return NULL;
    }
    pmp_executor_t *self = calloc(1, sizeof *self);
    if (!self) {
        pmp_error_set(err, "out of memory creating the executor");
        errno = ENOMEM;
        return NULL;
    }
    pmp_fork_watch();
    self->gen = pmp_fork_generation();
    self->owner = getpid();
    self->efd = -1;
    self->pid = -1;
    self->ranks = cfg->ranks;
    self->ranks_per_group = cfg->ranks_per_group;
    self->depth = cfg->pipeline_depth;
    self->depth_max = cfg->pipeline_depth_max ? cfg->pipeline_depth_max : cfg->pipeline_depth;
    self->launch = cfg->launch != 0;
    self->restart_limit = cfg->restart_limit;
    self->keep_sent = self->launch && (self->restart_limit > 0 || cfg->run_time_max_ms > 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&self->mtx, NULL);
    pthread_cond_init(&self->ready_cv, &ca);
    pthread_cond_init(&self->intr_cv, &ca);
    pthread_condattr_destroy(&ca);
    int e = 0;

    int failed = 0;
    self->cwd = s_strdup_or_null(cfg->cwd, &failed);
    self->queue = pmp_queue_new();
    self->pinned = pmp_queue_new();
    self->inflight = self->queue ? pmp_queue_new_sharing(self->queue) : NULL; /* one id map */
    self->bcasts = pmp_queue_new();
    self->defined = pmp_keyset_new();
    self->kept = pmp_queue_new();
    self->sched = pmp_sched_new((size_t)self->depth_max);
    self->window =
        pmp_window_new((size_t)self->depth, (size_t)self->depth_max, PMP_EXECUTOR_WINDOW_NS);
    self->done = pmp_completion_queue_new(&self->mtx);
    self->watch = pmp_rankwatch_new(self->launch);
    self->timelimit = pmp_timelimit_new(cfg->run_time_max_ms, cfg->run_time_grace_ms
                                                                  ? cfg->run_time_grace_ms
                                                                  : PMP_EXECUTOR_RUN_TIME_GRACE_MS);
    self->next_seq = 1;
    if (failed || !self->queue || !self->pinned || !self->inflight || !self->bcasts ||
        !self->defined || !self->kept || !self->sched || !self->window || !self->done ||
        !self->watch || !self->timelimit)
        goto nomem;

    if (self->launch) {
        const char *launcher = cfg->flux ? "flux" : cfg->mpiexec;
        self->exec_path = pmp_launcher_which(launcher,
                                             cfg->flux   ? "flux"
                                             : cfg->srun ? "srun"
                                                         : "mpiexec",
                                             err);
        if (!self->exec_path)
            goto fail_errno;
        char *rt = pmp_launcher_which(cfg->runtime, "the pympipool runtime", err);
        if (!rt)
            goto fail_errno;
        free(rt);
        if (self->cwd) {
            struct stat st;
            if (stat(self->cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
                pmp_error_set(err, "cwd '%s' is not a directory", self->cwd);
                errno = ENOENT;
                goto fail_errno;
            }
        }
    }

    /* the private directory, the socket in it (or on cfg->hostname) and
     * who may connect */
    self->endpoint = pmp_endpoint_new(cfg->hostname, err);
    if (!self->endpoint)
        goto fail_errno;
    if (!self->launch && pmp_endpoint_write_credentials(self->endpoint, err) < 0)
        goto fail_errno; /* a queue adapter starts the job later */

    self->argv = pmp_command_argv(cfg, pmp_endpoint_address(self->endpoint),
                                  pmp_endpoint_credentials_path(self->endpoint));
    if (!self->argv)
        goto nomem;
    self->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->efd < 0) {
        e = errno;
        pmp_error_set(err, "cannot create an eventfd: %s", strerror(e));
        errno = e;
        goto fail_errno;
    }

    /* the I/O thread takes no signals: they belong to the application */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    e = pthread_create(&self->thread, NULL, pmp_executor_io_main, self);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        pmp_error_set(err, "cannot start the executor's I/O thread: %s", strerror(e));
        errno = e;
        goto fail_errno;
    }
    self->thread_started = 1;
    pthread_mutex_lock(&self->mtx);
    while (!self->ready)
        pthread_cond_wait(&self->ready_cv, &self->mtx);
    int rc = self->start_rc;
    pthread_mutex_unlock(&self->mtx);
    if (rc < 0) {
        pthread_join(self->thread, NULL);
        if (err)
            *err = self->start_err;
        e = self->start_errno;
        s_free_all(self);
        errno = e;
        return NULL;
    }
    return self;

nomem:
    pmp_error_set(err, "out of memory creating the executor");
    errno = ENOMEM;
fail_errno:
    e = errno;
    s_free_all(self);
    errno = e;
    return NULL;
}

void pmp_executor_destroy(pmp_executor_t **self_p, int grace_ms)
{
    if (!self_p || !*self_p)
        return;
    pmp_executor_t *self = *self_p;
    *self_p = NULL;
    if (pmp_executor_in_child(self))
        return; /* the parent's: its thread is not here, its locks may be held */
    pthread_mutex_lock(&self->mtx);
    self->stop = 1;
    self->grace_ms = grace_ms < 0 ? 0 : grace_ms;
    pthread_mutex_unlock(&self->mtx);
    pmp_executor_wake(self);
    pthread_join(self->thread, NULL);
    s_free_all(self);
}

const char *pmp_executor_endpoint(const pmp_executor_t *self)
{
    return pmp_endpoint_address(self->endpoint);
}

const char *const *pmp_executor_command(const pmp_executor_t *self)
{
    return (const char *const *)self->argv;
}

pid_t pmp_executor_pid(const pmp_executor_t *self)
{
    return __atomic_load_n(&self->pid, __ATOMIC_RELAXED); /* changes at a restart */
}

int pmp_executor_forked(const pmp_executor_t *self)
{
    return pmp_executor_in_child(self);
}

pid_t pmp_executor_owner(const pmp_executor_t *self)
{
    return self->owner;
}

int pmp_executor_restarts(pmp_executor_t *self)
{
    if (pmp_executor_in_child(self))
        return pmp_fork_fail(NULL, "executor", self->owner);
    pthread_mutex_lock(&self->mtx);
    int n = self->restarts;
    pthread_mutex_unlock(&self->mtx);
    return n;
}
