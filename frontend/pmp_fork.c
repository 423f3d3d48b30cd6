/*
 * pmp_fork.c - the fork generation (see pmp_fork.h).
 *
 * Why a generation and not getpid(): getpid() is a system call since glibc
 * 2.25 no longer caches it, and submit() checks on every call; a counter
 * bumped by pthread_atfork costs one load.  The handler runs in every child
 * of fork(), including the short-lived children the launcher forks to exec
 * mpiexec (harmless: they exec at once), but not after vfork() or
 * posix_spawn(), whose children share nothing they could misuse.
 */
#include "pmp_fork.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "pmp_frame.h" /* PMP_EFORKED */

unsigned pmp_fork_gen;

static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_in_child(void)
{
    __atomic_add_fetch(&pmp_fork_gen, 1, __ATOMIC_RELAXED);
}

static void s_register(void)
{
    PMP_ASSERT(pthread_atfork(NULL, NULL, s_in_child) == 0);
}

void pmp_fork_watch(void)
{
    pthread_once(&s_once, s_register);
}

int pmp_fork_fail(pmp_error_t *err, const char *what, pid_t owner)
{
    pmp_error_set(err,
                  "this %s belongs to process %ld; it cannot be used in a forked child (pid %ld)",
                  what, (long)owner, (long)getpid());
    errno = PMP_EFORKED;
    return -1;
}
