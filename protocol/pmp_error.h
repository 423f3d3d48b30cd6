/*
 * pmp_error.h - human-readable errors, logging and always-on assertions,
 * shared by every C part of pympipool (protocol, frontend, runtime).
 *
 * Functions return 0 / -1 with errno (NULL with errno for constructors) and,
 * where a user will read the reason, also fill a caller-supplied
 * pmp_error_t.  The Python binding turns these into exceptions in one place.
 */
#ifndef PMP_ERROR_H
#define PMP_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PMP_ERROR_TEXT 512

typedef struct {
    char text[PMP_ERROR_TEXT];
} pmp_error_t;

/* printf-style: writes a message into err; NULL err is allowed and ignored.
 * Preserves errno. */
void pmp_error_set(pmp_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Log levels; the threshold comes from PYMPIPOOL_LOG_LEVEL (error, warning,
 * info, debug or 0..3; default warning). */
typedef enum {
    PMP_LOG_ERROR = 0,
    PMP_LOG_WARNING = 1,
    PMP_LOG_INFO = 2,
    PMP_LOG_DEBUG = 3
} pmp_log_level_t;

/* Sets the prefix of every log line (e.g. "pympipool-runtime[rank 1/4 host]").
 * The string is copied.  Not thread-safe: call once at start-up. */
void pmp_log_set_prefix(const char *prefix);

/* Whether a message of this level would be printed. */
int pmp_log_enabled(pmp_log_level_t level);

/* Prints one line to stderr if level passes the threshold.  Preserves errno. */
void pmp_log(pmp_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hook called by PMP_ASSERT after printing, before abort(); the runtime
 * installs one that calls MPI_Abort so that no rank is left waiting. */
typedef void (*pmp_fatal_hook_t)(void);
void pmp_set_fatal_hook(pmp_fatal_hook_t hook);

void pmp_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Always-on assertion for states the program cannot continue from: prints
 * the expression, file:line and errno, calls the fatal hook, aborts. */
#define PMP_ASSERT(expr)                                                                           \
    do {                                                                                           \
        if (!(expr))                                                                               \
            pmp_assert_fail(#expr, __FILE__, __LINE__);                                            \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
