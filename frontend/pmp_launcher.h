/*
 * pmp_launcher.h - starts the runtime job (mpiexec / flux) as a child
 * process in its own process group, captures its stderr and watches for its
 * exit.  Internal to the frontend; used by the executor's I/O thread only,
 * which must be the thread that calls pmp_launcher_new (the child gets
 * SIGTERM when that thread ends, PR_SET_PDEATHSIG).
 */
#ifndef PMP_LAUNCHER_H
#define PMP_LAUNCHER_H

#include <sys/types.h>

#include "pmp_error.h"

typedef struct pmp_launcher pmp_launcher_t;

/* Finds a program: a name with a '/' must be an executable regular file;
 * otherwise it is searched in PATH.  Returns the malloc'ed path (caller
 * frees), or NULL with errno = ENOENT (or ENOMEM) and a sentence naming the
 * program and what it is for ("what", e.g. "mpiexec") in err. */
char *pmp_launcher_which(const char *name, const char *what, pmp_error_t *err);

/* Forks and executes path with argv (never through a shell) in cwd (or the
 * current directory when NULL), stdin from /dev/null, stdout inherited,
 * stderr into a pipe read by pmp_launcher_read_stderr().  Returns only
 * after the exec succeeded or failed; on failure returns NULL with errno
 * and a sentence in err, and no child is left. */
pmp_launcher_t *pmp_launcher_new(const char *path, char *const argv[], const char *cwd,
                                 pmp_error_t *err);

/* As pmp_launcher_new, but the program's environment is envp (a
 * NULL-terminated array of "KEY=value" strings) when envp is not NULL,
 * instead of this process's environ.  Used by pmp_channel to hand keys to a
 * booted program without putting them on its command line. */
pmp_launcher_t *pmp_launcher_new_env(const char *path, char *const argv[], char *const envp[],
                                     const char *cwd, pmp_error_t *err);

/* Kills the process group (SIGKILL) if the job was not reaped yet, reaps it,
 * closes the descriptors.  NULL-safe; nulls *self_p. */
void pmp_launcher_destroy(pmp_launcher_t **self_p);

pid_t pmp_launcher_pid(const pmp_launcher_t *self);

/* A pidfd that becomes readable when the job exits, or -1 when the kernel
 * has none (then poll pmp_launcher_poll_exit() every 100 ms). */
int pmp_launcher_pidfd(const pmp_launcher_t *self);

/* The read end of the stderr pipe, or -1 once it reached end of file. */
int pmp_launcher_stderr_fd(const pmp_launcher_t *self);

/* Reads what is available on the stderr pipe without blocking, writes it to
 * this process's fd 2 and keeps the last 8 KiB.  Returns 1 at end of file
 * (the fd is then closed), 0 otherwise. */
int pmp_launcher_read_stderr(pmp_launcher_t *self);

/* Reads stderr until end of file or until timeout_ms passed. */
void pmp_launcher_drain_stderr(pmp_launcher_t *self, int timeout_ms);

/* Reaps the job if it has exited (waitpid WNOHANG).  Returns 1 if it has
 * exited (now or before), 0 if it still runs. */
int pmp_launcher_poll_exit(pmp_launcher_t *self);

/* Blocks until the job has exited and reaps it. */
void pmp_launcher_wait(pmp_launcher_t *self);

/* Sends sig to the job's process group (every process it started that did
 * not leave the group).  Returns 0 or -1 with errno (ESRCH: nothing left). */
int pmp_launcher_signal(pmp_launcher_t *self, int sig);

int pmp_launcher_exited(const pmp_launcher_t *self);

/* waitpid status of the exited job, -1 while it runs. */
int pmp_launcher_status(const pmp_launcher_t *self);

/* "<what> (<argv0> pid P) exited with status S" or "... was killed by
 * signal N", plus "; its stderr ended with:\n<tail>" when the job wrote
 * anything; what names the job for the reader ("pympipool-runtime job").
 * malloc'ed (caller frees), NULL with errno = ENOMEM. */
char *pmp_launcher_exit_text(const pmp_launcher_t *self, const char *what);

#endif
