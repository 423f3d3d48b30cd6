/*
 * pmp_tail.h - keeps the last bytes of a stream (the launched job's stderr)
 * so that an error message can quote how it ended.  Internal to the frontend;
 * not thread-safe: used by one thread, the one that owns the launcher
 * (pmp_launcher.h: the executor's I/O thread or a channel's keeper).
 */
#ifndef PMP_TAIL_H
#define PMP_TAIL_H

#include <stddef.h>

typedef struct pmp_tail pmp_tail_t;

/* Returns a tail keeping the last capacity bytes (>= 1), or NULL with errno. */
pmp_tail_t *pmp_tail_new(size_t capacity);

/* NULL-safe; nulls *self_p. */
void pmp_tail_destroy(pmp_tail_t **self_p);

/* Appends len bytes; older bytes beyond the capacity are forgotten. */
void pmp_tail_append(pmp_tail_t *self, const void *data, size_t len);

/* Returns the kept bytes as a malloc'ed NUL-terminated string (caller
 * frees), NUL bytes replaced by '?', trailing newlines removed, and, when
 * older bytes were dropped, starting after the first newline so that the
 * text begins with a whole line.  NULL with errno = ENOMEM on failure. */
char *pmp_tail_text(const pmp_tail_t *self);

#endif
