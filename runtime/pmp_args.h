/*
 * pmp_args.h - the command line of pympipool-runtime.
 *
 * The frontend launches every rank with the same arguments:
 *
 *   pympipool-runtime --endpoint E --ranks-per-group K --frontend-pid P --frontend-host H
 *       --credentials FILE --python-executable X --cwd DIR --sys-path P1 --sys-path P2 ...
 *       [--log-level L] [--run-time-max SECONDS]
 *
 * Parsing happens before MPI_Init, touches no global state except that
 * --log-level sets PYMPIPOOL_LOG_LEVEL, and reports the first problem as a
 * sentence so that main() can print it with the usage and exit with 2.
 */
#ifndef PMP_ARGS_H
#define PMP_ARGS_H

#include <stdio.h>
#include <sys/types.h>

#include "pmp_error.h"

typedef struct {
    int help;                      /* --help / -h given */
    int version;                   /* --version given */
    const char *endpoint;          /* --endpoint (required) */
    int ranks_per_group;           /* --ranks-per-group, >= 1, default 1 */
    pid_t frontend_pid;            /* --frontend-pid, 0 when not given */
    const char *frontend_host;     /* --frontend-host, NULL when not given */
    const char *python_executable; /* --python-executable (required) */
    const char *cwd;               /* --cwd, NULL when not given */
    const char **sys_path;         /* --sys-path values, in order (malloc'ed array) */
    size_t nsys_path;
    const char *log_level;   /* --log-level, NULL when not given */
    const char *credentials; /* --credentials FILE (pmp_credentials.h), NULL when not given */
    double run_time_max;     /* --run-time-max seconds per call, 0 when not given */
    const char *shm_host;    /* --shm-host: the caller's host, which maps shared
                                segments; NULL when not given (no shared memory) */
} pmp_args_t;

/* Parses argv into *args.  Strings point into argv (not copied); the
 * sys_path array is malloc'ed and freed by pmp_args_release().  Accepts
 * "--opt value" and "--opt=value".  With --help or --version, required
 * options are not checked.  Returns 0, or -1 with errno = EINVAL (ENOMEM)
 * and the reason in err; on failure *args holds nothing to release. */
int pmp_args_parse(pmp_args_t *args, int argc, char **argv, pmp_error_t *err);

/* Frees what pmp_args_parse allocated.  Safe to call twice. */
void pmp_args_release(pmp_args_t *args);

/* Prints the full usage text (--help) to out. */
void pmp_args_usage(FILE *out);

/* Prints the synopsis and a pointer to --help (after an error) to out. */
void pmp_args_usage_short(FILE *out);

#endif
