/*
 * pmp_environ.c - which variables of an enclosing MPI job a nested launch
 * must not inherit, in one table (see pmp_environ.h).
 *
 * Why.  An executor created inside a task runs in a rank of the outer job,
 * and everything that process execs inherits the environment its launcher
 * gave it: who it is in that job (OMPI_COMM_WORLD_RANK, PMI_RANK,
 * PMIX_RANK), how to reach that job's daemons and PMI servers
 * (OMPI_MCA_orte_hnp_uri, PMIX_SERVER_URI*, PMI_FD, HYDI_CONTROL_FD) and
 * where its session lives.  A second mpiexec started from there reads them
 * as if they were about itself.  Open MPI's mpiexec refuses with "does not
 * support recursive calls", and once the rank has called MPI_Init (which
 * sets OMPI_MCA_ess=pmi) it even initialises as an application process
 * and exits with status 1 without a word, the bare "exited with status 1"
 * that a nested Executor used to report.  The variables a launcher sets for
 * its ranks describe that job alone, so removing them costs the nested job
 * nothing: its own launcher sets its own.
 *
 * What stays.  Only variables a launcher sets for its ranks are removed,
 * each by name (or by a prefix that only launchers use); everything a user
 * sets on purpose stays: OMPI_ALLOW_RUN_AS_ROOT*, MCA settings such as
 * OMPI_MCA_btl or OMPI_MCA_orte_tmpdir_base (mpiexec forwards the user's
 * OMPI_MCA_* to the ranks, so inside a rank they cannot be told from
 * launcher-set ones, and only the launcher-internal names are listed),
 * PMIX_MCA_* (e.g. the common PMIX_MCA_gds=hash workaround), HYDRA_*,
 * I_MPI_*, MPIR_CVAR_* except the one hydra sets per host.  Harmless
 * launcher settings that the nested launcher sets again (HFI_NO_BACKTRACE,
 * IPATH_NO_BACKTRACE, GFORTRAN_UNBUFFERED_PRECONNECTED) stay as well.
 * Slurm: when the process is a task of an srun step, the variables of
 * that step (its id, this task's rank and pid, the step's CPU binding, the
 * srun's address) are removed, because an srun started from here makes a
 * new step of its own; the job's and allocation's variables (SLURM_JOB_ID,
 * SLURM_JOB_NODELIST, SLURM_NTASKS, ...) stay, since a launcher needs them
 * to find the allocation.
 *
 * When.  Only when the environment carries the marks of a rank or task
 * (pmp_environ_nested); an ordinary process launches with its environment
 * untouched, whatever it contains.
 *
 * How.  First matching rule wins; a name no rule matches is kept.  Matching
 * is plain byte comparison on the part before '=', with no allocation, so
 * that the launcher can clean its child's environ between fork and exec.
 */
#include "pmp_environ.h"

#include <string.h>

typedef enum { S_EXACT, S_PREFIX } s_match_t;
typedef enum { S_KEEP, S_STRIP } s_action_t;

typedef struct {
    const char *name;
    s_match_t match;
    s_action_t action;
} s_rule_t;

static const s_rule_t s_rules[] = {
    /* Open MPI (ORTE, 4.x): the rank's identity, its job and its daemon */
    {"OMPI_COMM_WORLD_", S_PREFIX, S_STRIP}, /* RANK, SIZE, LOCAL_RANK, NODE_RANK, ... */
    {"OMPI_APP_CTX_NUM_PROCS", S_EXACT, S_STRIP},
    {"OMPI_ARGV", S_EXACT, S_STRIP},
    {"OMPI_COMMAND", S_EXACT, S_STRIP},
    {"OMPI_FILE_LOCATION", S_EXACT, S_STRIP},
    {"OMPI_FIRST_RANKS", S_EXACT, S_STRIP},
    {"OMPI_NUM_APP_CTX", S_EXACT, S_STRIP},
    {"OMPI_UNIVERSE_SIZE", S_EXACT, S_STRIP},
    {"OMPI_MCA_ess", S_EXACT, S_STRIP}, /* "^singleton", "pmi" after MPI_Init */
    {"OMPI_MCA_ess_base_", S_PREFIX, S_STRIP},
    {"OMPI_MCA_initial_wdir", S_EXACT, S_STRIP},
    {"OMPI_MCA_mpi_oversubscribe", S_EXACT, S_STRIP}, /* the outer job's placement */
    {"OMPI_MCA_pmix", S_EXACT, S_STRIP},
    {"OMPI_MCA_shmem_RUNTIME_QUERY_hint", S_EXACT, S_STRIP},
    {"OMPI_MCA_orte_ess_", S_PREFIX, S_STRIP}, /* node_rank, num_procs, jobid, vpid */
    {"OMPI_MCA_orte_app_num", S_EXACT, S_STRIP},
    {"OMPI_MCA_orte_bound_at_launch", S_EXACT, S_STRIP},
    {"OMPI_MCA_orte_hnp_uri", S_EXACT, S_STRIP},
    {"OMPI_MCA_orte_jobfam_session_dir", S_EXACT, S_STRIP},
    {"OMPI_MCA_orte_launch", S_EXACT, S_STRIP},
    {"OMPI_MCA_orte_local_daemon_uri", S_EXACT, S_STRIP},
    {"OMPI_MCA_orte_num_nodes", S_EXACT, S_STRIP},
    {"OMPI_MCA_orte_precondition_transports", S_EXACT, S_STRIP},
    {"OMPI_MCA_orte_top_session_dir", S_EXACT, S_STRIP},
    /* PMIx (Open MPI, PRRTE, Slurm): the server of the enclosing job */
    {"PMIX_MCA_", S_PREFIX, S_KEEP}, /* user settings, e.g. PMIX_MCA_gds=hash */
    {"PMIX_", S_PREFIX, S_STRIP},    /* RANK, NAMESPACE, SERVER_URI*, ... */
    /* MPICH's hydra (and other PMI-1/PMI-2 launchers: Intel MPI, Slurm) */
    {"PMI_FD", S_EXACT, S_STRIP},
    {"PMI_PORT", S_EXACT, S_STRIP},
    {"PMI_ID", S_EXACT, S_STRIP},
    {"PMI_RANK", S_EXACT, S_STRIP},
    {"PMI_SIZE", S_EXACT, S_STRIP},
    {"PMI_JOBID", S_EXACT, S_STRIP},
    {"PMI_SPAWNED", S_EXACT, S_STRIP},
    {"HYDI_CONTROL_FD", S_EXACT, S_STRIP},
    {"MPI_LOCALNRANKS", S_EXACT, S_STRIP},
    {"MPI_LOCALRANKID", S_EXACT, S_STRIP},
    {"MPIR_CVAR_CH3_INTERFACE_HOSTNAME", S_EXACT, S_STRIP},
    /* Slurm: the enclosing srun step, not the job or the allocation */
    {"SLURM_STEP_", S_PREFIX, S_STRIP}, /* STEP_ID, STEP_NODELIST, STEP_NUM_TASKS, ... */
    {"SLURM_STEPID", S_EXACT, S_STRIP},
    {"SLURM_PROCID", S_EXACT, S_STRIP},
    {"SLURM_LOCALID", S_EXACT, S_STRIP},
    {"SLURM_TASK_PID", S_EXACT, S_STRIP},
    {"SLURM_GTIDS", S_EXACT, S_STRIP},
    {"SLURM_SRUN_COMM_", S_PREFIX, S_STRIP}, /* HOST, PORT */
    {"SLURM_CPU_BIND", S_PREFIX, S_STRIP},   /* and _TYPE, _LIST, _VERBOSE */
};

/* Any one of these means: this process is a rank (or srun task). */
static const char *const s_marks[] = {
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "PMIX_RANK",
    "PMIX_NAMESPACE",
    "PMI_RANK",
    "PMI_FD",
    "PMI_PORT",
    "HYDI_CONTROL_FD",
    "SLURM_STEP_ID",
    "SLURM_STEPID",
};

/* Length of the name part of "NAME=value" (or of a bare NAME). */
static size_t s_name_len(const char *entry)
{
    size_t n = 0;
    while (entry[n] && entry[n] != '=')
        n++;
    return n;
}

static int s_is(const char *entry, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len == n && memcmp(entry, name, n) == 0;
}

int pmp_environ_internal(const char *entry)
{
    size_t len = s_name_len(entry);
    for (size_t i = 0; i < sizeof s_rules / sizeof s_rules[0]; i++) {
        const s_rule_t *r = &s_rules[i];
        size_t n = strlen(r->name);
        int hit = r->match == S_EXACT ? s_is(entry, len, r->name)
                                      : len >= n && memcmp(entry, r->name, n) == 0;
        if (hit)
            return r->action == S_STRIP;
    }
    return 0;
}

int pmp_environ_nested(char *const envp[])
{
    for (size_t i = 0; envp && envp[i]; i++) {
        size_t len = s_name_len(envp[i]);
        for (size_t m = 0; m < sizeof s_marks / sizeof s_marks[0]; m++)
            if (s_is(envp[i], len, s_marks[m]))
                return 1;
    }
    return 0;
}

size_t pmp_environ_clean(char *envp[])
{
    if (!pmp_environ_nested(envp))
        return 0;
    size_t out = 0, removed = 0;
    for (size_t i = 0; envp[i]; i++) {
        if (pmp_environ_internal(envp[i]))
            removed++;
        else
            envp[out++] = envp[i];
    }
    envp[out] = NULL;
    return removed;
}
