/*
 * test_environ.c - unit test of pmp_environ (unit.environ): the rule that
 * gives a nested launch a clean launcher environment.  Environments as
 * measured inside real ranks (Open MPI 4.1 after MPI_Init, MPICH 4 hydra,
 * an srun step) lose exactly their launcher variables and keep the user's
 * settings and the job's allocation; an ordinary environment, even with
 * such names in it, is left untouched; the array is compacted in place in
 * order.  Exits 0 on success; prints the failing check and exits 1.
 */
#include "pmp_environ.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_check.h"

/* Whether the NULL-terminated env holds the entry whose name is name. */
static int s_has(char **env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return 1;
    return 0;
}

static size_t s_count(char **env)
{
    size_t n = 0;
    while (env[n])
        n++;
    return n;
}

/* What stays in every case below: the user's own settings. */
static const char *const s_user[] = {
    "PATH=/usr/bin:/bin",
    "HOME=/root",
    "OMPI_ALLOW_RUN_AS_ROOT=1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
    "OMPI_MCA_btl=self,vader",
    "OMPI_MCA_btl_vader_single_copy_mechanism=none",
    "OMPI_MCA_orte_tmpdir_base=/tmp",
    "PMIX_MCA_gds=hash",
    "HYDRA_LAUNCHER=fork",
    "HYDRA_HOST_FILE=/etc/hosts.mpi",
    "I_MPI_PIN=0",
    "MPIR_CVAR_ENABLE_GPU=0",
    "HFI_NO_BACKTRACE=1",
    "GFORTRAN_UNBUFFERED_PRECONNECTED=y",
    "SLURM_JOB_ID=4711",
    "SLURM_JOBID=4711",
    "SLURM_JOB_NODELIST=node[1-2]",
    "SLURM_NTASKS=4",
    "SLURM_TASKS_PER_NODE=2(x2)",
    "FLUX_URI=local:///run/flux/local",
    "PYTHONPATH=/opt/x",
    "EMPTY=",
};

/* What an Open MPI 4.1 rank had (mpiexec.openmpi -n 1 env, then MPI_Init). */
static const char *const s_openmpi[] = {
    "OMPI_APP_CTX_NUM_PROCS=1",
    "OMPI_COMMAND=python3",
    "OMPI_ARGV=task.py",
    "OMPI_COMM_WORLD_LOCAL_RANK=0",
    "OMPI_COMM_WORLD_LOCAL_SIZE=1",
    "OMPI_COMM_WORLD_NODE_RANK=0",
    "OMPI_COMM_WORLD_RANK=0",
    "OMPI_COMM_WORLD_SIZE=1",
    "OMPI_FILE_LOCATION=/tmp/ompi.vm.0/pid.19468/0/0",
    "OMPI_FIRST_RANKS=0",
    "OMPI_MCA_ess=pmi",
    "OMPI_MCA_ess_base_jobid=552730625",
    "OMPI_MCA_ess_base_vpid=0",
    "OMPI_MCA_initial_wdir=/tmp/hA",
    "OMPI_MCA_mpi_oversubscribe=0",
    "OMPI_MCA_orte_app_num=0",
    "OMPI_MCA_orte_bound_at_launch=1",
    "OMPI_MCA_orte_ess_node_rank=0",
    "OMPI_MCA_orte_ess_num_procs=1",
    "OMPI_MCA_orte_hnp_uri=552730624.0;tcp://192.0.2.2:35789",
    "OMPI_MCA_orte_jobfam_session_dir=/tmp/ompi.vm.0/pid.19468",
    "OMPI_MCA_orte_launch=1",
    "OMPI_MCA_orte_local_daemon_uri=552730624.0;tcp://192.0.2.2:35789",
    "OMPI_MCA_orte_num_nodes=1",
    "OMPI_MCA_orte_precondition_transports=233161c682f27a17-628b2b3014002ce2",
    "OMPI_MCA_orte_top_session_dir=/tmp/ompi.vm.0",
    "OMPI_MCA_pmix=^s1,s2,cray,isolated",
    "OMPI_MCA_shmem_RUNTIME_QUERY_hint=mmap",
    "OMPI_NUM_APP_CTX=1",
    "OMPI_UNIVERSE_SIZE=2",
    "PMIX_BFROP_BUFFER_TYPE=PMIX_BFROP_BUFFER_NON_DESC",
    "PMIX_DSTORE_21_BASE_PATH=/tmp/ompi.vm.0/pid.19468/pmix_dstor_ds21_19468",
    "PMIX_DSTORE_ESH_BASE_PATH=/tmp/ompi.vm.0/pid.19468/pmix_dstor_ds12_19468",
    "PMIX_GDS_MODULE=ds21,ds12,hash",
    "PMIX_HOSTNAME=vm",
    "PMIX_ID=552730625.0",
    "PMIX_NAMESPACE=552730625",
    "PMIX_RANK=0",
    "PMIX_SECURITY_MODE=native",
    "PMIX_SERVER_TMPDIR=/tmp/ompi.vm.0/pid.19468",
    "PMIX_SERVER_URI2=552730624.0;tcp4://127.0.0.1:34847",
    "PMIX_SERVER_URI21=552730624.0;tcp4://127.0.0.1:34847",
    "PMIX_SERVER_URI3=552730624.0;tcp4://127.0.0.1:34847",
    "PMIX_SERVER_URI4=552730624.0;tcp4://127.0.0.1:34847",
    "PMIX_SERVER_URI41=552730624.0;tcp4://127.0.0.1:34847",
    "PMIX_SYSTEM_TMPDIR=/tmp",
    "PMIX_VERSION=4.2.2rc2",
};

/* What an MPICH 4 rank had (mpiexec.mpich -n 1 env). */
static const char *const s_mpich[] = {
    "HYDI_CONTROL_FD=7", "MPIR_CVAR_CH3_INTERFACE_HOSTNAME=vm",
    "MPI_LOCALNRANKS=1", "MPI_LOCALRANKID=0",
    "PMI_FD=9",          "PMI_RANK=0",
    "PMI_SIZE=1",        "PMI_PORT=vm:4242",
    "PMI_ID=0",
};

/* What a task of an srun step has beyond its job's variables. */
static const char *const s_srun[] = {
    "SLURM_STEP_ID=3",
    "SLURM_STEPID=3",
    "SLURM_STEP_NODELIST=node1",
    "SLURM_STEP_NUM_TASKS=1",
    "SLURM_STEP_TASKS_PER_NODE=1",
    "SLURM_PROCID=0",
    "SLURM_LOCALID=0",
    "SLURM_TASK_PID=12345",
    "SLURM_GTIDS=0",
    "SLURM_SRUN_COMM_HOST=10.0.0.1",
    "SLURM_SRUN_COMM_PORT=40000",
    "SLURM_CPU_BIND=quiet,mask_cpu:0x1",
    "SLURM_CPU_BIND_TYPE=mask_cpu:",
    "SLURM_CPU_BIND_LIST=0x1",
    "SLURM_CPU_BIND_VERBOSE=quiet",
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* user settings interleaved with the launcher's, NULL-terminated, in a
 * malloc'ed array of pointers to the (constant) strings */
static char **s_env(const char *const *extra, size_t nextra)
{
    char **env = calloc(N(s_user) + nextra + 1, sizeof *env);
    CHECK(env);
    size_t k = 0, u = 0, e = 0;
    while (u < N(s_user) || e < nextra) {
        if (e < nextra)
            env[k++] = (char *)extra[e++];
        if (u < N(s_user))
            env[k++] = (char *)s_user[u++];
    }
    env[k] = NULL;
    return env;
}

/* Cleaning env must remove exactly the nextra launcher entries, keep every
 * user entry, and keep the users' order. */
static void s_check_clean(const char *const *extra, size_t nextra)
{
    char **env = s_env(extra, nextra);
    CHECK(pmp_environ_nested(env) == 1);
    CHECK(pmp_environ_clean(env) == nextra);
    CHECK(s_count(env) == N(s_user));
    for (size_t i = 0; i < N(s_user); i++)
        CHECK(env[i] == s_user[i]); /* the same strings, in their order */
    for (size_t i = 0; i < nextra; i++) {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(extra[i], "="), extra[i]);
        CHECK(!s_has(env, name));
    }
    CHECK(pmp_environ_nested(env) == 0);
    CHECK(pmp_environ_clean(env) == 0); /* idempotent */
    free(env);
}

static void s_test_rule(void)
{
    for (size_t i = 0; i < N(s_user); i++)
        CHECK(pmp_environ_internal(s_user[i]) == 0);
    for (size_t i = 0; i < N(s_openmpi); i++)
        CHECK(pmp_environ_internal(s_openmpi[i]) == 1);
    for (size_t i = 0; i < N(s_mpich); i++)
        CHECK(pmp_environ_internal(s_mpich[i]) == 1);
    for (size_t i = 0; i < N(s_srun); i++)
        CHECK(pmp_environ_internal(s_srun[i]) == 1);
    /* names, not prefixes of names, unless the rule says prefix */
    CHECK(pmp_environ_internal("PMI_RANKS=3") == 0);
    CHECK(pmp_environ_internal("OMPI_MCA_essx=1") == 0);
    CHECK(pmp_environ_internal("OMPI_MCA_orte_hnp_uri_extra=1") == 0);
    CHECK(pmp_environ_internal("XPMIX_RANK=0") == 0);
    CHECK(pmp_environ_internal("PMIX_RANK") == 1); /* a bare name */
    CHECK(pmp_environ_internal("PMIX_MCA_psec=native") == 0);
    CHECK(pmp_environ_internal("") == 0);
    CHECK(pmp_environ_internal("=x") == 0);
}

static void s_test_not_nested(void)
{
    /* no rank marks: untouched, even with launcher-looking names in it */
    const char *const odd[] = {"OMPI_MCA_ess=^singleton", "PMIX_SERVER_TMPDIR=/tmp",
                               "SLURM_CPU_BIND=none", "SLURM_PROCID=0"};
    char **env = s_env(odd, N(odd));
    size_t before = s_count(env);
    CHECK(pmp_environ_nested(env) == 0);
    CHECK(pmp_environ_clean(env) == 0);
    CHECK(s_count(env) == before);
    free(env);
    char *empty[] = {NULL};
    CHECK(pmp_environ_nested(empty) == 0);
    CHECK(pmp_environ_clean(empty) == 0);
    CHECK(empty[0] == NULL);
    /* each mark alone makes it nested */
    const char *marks[] = {"OMPI_COMM_WORLD_SIZE=2",
                           "OMPI_COMM_WORLD_RANK=1",
                           "PMIX_RANK=0",
                           "PMIX_NAMESPACE=x",
                           "PMI_RANK=0",
                           "PMI_FD=5",
                           "PMI_PORT=h:1",
                           "HYDI_CONTROL_FD=4",
                           "SLURM_STEP_ID=0",
                           "SLURM_STEPID=0"};
    for (size_t i = 0; i < N(marks); i++) {
        char *one[] = {(char *)"A=1", (char *)marks[i], NULL};
        CHECK(pmp_environ_nested(one) == 1);
        CHECK(pmp_environ_clean(one) == 1);
        CHECK(one[0] != NULL && strcmp(one[0], "A=1") == 0 && one[1] == NULL);
    }
}

int main(void)
{
    s_test_rule();
    s_check_clean(s_openmpi, N(s_openmpi));
    s_check_clean(s_mpich, N(s_mpich));
    s_check_clean(s_srun, N(s_srun));
    s_test_not_nested();
    printf("unit.environ: ok\n");
    return 0;
}
