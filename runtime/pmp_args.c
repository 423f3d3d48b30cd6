/*
 * pmp_args.c - parses the runtime's command line (see pmp_args.h).
 *
 * A small hand-written parser rather than getopt_long: getopt permutes and
 * prints its own messages, while the runtime wants one sentence naming the
 * offending option, printed by main() once per job.  Numbers are checked
 * with strtol and full-string matches, so "--ranks-per-group 2x" is an error
 * and not 2.
 */
#include "pmp_args.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int s_parse_long(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static const char s_synopsis[] =
    "usage: pympipool-runtime --endpoint ENDPOINT --python-executable PATH\n"
    "                         [--ranks-per-group K] [--frontend-pid PID]\n"
    "                         [--frontend-host HOST] [--cwd DIR]\n"
    "                         [--credentials FILE]\n"
    "                         [--sys-path DIR]... [--log-level LEVEL]\n"
    "                         [--run-time-max SECONDS] [--shm-host HOST]\n"
    "       pympipool-runtime --help | --version\n";

void pmp_args_usage_short(FILE *out)
{
    fprintf(out, "%sRun 'pympipool-runtime --help' for details.\n", s_synopsis);
}

void pmp_args_usage(FILE *out)
{
    fprintf(out,
            "%s"
            "\n"
            "The MPI side of pympipool: started by the pympipool frontend as\n"
            "'mpiexec -n N pympipool-runtime ...'; not meant to be run by hand.\n"
            "\n"
            "  --endpoint ENDPOINT        ZeroMQ endpoint of the frontend (ipc:// or tcp://)\n"
            "  --ranks-per-group K        ranks per group; must divide the number of ranks "
            "(default 1)\n"
            "  --frontend-pid PID         exit when this process is gone\n"
            "  --frontend-host HOST       host of --frontend-pid; on any other host the\n"
            "                             connection's heartbeats tell whether it is alive\n"
            "  --credentials FILE         the frontend's credentials file (mode 0600, this\n"
            "                             user's); required for a tcp:// endpoint\n"
            "  --python-executable PATH   interpreter whose environment the ranks use\n"
            "  --cwd DIR                  working directory of every rank\n"
            "  --sys-path DIR             one sys.path entry; repeat for each, in order\n"
            "  --log-level LEVEL          error, warning, info or debug (PYMPIPOOL_LOG_LEVEL)\n"
            "  --run-time-max SECONDS     per-call time limit: a call that runs longer raises\n"
            "                             TimeoutError on its rank (0: none)\n"
            "  --shm-host HOST            the caller is on HOST and maps shared segments: a\n"
            "                             group leader on HOST returns large buffers in them\n"
            "  --help                     print this text and exit\n"
            "  --version                  print the runtime, MPI and Python versions and exit\n",
            s_synopsis);
}

void pmp_args_release(pmp_args_t *args)
{
    if (!args)
        return;
    free(args->sys_path);
    args->sys_path = NULL;
    args->nsys_path = 0;
}

/* Options that take a value. */
static const char *const s_valued[] = {
    "--endpoint",     "--ranks-per-group", "--frontend-pid", "--python-executable",
    "--cwd",          "--sys-path",        "--log-level",    "--credentials",
    "--run-time-max", "--frontend-host",   "--shm-host",     NULL};

static int s_fail(pmp_args_t *args, pmp_error_t *err, int code)
{
    pmp_args_release(args);
    errno = code;
    return -1;
}

int pmp_args_parse(pmp_args_t *args, int argc, char **argv, pmp_error_t *err)
{
    memset(args, 0, sizeof *args);
    args->ranks_per_group = 1;
    if (argc > 0) {
        args->sys_path = calloc((size_t)argc, sizeof *args->sys_path);
        if (!args->sys_path) {
            pmp_error_set(err, "out of memory while parsing arguments");
            return s_fail(args, err, ENOMEM);
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            args->help = 1;
            continue;
        }
        if (strcmp(arg, "--version") == 0) {
            args->version = 1;
            continue;
        }
        const char *name = NULL;
        size_t namelen = 0;
        for (int k = 0; s_valued[k]; k++) {
            size_t n = strlen(s_valued[k]);
            if (strncmp(arg, s_valued[k], n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
                name = s_valued[k];
                namelen = n;
                break;
            }
        }
        if (!name) {
            pmp_error_set(err, "unknown argument '%s'", arg);
            return s_fail(args, err, EINVAL);
        }
        const char *value;
        if (arg[namelen] == '=') {
            value = arg + namelen + 1;
        } else {
            if (i + 1 >= argc) {
                pmp_error_set(err, "option %s needs a value", name);
                return s_fail(args, err, EINVAL);
            }
            value = argv[++i];
        }
        long num = 0;
        if (strcmp(name, "--endpoint") == 0) {
            if (*value == '\0') {
                pmp_error_set(err, "--endpoint must not be empty");
                return s_fail(args, err, EINVAL);
            }
            args->endpoint = value;
        } else if (strcmp(name, "--ranks-per-group") == 0) {
            if (s_parse_long(value, 1, INT_MAX, &num) != 0) {
                pmp_error_set(err, "--ranks-per-group must be a positive integer, not '%s'", value);
                return s_fail(args, err, EINVAL);
            }
            args->ranks_per_group = (int)num;
        } else if (strcmp(name, "--frontend-pid") == 0) {
            if (s_parse_long(value, 1, INT_MAX, &num) != 0) {
                pmp_error_set(err, "--frontend-pid must be a positive process id, not '%s'", value);
                return s_fail(args, err, EINVAL);
            }
            args->frontend_pid = (pid_t)num;
        } else if (strcmp(name, "--frontend-host") == 0) {
            if (*value == '\0') {
                pmp_error_set(err, "--frontend-host must not be empty");
                return s_fail(args, err, EINVAL);
            }
            args->frontend_host = value;
        } else if (strcmp(name, "--python-executable") == 0) {
            if (*value == '\0') {
                pmp_error_set(err, "--python-executable must not be empty");
                return s_fail(args, err, EINVAL);
            }
            args->python_executable = value;
        } else if (strcmp(name, "--cwd") == 0) {
            if (*value == '\0') {
                pmp_error_set(err, "--cwd must not be empty");
                return s_fail(args, err, EINVAL);
            }
            args->cwd = value;
        } else if (strcmp(name, "--sys-path") == 0) {
            args->sys_path[args->nsys_path++] = value;
        } else if (strcmp(name, "--credentials") == 0) {
            if (*value == '\0') {
                pmp_error_set(err, "--credentials must not be empty");
                return s_fail(args, err, EINVAL);
            }
            args->credentials = value;
        } else if (strcmp(name, "--log-level") == 0) {
            args->log_level = value;
        } else if (strcmp(name, "--run-time-max") == 0) {
            char *end = NULL;
            errno = 0;
            double seconds = strtod(value, &end);
            if (errno || end == value || *end != '\0' || !(seconds >= 0.0 && seconds <= 1e9)) {
                pmp_error_set(err, "--run-time-max must be a number of seconds >= 0, not '%s'",
                              value);
                return s_fail(args, err, EINVAL);
            }
            args->run_time_max = seconds;
        } else if (strcmp(name, "--shm-host") == 0) {
            if (*value == '\0') {
                pmp_error_set(err, "--shm-host must not be empty");
                return s_fail(args, err, EINVAL);
            }
            args->shm_host = value;
        }
    }
    if (args->help || args->version)
        return 0;
    if (!args->endpoint) {
        pmp_error_set(err, "missing --endpoint");
        return s_fail(args, err, EINVAL);
    }
    if (!args->python_executable) {
        pmp_error_set(err, "missing --python-executable");
        return s_fail(args, err, EINVAL);
    }
    return 0;
}
