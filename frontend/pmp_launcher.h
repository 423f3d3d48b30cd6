/*
 * pmp_launcher.h - starts the runtime job (mpiexec / flux) as a child
 * process in its own process group, captures its output and watches for
 * its exit.  Internal to the frontend; used by the executor's I/O thread
 * and by a channel's keeper thread, each of which must be the thread that
 * calls pmp_launcher_new (the child gets SIGTERM when that thread ends,
 * PR_SET_PDEATHSIG) and the only one that uses the launcher.
 *
 * Output: the job's stderr goes into a pipe; every chunk read is echoed to
 * this process's fd 2 and the last 8 KiB are kept for the exit text.  With
 * opts.relay_stdout its stdout goes into a second pipe that pmp_relay moves
 * to this process's fd 1 (as it was at launch), with the launcher's failure
 * banner handled like stderr (echoed to fd 2 and kept); otherwise stdout is
 * inherited.  After pmp_launcher_quiet() the echo stops for what the caller
 * ended on purpose (the tail still keeps everything).
 */
#ifndef PMP_LAUNCHER_H
#define PMP_LAUNCHER_H

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

#include "pmp_error.h"

typedef struct pmp_launcher pmp_launcher_t;

/* How a program is started. */
typedef struct {
    char *const *envp; /* the program's environment; NULL: this process's environ */
    const char *cwd;   /* working directory; NULL: the current one */
    int clean_environ; /* when this process is an MPI rank or srun task, remove the
                          enclosing job's launcher variables (pmp_environ.h) */
    int relay_stdout;  /* stdout into a pipe relayed to fd 1 (pmp_relay.h); 0: inherited */
} pmp_launcher_opts_t;

/* What pmp_launcher_quiet() stops echoing to fd 2 (the tail keeps it). */
#define PMP_LAUNCHER_QUIET_BANNER 1 /* the launcher's failure banner */
#define PMP_LAUNCHER_QUIET_STDERR 2 /* the job's stderr */
#define PMP_LAUNCHER_QUIET_ALL 3

/* pmp_launcher_pollfds() fills at most this many entries. */
#define PMP_LAUNCHER_MAX_FDS 3

/* Finds a program: a name with a '/' must be an executable regular file;
 * otherwise it is searched in PATH.  Returns the malloc'ed path (caller
 * frees), or NULL with errno = ENOENT (or ENOMEM) and a sentence naming the
 * program and what it is for ("what", e.g. "mpiexec") in err. */
char *pmp_launcher_which(const char *name, const char *what, pmp_error_t *err);

/* Forks and executes path with argv (never through a shell), as opts says
 * (NULL: all defaults), stdin from /dev/null, stderr into a pipe.  Returns
 * only after the exec succeeded or failed; on failure returns NULL with
 * errno and a sentence in err, and no child is left. */
pmp_launcher_t *pmp_launcher_new(const char *path, char *const argv[],
                                 const pmp_launcher_opts_t *opts, pmp_error_t *err);

/* Kills the process group (SIGKILL) if the job was not reaped yet, reaps it,
 * closes the descriptors (output not yet relayed is dropped).  NULL-safe;
 * nulls *self_p. */
void pmp_launcher_destroy(pmp_launcher_t **self_p);

pid_t pmp_launcher_pid(const pmp_launcher_t *self);

/* A pidfd that becomes readable when the job exits, or -1 when the kernel
 * has none (then poll pmp_launcher_poll_exit() every 100 ms). */
int pmp_launcher_pidfd(const pmp_launcher_t *self);

/* Fills fds with the descriptors that carry the job's output (the stderr
 * pipe, the stdout pipe, and fd 1 while relayed output waits for room) and
 * returns how many (0 to PMP_LAUNCHER_MAX_FDS).  Lowers *timeout_ms (-1:
 * none yet) to when pmp_launcher_pump() must run even if none is ready. */
int pmp_launcher_pollfds(const pmp_launcher_t *self, struct pollfd *fds, int *timeout_ms);

/* Moves the job's output along without blocking: reads both pipes, echoes
 * stderr, relays stdout.  Call when a poll saw one of those fds ready or
 * its timeout passed.  Returns 1 once both pipes reached end of file and
 * the relayed output is written (or dropped), 0 otherwise. */
int pmp_launcher_pump(pmp_launcher_t *self);

/* Pumps until both pipes reached end of file or timeout_ms passed. */
void pmp_launcher_drain(pmp_launcher_t *self, int timeout_ms);

/* Stops echoing what (PMP_LAUNCHER_QUIET_*) to fd 2, from now on: the
 * caller ends the job on purpose (destroy, a time limit) or interrupted
 * it, and what the launcher says about that is noise to the user. */
void pmp_launcher_quiet(pmp_launcher_t *self, int what);

/* Reaps the job if it has exited (waitpid WNOHANG).  Returns 1 if it has
 * exited (now or before), 0 if it still runs. */
int pmp_launcher_poll_exit(pmp_launcher_t *self);

/* Blocks until the job has exited and reaps it. */
void pmp_launcher_wait(pmp_launcher_t *self);

/* Sends sig to the job's process group (every process it started that did
 * not leave the group).  Returns 0 or -1 with errno (ESRCH: nothing left). */
int pmp_launcher_signal(pmp_launcher_t *self, int sig);

int pmp_launcher_exited(const pmp_launcher_t *self);

/* ---- ending a job on purpose ---------------------------------------------
 * The owner's destroy path: the job gets grace_ms to leave by itself (the
 * owner has asked it to, e.g. with SHUTDOWN), then SIGTERM to its process
 * group, PMP_LAUNCHER_TERM_GRACE_MS more, then SIGKILL.  The steps are a
 * plain record kept by the owner's loop, which polls everything else as
 * usual and asks when the next step is due, so the loop never sleeps past
 * one.  Owner's thread only; no allocation, cannot fail. */

#define PMP_LAUNCHER_TERM_GRACE_MS 2000 /* between SIGTERM and SIGKILL */

typedef struct {
    int step;         /* 0: not begun, 1: grace, 2: after SIGTERM, 3: after SIGKILL */
    int64_t deadline; /* CLOCK_MONOTONIC milliseconds of the next step */
    int quiet;        /* PMP_LAUNCHER_QUIET_* set right before SIGTERM (0: none) */
} pmp_launcher_stop_t;

/* Begins the steps: the grace period of grace_ms (< 0: 0) starts now, and
 * quiet (PMP_LAUNCHER_QUIET_*, or 0) is what the echo drops once the job
 * is signalled.  stop must be zero-initialised (not begun). */
void pmp_launcher_stop_begin(pmp_launcher_stop_t *stop, int grace_ms, int quiet);

int pmp_launcher_stop_begun(const pmp_launcher_stop_t *stop);

/* Whether the next step (a signal) is due: begun, SIGKILL not sent yet and
 * its deadline passed.  Also tells an owner without a job (nothing to
 * signal) that the grace period is over. */
int pmp_launcher_stop_due(const pmp_launcher_stop_t *stop);

/* Milliseconds until the next step is due (0 when it is), or -1 when none
 * is pending (not begun, or SIGKILL sent): what the owner's poll may wait
 * at most. */
int64_t pmp_launcher_stop_left(const pmp_launcher_stop_t *stop);

/* Takes the next step if it is due: after the grace period quiets the echo
 * (stop->quiet) and sends SIGTERM; after PMP_LAUNCHER_TERM_GRACE_MS more
 * sends SIGKILL.  Returns the signal sent, or 0 when no step was due. */
int pmp_launcher_stop_next(pmp_launcher_t *self, pmp_launcher_stop_t *stop);

/* waitpid status of the exited job, -1 while it runs. */
int pmp_launcher_status(const pmp_launcher_t *self);

/* "<what> (<argv0> pid P) exited with status S" or "... was killed by
 * signal N", plus "; its stderr ended with:\n<tail>" when the job wrote
 * anything, or "; it wrote nothing to stderr" when it did not; what names
 * the job for the reader ("pympipool-runtime job").  malloc'ed (caller
 * frees), NULL with errno = ENOMEM. */
char *pmp_launcher_exit_text(const pmp_launcher_t *self, const char *what);

#endif
