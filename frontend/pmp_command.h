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

/* The launch command for cfg, which must be valid: [mpiexec, -n, N,
 * (--oversubscribe), runtime, --endpoint, endpoint, --ranks-per-group, K,
 * --frontend-pid, <this process>, --frontend-host, <this host>,
 * --credentials, credentials, runtime_args...], or [flux, run, -n, N,
 * runtime, ...].  A malloc'ed NULL-terminated array of malloc'ed strings
 * (caller frees both), or NULL with errno = ENOMEM. */
char **pmp_command_argv(const pmp_executor_config_t *cfg, const char *endpoint,
                        const char *credentials);

#endif
