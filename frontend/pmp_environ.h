/*
 * pmp_environ.h - the environment a launch gets when this process is itself
 * a rank of an MPI job (or a task of an srun step): the enclosing job's
 * launcher variables removed, everything else kept.  Internal to the
 * frontend; pure functions over a NULL-terminated array of "NAME=value"
 * strings, so that the rule can be tested without launching anything.
 *
 * pmp_launcher applies it between fork and exec, to the child's own copy
 * of environ; that is why pmp_environ_clean() allocates nothing and calls
 * nothing that is not async-signal-safe.  The rule itself (which variables,
 * and why) is the table in pmp_environ.c.
 */
#ifndef PMP_ENVIRON_H
#define PMP_ENVIRON_H

#include <stddef.h>

/* 1 if envp carries the marks of a process started by an MPI launcher or
 * by srun as one of its ranks / tasks (OMPI_COMM_WORLD_SIZE, PMIX_RANK,
 * PMI_RANK, PMI_FD, HYDI_CONTROL_FD, SLURM_STEP_ID, ...), 0 otherwise. */
int pmp_environ_nested(char *const envp[]);

/* 1 if the entry ("NAME=value", or a bare NAME) is a variable an enclosing
 * launch set for its own ranks and that a nested launch must not see, 0 if
 * it is kept (user settings such as OMPI_MCA_btl or OMPI_ALLOW_RUN_AS_ROOT,
 * HYDRA_*, PMIX_MCA_*, job- and allocation-wide SLURM_* variables). */
int pmp_environ_internal(const char *entry);

/* When envp is nested (pmp_environ_nested), removes every internal entry
 * in place, keeping the order of the others and the terminating NULL;
 * otherwise leaves envp untouched.  Returns the number removed.  Allocates
 * nothing and is async-signal-safe.  envp must not be NULL. */
size_t pmp_environ_clean(char *envp[]);

#endif
