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
    if (!cfg->flux && (!cfg->mpiexec || !*cfg->mpiexec)) {
        pmp_error_set(err, "mpiexec (the name or path of the MPI launcher) must be given");
        return -1;
    }
    if (cfg->runtime_args)
        for (size_t i = 0; cfg->runtime_args[i]; i++)
            if (i > 100000) {
                pmp_error_set(err, "runtime_args must be NULL-terminated");
                return -1;
            }
    if (cfg->hostname && s_check_hostname(cfg->hostname, err) < 0)
        return -1;
    return 0;
}

char **pmp_command_argv(const pmp_executor_config_t *cfg, const char *endpoint,
                        const char *credentials)
{
    char n[32], k[32], pid[32], host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(n, sizeof n, "%d", cfg->ranks);
    snprintf(k, sizeof k, "%d", cfg->ranks_per_group);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    const char *head[20];
    size_t h = 0;
    if (cfg->flux) {
        head[h++] = "flux";
        head[h++] = "run";
    } else {
        head[h++] = cfg->mpiexec;
    }
    head[h++] = "-n";
    head[h++] = n;
    if (!cfg->flux && cfg->oversubscribe && cfg->mpi_flavour &&
        strcmp(cfg->mpi_flavour, "openmpi") == 0)
        head[h++] = "--oversubscribe";
    head[h++] = cfg->runtime;
    head[h++] = "--endpoint";
    head[h++] = endpoint;
    head[h++] = "--ranks-per-group";
    head[h++] = k;
    head[h++] = "--frontend-pid";
    head[h++] = pid;
    head[h++] = "--frontend-host";
    head[h++] = host;
    head[h++] = "--credentials";
    head[h++] = credentials;
    size_t extra = 0;
    while (cfg->runtime_args && cfg->runtime_args[extra])
        extra++;
    char **argv = calloc(h + extra + 1, sizeof *argv);
    if (!argv)
        return NULL;
    for (size_t i = 0; i < h + extra; i++) {
        argv[i] = strdup(i < h ? head[i] : cfg->runtime_args[i - h]);
        if (!argv[i]) {
            while (i-- > 0)
                free(argv[i]);
            free(argv);
            return NULL;
        }
    }
    return argv;
}
