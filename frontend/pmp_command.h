/*
 * pmp_command.h - what an executor's configuration allows, and the command
 * that launches its runtime.  Internal to the frontend; pure functions of
 * the configuration (no process, socket or thread), used by
 * pmp_executor_new() before it makes anything.
 */
#ifndef PMP_COMMAND_H
#define PMP_COMMAND_H

#include "pmp_error.h"
#include "pmp_executor.h"

/* Checks cfg (counts, limits, programs given, the hostname's form).
 * Returns 0, or -1 with a sentence in err naming the first problem (the
 * caller sets errno = EINVAL). */
int pmp_command_validate(const pmp_executor_config_t *cfg, pmp_error_t *err);

/* The launch command for cfg, which must be valid (besides cfg it reads
 * only the environment: OMPI_MCA_pml and the variables of a batch
 * allocation, SLURM_JOB_ID, PBS_JOBID, LSB_JOBID, PE_HOSTFILE): the launcher and its
 * flags, then [runtime, --endpoint, endpoint, --ranks-per-group, K,
 * --frontend-pid, <this process>, --frontend-host, <this host>,
 * --credentials, credentials, runtime_args...].  The launcher part is
 *   mpiexec: [mpiexec, -n, N, (--oversubscribe: Open MPI), (--mca pml ob1:
 *            Open MPI with every rank on this host, when neither OMPI_MCA_pml
 *            nor launcher_args choose a PML), (-hosts h1,h2 |
 *            -f F: MPICH; --host h1,h2 | --hostfile F: Open MPI),
 *            (-genv OMP_NUM_THREADS T: MPICH; -x OMP_NUM_THREADS=T: Open MPI)]
 *   srun:    [srun, --ntasks=N, --cpus-per-task=T (1 when not set),
 *            --kill-on-bad-exit=1, (--mpi=P), (--exact), (--chdir cwd),
 *            (--export=ALL,OMP_NUM_THREADS=T)]
 *   flux:    [flux, run, -n, N, (--cores-per-task=T, --env=OMP_NUM_THREADS=T)]
 * each followed by launcher_args.  A malloc'ed NULL-terminated array of
 * malloc'ed strings (caller frees both), or NULL with errno = ENOMEM. */
char **pmp_command_argv(const pmp_executor_config_t *cfg, const char *endpoint,
                        const char *credentials);

#endif
