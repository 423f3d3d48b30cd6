/*
 * pmp_error.c - error sentences, the one logging function and the always-on
 * assertion used by every C part of pympipool.
 *
 * Why it exists: the frontend runs inside a user's Python process and the
 * runtime inside MPI ranks; in both places a failure has to reach a human as
 * a sentence ("header frame is 7 bytes, expected 24"), not as a bare errno,
 * and a state the program cannot continue from has to end the process
 * loudly instead of leaving a rank waiting forever.
 *
 * How it works:
 *   - pmp_error_set() formats into a caller-owned fixed buffer; it never
 *     allocates, so it is safe on out-of-memory paths, and it preserves
 *     errno so that "set errno, fill err, return -1" can be written in any
 *     order.
 *   - pmp_log() reads the threshold from PYMPIPOOL_LOG_LEVEL exactly once,
 *     lazily, under pthread_once, so the first log call from any thread
 *     sees a fully parsed level and later calls cost one comparison.  Each
 *     line is formatted into a stack buffer and written with a single
 *     fwrite() so that lines from several threads (or ranks sharing one
 *     stderr pipe) do not interleave within a line.  Overlong lines are cut
 *     and end in "...".
 *   - pmp_assert_fail() prints the expression, file:line and errno, calls
 *     the fatal hook once (the runtime's hook calls MPI_Abort), then
 *     abort()s.  A hook that itself fails an assertion does not recurse.
 *
 * Guarantees: nothing here allocates on the heap, none of it calls into
 * Python or MPI, and pmp_error_set()/pmp_log() leave errno unchanged.
 */
#include "pmp_error.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest log line, prefix and level included; longer lines are cut. */
#define S_LINE_MAX 2048
#define S_PREFIX_MAX 256

static pthread_once_t s_level_once = PTHREAD_ONCE_INIT;
static int s_level = PMP_LOG_WARNING;
/* Set when PYMPIPOOL_LOG_LEVEL held something we could not parse; reported
 * by the first log line so that a typo does not silently hide messages. */
static char s_bad_level[64];

static char s_prefix[S_PREFIX_MAX] = "pympipool";

static _Atomic(pmp_fatal_hook_t) s_fatal_hook; /* zero: no hook */
static atomic_int s_failing = 0;

void pmp_error_set(pmp_error_t *err, const char *fmt, ...)
{
    if (!err)
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(err->text, sizeof err->text, "(unformattable error message)");
    errno = saved;
}

/* Parses a PYMPIPOOL_LOG_LEVEL value; returns -1 if it is not one. */
static int s_parse_level(const char *v)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {
        {"error", PMP_LOG_ERROR}, {"warning", PMP_LOG_WARNING}, {"warn", PMP_LOG_WARNING},
        {"info", PMP_LOG_INFO},   {"debug", PMP_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(v, names[i].name) == 0)
            return names[i].level;
    if (v[0] >= '0' && v[0] <= '3' && v[1] == '\0')
        return v[0] - '0';
    return -1;
}

static void s_level_init(void)
{
    const char *v = getenv("PYMPIPOOL_LOG_LEVEL");
    if (!v || !*v)
        return;
    int level = s_parse_level(v);
    if (level >= 0)
        s_level = level;
    else
        snprintf(s_bad_level, sizeof s_bad_level, "%s", v);
}

static int s_threshold(void)
{
    pthread_once(&s_level_once, s_level_init);
    return s_level;
}

void pmp_log_set_prefix(const char *prefix)
{
    snprintf(s_prefix, sizeof s_prefix, "%s", prefix ? prefix : "pympipool");
}

int pmp_log_enabled(pmp_log_level_t level)
{
    return (int)level <= s_threshold();
}

static const char *s_level_name(int level)
{
    switch (level) {
    case PMP_LOG_ERROR:
        return "error";
    case PMP_LOG_WARNING:
        return "warning";
    case PMP_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

/* Writes "<prefix>: <level>: <text>\n" with one fwrite. */
__attribute__((format(printf, 2, 0))) static void s_emit(const char *level_name, const char *fmt,
                                                         va_list ap)
{
    char line[S_LINE_MAX];
    int head = snprintf(line, sizeof line, "%s: %s: ", s_prefix, level_name);
    if (head < 0)
        return;
    size_t used = (size_t)head < sizeof line ? (size_t)head : sizeof line - 1;
    int body = vsnprintf(line + used, sizeof line - used, fmt, ap);
    if (body > 0)
        used += (size_t)body;
    if (used > sizeof line - 2) {
        /* Cut: end with "...\n" inside the buffer. */
        used = sizeof line - 2;
        memcpy(line + used - 3, "...", 3);
    }
    line[used++] = '\n';
    fwrite(line, 1, used, stderr);
}

void pmp_log(pmp_log_level_t level, const char *fmt, ...)
{
    int saved = errno;
    if (!pmp_log_enabled(level)) {
        errno = saved;
        return;
    }
    static atomic_int bad_level_reported = 0;
    if (s_bad_level[0] && atomic_exchange(&bad_level_reported, 1) == 0) {
        fprintf(stderr,
                "%s: warning: PYMPIPOOL_LOG_LEVEL='%s' is not error, warning, info, debug "
                "or 0..3; using warning\n",
                s_prefix, s_bad_level);
    }
    va_list ap;
    va_start(ap, fmt);
    s_emit(s_level_name((int)level), fmt, ap);
    va_end(ap);
    errno = saved;
}

void pmp_set_fatal_hook(pmp_fatal_hook_t hook)
{
    atomic_store(&s_fatal_hook, hook);
}

void pmp_assert_fail(const char *expr, const char *file, int line)
{
    int saved = errno;
    fprintf(stderr, "%s: fatal: assertion '%s' failed at %s:%d (errno %d: %s)\n", s_prefix, expr,
            file, line, saved, saved ? strerror(saved) : "no error");
    fflush(stderr);
    /* Only the first failure runs the hook: a hook that fails an assertion
     * itself, or a second thread failing meanwhile, goes straight to abort. */
    if (atomic_exchange(&s_failing, 1) == 0) {
        pmp_fatal_hook_t hook = atomic_load(&s_fatal_hook);
        if (hook)
            hook();
    }
    abort();
}
