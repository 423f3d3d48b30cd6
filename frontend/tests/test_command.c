/*
 * test_command.c - unit test of pmp_command (unit.command): the launch
 * command of every launcher, as the executor would run it, and the
 * configuration checks that refuse what no launcher can do.  mpiexec of
 * MPICH and of Open MPI (hosts, hostfile, OMP_NUM_THREADS, oversubscribe,
 * the ob1 PML on one host),
 * srun (PMI, --exact, --cpus-per-task, --chdir, --export), flux run (not
 * installed here: this test is what covers its command line), and
 * launcher_args before the runtime in each.  Exits 0 on success; prints
 * the failing check and exits 1.
 */
#include "pmp_command.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_check.h"

/* Index of arg in argv, or -1. */
static int s_find(char **argv, const char *arg)
{
    for (int i = 0; argv[i]; i++)
        if (strcmp(argv[i], arg) == 0)
            return i;
    return -1;
}

static void s_free(char **argv)
{
    for (size_t i = 0; argv[i]; i++)
        free(argv[i]);
    free(argv);
}

static pmp_executor_config_t s_base(void)
{
    static const char *const rt_args[] = {"--cwd", "/tmp", NULL};
    pmp_executor_config_t c;
    memset(&c, 0, sizeof c);
    c.ranks = 4;
    c.ranks_per_group = 2;
    c.pipeline_depth = 1;
    c.launch = 1;
    c.mpi_flavour = "mpich";
    c.mpiexec = "/usr/bin/mpiexec.mpich";
    c.runtime = "/opt/bin/pympipool-runtime";
    c.runtime_args = rt_args;
    return c;
}

/* The runtime's part is the same whatever the launcher: it starts at the
 * runtime, and the launcher's arguments all come before it. */
static int s_runtime_at(char **argv)
{
    int r = s_find(argv, "/opt/bin/pympipool-runtime");
    CHECK(r > 0);
    CHECK(strcmp(argv[r + 1], "--endpoint") == 0 && strcmp(argv[r + 2], "ipc:///x/s") == 0);
    CHECK(strcmp(argv[r + 3], "--ranks-per-group") == 0 && strcmp(argv[r + 4], "2") == 0);
    CHECK(s_find(argv, "--credentials") > r);
    CHECK(strcmp(argv[s_find(argv, "--cwd") + 1], "/tmp") == 0);
    return r;
}

static void test_mpiexec(void)
{
    pmp_executor_config_t c = s_base();
    pmp_error_t err;
    CHECK(pmp_command_validate(&c, &err) == 0);
    char **a = pmp_command_argv(&c, "ipc:///x/s", "/x/credentials");
    CHECK(a && strcmp(a[0], "/usr/bin/mpiexec.mpich") == 0 && strcmp(a[1], "-n") == 0 &&
          strcmp(a[2], "4") == 0);
    CHECK(s_runtime_at(a) == 3);
    s_free(a);

    static const char *const hosts[] = {"h1", "h2", NULL};
    static const char *const extra[] = {"-bind-to", "core", NULL};
    c.hosts = hosts;
    c.threads_per_core = 3;
    c.launcher_args = extra;
    CHECK(pmp_command_validate(&c, &err) == 0);
    a = pmp_command_argv(&c, "ipc:///x/s", "/x/credentials");
    int h = s_find(a, "-hosts");
    CHECK(h > 0 && strcmp(a[h + 1], "h1,h2") == 0);
    int g = s_find(a, "-genv");
    CHECK(g > 0 && strcmp(a[g + 1], "OMP_NUM_THREADS") == 0 && strcmp(a[g + 2], "3") == 0);
    int b = s_find(a, "-bind-to");
    int r = s_runtime_at(a);
    CHECK(b > g && b + 2 == r && strcmp(a[b + 1], "core") == 0);
    s_free(a);

    /* Open MPI spells them its own way */
    c.mpi_flavour = "openmpi";
    c.oversubscribe = 1;
    c.hosts = NULL;
    c.hostfile = "/etc/hosts.mpi";
    c.launcher_args = NULL;
    a = pmp_command_argv(&c, "ipc:///x/s", "/x/credentials");
    CHECK(s_find(a, "--oversubscribe") == 3);
    h = s_find(a, "--hostfile");
    CHECK(h > 0 && strcmp(a[h + 1], "/etc/hosts.mpi") == 0);
    int x = s_find(a, "-x");
    CHECK(x > 0 && strcmp(a[x + 1], "OMP_NUM_THREADS=3") == 0);
    CHECK(s_find(a, "-hosts") < 0 && s_find(a, "-genv") < 0);
    s_runtime_at(a);
    s_free(a);
}

/* Open MPI on one host gets the ob1 messaging layer, unless the user chose
 * one or the ranks may be elsewhere. */
static int s_has_pml_ob1(const pmp_executor_config_t *c)
{
    char **a = pmp_command_argv(c, "ipc:///x/s", "/x/credentials");
    CHECK(a);
    int m = s_find(a, "ob1");
    int yes = m > 2 && strcmp(a[m - 1], "pml") == 0 && strcmp(a[m - 2], "--mca") == 0;
    CHECK(yes || m < 0);
    CHECK(!yes || m < s_runtime_at(a));
    s_free(a);
    return yes;
}

static void test_openmpi_pml(void)
{
    static const char *const allocation[] = {"SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID",
                                             "PE_HOSTFILE", NULL};
    static const char *const hosts[] = {"h1", NULL};
    static const char *const ucx[] = {"--mca", "pml", "ucx", NULL};
    unsetenv("OMPI_MCA_pml");
    for (size_t i = 0; allocation[i]; i++)
        unsetenv(allocation[i]);
    pmp_executor_config_t c = s_base();
    CHECK(!s_has_pml_ob1(&c)); /* MPICH: never */
    c.mpi_flavour = "openmpi";
    CHECK(s_has_pml_ob1(&c));
    c.hosts = hosts;
    CHECK(!s_has_pml_ob1(&c));
    c.hosts = NULL;
    c.hostfile = "/etc/hosts.mpi";
    CHECK(!s_has_pml_ob1(&c));
    c.hostfile = NULL;
    c.hostname = "127.0.0.1";
    CHECK(!s_has_pml_ob1(&c));
    c.hostname = NULL;
    c.launch = 0; /* a queue adapter's job may span nodes */
    CHECK(!s_has_pml_ob1(&c));
    c.launch = 1;
    c.launcher_args = ucx;
    CHECK(!s_has_pml_ob1(&c));
    c.launcher_args = NULL;
    for (size_t i = 0; allocation[i]; i++) {
        setenv(allocation[i], "17", 1);
        CHECK(!s_has_pml_ob1(&c));
        unsetenv(allocation[i]);
    }
    setenv("OMPI_MCA_pml", "ucx", 1);
    CHECK(!s_has_pml_ob1(&c));
    unsetenv("OMPI_MCA_pml");
    CHECK(s_has_pml_ob1(&c));
}

static void test_srun(void)
{
    pmp_executor_config_t c = s_base();
    pmp_error_t err;
    c.srun = 1;
    c.mpiexec = "/usr/bin/srun";
    c.srun_mpi = "pmi2";
    c.srun_exact = 1;
    c.cwd = "/work/run";
    static const char *const extra[] = {"--gpus-per-task=1", NULL};
    c.launcher_args = extra;
    CHECK(pmp_command_validate(&c, &err) == 0);
    char **a = pmp_command_argv(&c, "ipc:///x/s", "/x/credentials");
    CHECK(strcmp(a[0], "/usr/bin/srun") == 0);
    CHECK(s_find(a, "--ntasks=4") > 0);
    CHECK(s_find(a, "--cpus-per-task=1") > 0); /* explicit, whatever the site's default */
    CHECK(s_find(a, "--kill-on-bad-exit=1") > 0);
    CHECK(s_find(a, "--mpi=pmi2") > 0);
    CHECK(s_find(a, "--exact") > 0);
    int d = s_find(a, "--chdir");
    CHECK(d > 0 && strcmp(a[d + 1], "/work/run") == 0);
    CHECK(s_find(a, "-n") < 0);
    int r = s_runtime_at(a);
    CHECK(s_find(a, "--gpus-per-task=1") == r - 1);
    CHECK(s_find(a, "--export=ALL,OMP_NUM_THREADS=1") < 0); /* only when asked for */
    s_free(a);

    c.threads_per_core = 8;
    c.srun_mpi = NULL; /* the site's MpiDefault */
    c.srun_exact = 0;
    c.launcher_args = NULL;
    a = pmp_command_argv(&c, "ipc:///x/s", "/x/credentials");
    CHECK(s_find(a, "--cpus-per-task=8") > 0);
    CHECK(s_find(a, "--export=ALL,OMP_NUM_THREADS=8") > 0);
    CHECK(s_find(a, "--exact") < 0);
    for (int i = 0; a[i]; i++)
        CHECK(strncmp(a[i], "--mpi", 5) != 0);
    s_runtime_at(a);
    s_free(a);

    /* what srun cannot do */
    static const char *const hosts[] = {"h1", NULL};
    c.hosts = hosts;
    CHECK(pmp_command_validate(&c, &err) == -1 && strstr(err.text, "hosts and hostfile"));
    c.hosts = NULL;
    c.flux = 1;
    CHECK(pmp_command_validate(&c, &err) == -1 && strstr(err.text, "not both"));
    c.flux = 0;
    c.srun_mpi = "pmi2 --x";
    CHECK(pmp_command_validate(&c, &err) == -1 && strstr(err.text, "srun_mpi"));
}

static void test_flux(void)
{
    pmp_executor_config_t c = s_base();
    pmp_error_t err;
    c.flux = 1;
    c.mpiexec = NULL;
    c.threads_per_core = 2;
    static const char *const extra[] = {"--setattr=system.duration=60", NULL};
    c.launcher_args = extra;
    CHECK(pmp_command_validate(&c, &err) == 0);
    char **a = pmp_command_argv(&c, "ipc:///x/s", "/x/credentials");
    CHECK(strcmp(a[0], "flux") == 0 && strcmp(a[1], "run") == 0 && strcmp(a[2], "-n") == 0 &&
          strcmp(a[3], "4") == 0);
    CHECK(s_find(a, "--cores-per-task=2") > 0);
    CHECK(s_find(a, "--env=OMP_NUM_THREADS=2") > 0);
    int r = s_runtime_at(a);
    CHECK(s_find(a, "--setattr=system.duration=60") == r - 1);
    s_free(a);
}

static void test_refused(void)
{
    pmp_executor_config_t c = s_base();
    pmp_error_t err;
    static const char *const bad[] = {"h1,h2", NULL};
    static const char *const none[] = {NULL};
    static const char *const ok[] = {"h1", NULL};
    c.hosts = bad;
    CHECK(pmp_command_validate(&c, &err) == -1 && strstr(err.text, "h1,h2"));
    c.hosts = none;
    CHECK(pmp_command_validate(&c, &err) == -1 && strstr(err.text, "at least one"));
    c.hosts = ok;
    c.hostfile = "/etc/hosts.mpi";
    CHECK(pmp_command_validate(&c, &err) == -1 && strstr(err.text, "not both"));
    c.hosts = NULL;
    c.hostfile = "";
    CHECK(pmp_command_validate(&c, &err) == -1 && strstr(err.text, "hostfile"));
    c.hostfile = NULL;
    c.threads_per_core = -1;
    CHECK(pmp_command_validate(&c, &err) == -1 && strstr(err.text, "threads_per_core"));
    c.threads_per_core = 0;
    c.srun = 1;
    c.mpiexec = NULL;
    CHECK(pmp_command_validate(&c, &err) == -1 && strstr(err.text, "srun"));
}

int main(void)
{
    test_mpiexec();
    test_openmpi_pml();
    test_srun();
    test_flux();
    test_refused();
    return pmp_check_verdict("unit.command");
}
