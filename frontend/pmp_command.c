/*
 * pmp_command.c - the executor's configuration check and launch command
 * (see pmp_command.h).
 *
 * Why apart from the executor: both are pure functions of the
 * configuration, so they are easy to read and to change here, and the
 * executor's file keeps to its actor (thread, socket, scheduling).  The
 * command is argv as a list, never a shell line: nothing in it is ever
 * interpreted, whatever the paths contain.
 */
#include "pmp_command.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A hostname must name one address the runtime can connect to: an IP
 * address or the name of a network interface of this host.  A wildcard
 * would listen everywhere and give the runtime nothing to connect to. */
static int s_check_hostname(const char *h, pmp_error_t *err)
{
    static const char *const wildcards[] = {"*", "0.0.0.0", "::", "[::]", "0:0:0:0:0:0:0:0", NULL};
    for (size_t i = 0; wildcards[i]; i++)
        if (strcmp(h, wildcards[i]) == 0) {
            pmp_error_set(err,
                          "hostname '%s' is a wildcard: give one IP address or network "
                          "interface of this host that the runtime can connect to (for example "
                          "127.0.0.1, eth0 or this host's address on the cluster network)",
                          h);
            return -1;
        }
    if (!*h || strlen(h) > 200 || strpbrk(h, "/ \t\n;,")) {
        pmp_error_set(err, "hostname '%.200s' is not an IP address or network interface name", h);
        return -1;
    }
    return 0;
}

int pmp_command_validate(const pmp_executor_config_t *cfg, pmp_error_t *err)
{
    if (!cfg) {
        pmp_error_set(err, "the executor configuration must not be NULL");
        return -1;
    }
    if (cfg->ranks < 1) {
        pmp_error_set(err, "ranks must be at least 1, not %d", cfg->ranks);
        return -1;
    }
    if (cfg->ranks_per_group < 1) {
        pmp_error_set(err, "ranks_per_group must be at least 1, not %d", cfg->ranks_per_group);
        return -1;
    }
    if (cfg->ranks % cfg->ranks_per_group != 0) {
        pmp_error_set(err, "ranks_per_group (%d) must divide ranks (%d)", cfg->ranks_per_group,
                      cfg->ranks);
        return -1;
    }
    if (cfg->restart_limit < 0) {
        pmp_error_set(err, "restart_limit must be at least 0, not %d", cfg->restart_limit);
        return -1;
    }
    if (cfg->restart_limit > 0 && !cfg->launch) {
        pmp_error_set(err, "restart_limit must be 0 when the job is not launched here (a queue "
                           "adapter starts it): the executor could not start it again");
        return -1;
    }
    if (cfg->run_time_max_ms < 0) {
        pmp_error_set(err, "run_time_max_ms must be at least 0 (0: no limit), not %lld",
                      (long long)cfg->run_time_max_ms);
        return -1;
    }
    if (cfg->run_time_grace_ms < 0) {
        pmp_error_set(err, "run_time_grace_ms must be at least 0, not %d", cfg->run_time_grace_ms);
        return -1;
    }
    if (cfg->pipeline_depth < 1) {
        pmp_error_set(err, "pipeline_depth must be at least 1, not %d", cfg->pipeline_depth);
        return -1;
    }
    if (cfg->pipeline_depth_max != 0 &&
        (cfg->pipeline_depth_max < cfg->pipeline_depth || cfg->pipeline_depth_max > 4096)) {
        pmp_error_set(err,
                      "pipeline_depth_max must be 0 (the pipeline_depth) or between "
                      "pipeline_depth (%d) and 4096, not %d",
                      cfg->pipeline_depth, cfg->pipeline_depth_max);
        return -1;
    }
    if (!cfg->runtime || !*cfg->runtime) {
        pmp_error_set(err, "runtime (the path of pympipool-runtime) must be given");
        return -1;
    }
    if (cfg->flux && cfg->srun) {
        pmp_error_set(err, "choose one launcher: flux or srun, not both");
        return -1;
    }
    if (!cfg->flux && (!cfg->mpiexec || !*cfg->mpiexec)) {
        pmp_error_set(err, cfg->srun ? "mpiexec (the name or path of srun) must be given"
                                     : "mpiexec (the name or path of the MPI launcher) must be "
                                       "given");
        return -1;
    }
    if (cfg->threads_per_core < 0 || cfg->threads_per_core > 4096) {
        pmp_error_set(err, "threads_per_core must be between 1 and 4096 (0: not set), not %d",
                      cfg->threads_per_core);
        return -1;
    }
    if (cfg->srun_mpi && (!*cfg->srun_mpi || strpbrk(cfg->srun_mpi, " \t\n=,"))) {
        pmp_error_set(err,
                      "srun_mpi '%.100s' is not the name of a SLURM MPI plugin "
                      "(for example pmi2 or pmix)",
                      cfg->srun_mpi);
        return -1;
    }
    if ((cfg->hosts || cfg->hostfile) && (cfg->flux || cfg->srun)) {
        pmp_error_set(err,
                      "hosts and hostfile are for mpiexec: %s places the ranks on the "
                      "nodes of its own allocation",
                      cfg->srun ? "srun" : "flux run");
        return -1;
    }
    if (cfg->hosts && cfg->hostfile) {
        pmp_error_set(err, "give hosts or hostfile, not both");
        return -1;
    }
    if (cfg->hostfile && !*cfg->hostfile) {
        pmp_error_set(err, "hostfile must not be empty");
        return -1;
    }
    if (cfg->hosts) {
        size_t total = 0;
        for (size_t i = 0; cfg->hosts[i] && total < 4000; i++)
            total += strlen(cfg->hosts[i]) + 1;
        if (total >= 4000) {
            pmp_error_set(err, "hosts is longer than 4000 characters in all: give a hostfile");
            return -1;
        }
        if (!cfg->hosts[0]) {
            pmp_error_set(err, "hosts must name at least one host");
            return -1;
        }
        for (size_t i = 0; cfg->hosts[i]; i++)
            if (!*cfg->hosts[i] || strpbrk(cfg->hosts[i], ", \t\n") ||
                strlen(cfg->hosts[i]) > 255) {
                pmp_error_set(err,
                              "host '%.100s' is not a host name (one name per entry, "
                              "no commas or spaces)",
                              cfg->hosts[i]);
                return -1;
            }
    }
    const char *const *lists[] = {cfg->runtime_args, cfg->launcher_args, cfg->hosts};
    const char *names[] = {"runtime_args", "launcher_args", "hosts"};
    for (size_t l = 0; l < 3; l++)
        if (lists[l])
            for (size_t i = 0; lists[l][i]; i++)
                if (i > 100000) {
                    pmp_error_set(err, "%s must be NULL-terminated", names[l]);
                    return -1;
                }
    if (cfg->hostname && s_check_hostname(cfg->hostname, err) < 0)
        return -1;
    return 0;
}

/* A growing argv of malloc'ed strings; any failure sticks in ok. */
typedef struct {
    char **v;
    size_t n, cap;
    int ok;
} s_argv_t;

static void s_push(s_argv_t *a, const char *arg)
{
    if (!a->ok)
        return;
    if (a->n + 2 > a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        char **v = realloc(a->v, cap * sizeof *v);
        if (!v) {
            a->ok = 0;
            return;
        }
        a->v = v;
        a->cap = cap;
    }
    char *copy = strdup(arg);
    if (!copy) {
        a->ok = 0;
        return;
    }
    a->v[a->n++] = copy;
    a->v[a->n] = NULL;
}

static void s_push_all(s_argv_t *a, const char *const *args)
{
    for (size_t i = 0; args && args[i]; i++)
        s_push(a, args[i]);
}

/* Open MPI's mpiexec with every rank on this host: no hosts, no host file,
 * no TCP endpoint (which means ranks elsewhere), and no batch allocation
 * whose nodes mpiexec would spread the ranks over. */
static int s_openmpi_this_host_only(const pmp_executor_config_t *cfg)
{
    static const char *const allocation[] = {"SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID",
                                             "PE_HOSTFILE", NULL};
    if (!cfg->launch || cfg->hosts || cfg->hostfile || cfg->hostname)
        return 0;
    for (size_t i = 0; allocation[i]; i++)
        if (getenv(allocation[i]))
            return 0;
    return 1;
}

/* Whether the user chose Open MPI's messaging layer (PML) already, in the
 * environment or in launcher_args. */
static int s_pml_chosen(const pmp_executor_config_t *cfg)
{
    if (getenv("OMPI_MCA_pml"))
        return 1;
    for (size_t i = 0; cfg->launcher_args && cfg->launcher_args[i]; i++)
        if (strstr(cfg->launcher_args[i], "pml"))
            return 1;
    return 0;
}

/* The launcher and its flags, up to the runtime.  The ranks get
 * OMP_NUM_THREADS through the launcher's own flag for it: an mpiexec on
 * another host does not forward every variable by itself. */
static void s_launcher(s_argv_t *a, const pmp_executor_config_t *cfg)
{
    char buf[4096];
    int openmpi = cfg->mpi_flavour && strcmp(cfg->mpi_flavour, "openmpi") == 0;
    int t = cfg->threads_per_core;
    if (cfg->srun) {
        s_push(a, cfg->mpiexec);
        snprintf(buf, sizeof buf, "--ntasks=%d", cfg->ranks);
        s_push(a, buf);
        snprintf(buf, sizeof buf, "--cpus-per-task=%d", t ? t : 1);
        s_push(a, buf);
        s_push(a, "--kill-on-bad-exit=1");
        if (cfg->srun_mpi) {
            snprintf(buf, sizeof buf, "--mpi=%s", cfg->srun_mpi);
            s_push(a, buf);
        }
        if (cfg->srun_exact)
            s_push(a, "--exact");
        if (cfg->cwd) {
            s_push(a, "--chdir");
            s_push(a, cfg->cwd);
        }
        if (t) {
            snprintf(buf, sizeof buf, "--export=ALL,OMP_NUM_THREADS=%d", t);
            s_push(a, buf);
        }
    } else if (cfg->flux) {
        s_push(a, "flux");
        s_push(a, "run");
        snprintf(buf, sizeof buf, "%d", cfg->ranks);
        s_push(a, "-n");
        s_push(a, buf);
        if (t) {
            snprintf(buf, sizeof buf, "--cores-per-task=%d", t);
            s_push(a, buf);
            snprintf(buf, sizeof buf, "--env=OMP_NUM_THREADS=%d", t);
            s_push(a, buf);
        }
    } else {
        s_push(a, cfg->mpiexec);
        snprintf(buf, sizeof buf, "%d", cfg->ranks);
        s_push(a, "-n");
        s_push(a, buf);
        if (cfg->oversubscribe && openmpi)
            s_push(a, "--oversubscribe");
        /* On one host Open MPI's ob1 layer (shared memory) is what carries
         * the messages anyway; without it MPI_Init first probes for
         * network fabrics (PSM, PSM2, OFI), 0.2 s of every start here. */
        if (openmpi && s_openmpi_this_host_only(cfg) && !s_pml_chosen(cfg)) {
            s_push(a, "--mca");
            s_push(a, "pml");
            s_push(a, "ob1");
        }
        if (cfg->hosts) {
            size_t used = 0;
            buf[0] = '\0';
            for (size_t i = 0; cfg->hosts[i] && used < sizeof buf; i++)
                used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", i ? "," : "",
                                         cfg->hosts[i]);
            if (used >= sizeof buf) { /* validated: shorter than 4000 */
                a->ok = 0;
                return;
            }
            s_push(a, openmpi ? "--host" : "-hosts");
            s_push(a, buf);
        }
        if (cfg->hostfile) {
            s_push(a, openmpi ? "--hostfile" : "-f");
            s_push(a, cfg->hostfile);
        }
        if (t) {
            snprintf(buf, sizeof buf, "%d", t);
            if (openmpi) {
                s_push(a, "-x");
                snprintf(buf, sizeof buf, "OMP_NUM_THREADS=%d", t);
                s_push(a, buf);
            } else {
                s_push(a, "-genv");
                s_push(a, "OMP_NUM_THREADS");
                s_push(a, buf);
            }
        }
    }
    s_push_all(a, cfg->launcher_args);
}

char **pmp_command_argv(const pmp_executor_config_t *cfg, const char *endpoint,
                        const char *credentials)
{
    char k[32], pid[32], host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(k, sizeof k, "%d", cfg->ranks_per_group);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    s_argv_t a = {.ok = 1};
    s_launcher(&a, cfg);
    const char *const runtime[] = {cfg->runtime,
                                   "--endpoint",
                                   endpoint,
                                   "--ranks-per-group",
                                   k,
                                   "--frontend-pid",
                                   pid,
                                   "--frontend-host",
                                   host,
                                   "--credentials",
                                   credentials,
                                   NULL};
    s_push_all(&a, runtime);
    s_push_all(&a, cfg->runtime_args);
    if (!a.ok || !a.v) {
        for (size_t i = 0; i < a.n; i++)
            free(a.v[i]);
        free(a.v);
        errno = ENOMEM;
        return NULL;
    }
    return a.v;
}
