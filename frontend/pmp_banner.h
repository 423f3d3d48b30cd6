/*
 * pmp_banner.h - separates an MPI launcher's failure banner from the
 * program output in the job's stdout stream.  Internal to the frontend;
 * used by pmp_relay, which moves the job's stdout to the user's.
 *
 * MPICH's hydra reports a rank that ended badly with a box on its *stdout*:
 *
 *     (empty line)
 *     =====================================================================
 *     =   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES
 *     =   RANK 0 PID 4712 RUNNING AT host
 *     =   KILLED BY SIGNAL: 9 (Killed)          (or "=   EXIT CODE: 9")
 *     =   CLEANING UP REMAINING PROCESSES
 *     =   YOU CAN IGNORE THE BELOW CLEANUP MESSAGES
 *     =====================================================================
 *     YOUR APPLICATION TERMINATED WITH THE EXIT STRING: Killed (signal 9)
 *     This typically refers to a problem with your application.
 *     Please see the FAQ page for debugging suggestions
 *
 * The filter is a line-oriented state machine fed with arbitrary chunks:
 * every byte comes out exactly once, in order, through the sink, marked as
 * banner or as text.  Text goes out as soon as it cannot be part of a
 * banner, partial lines included; only a line that may open a banner (an
 * empty line or a line of '=') is held back until the next line decides,
 * or until pmp_banner_flush() after a pause.  Not thread-safe; allocates
 * nothing after creation.
 */
#ifndef PMP_BANNER_H
#define PMP_BANNER_H

#include <stddef.h>

typedef struct pmp_banner pmp_banner_t;

/* Receives the decided bytes, in stream order: banner != 0 for the
 * launcher's banner, 0 for program output. */
typedef void(pmp_banner_sink_fn)(void *arg, int banner, const char *data, size_t len);

/* Returns a filter at the start of a stream, or NULL with errno = ENOMEM. */
pmp_banner_t *pmp_banner_new(void);

/* NULL-safe; nulls *self_p. */
void pmp_banner_destroy(pmp_banner_t **self_p);

/* Feeds len bytes; calls sink for every range decided by them. */
void pmp_banner_feed(pmp_banner_t *self, const char *data, size_t len, pmp_banner_sink_fn *sink,
                     void *arg);

/* 1 if program output (a possible banner opening) is held back, waiting
 * for the next line: the caller flushes it after a short pause. */
int pmp_banner_holding(const pmp_banner_t *self);

/* Decides what is held: at_eof == 0 (a pause) lets held program output go
 * as text and keeps waiting inside a banner; at_eof != 0 (end of stream)
 * decides everything and starts over. */
void pmp_banner_flush(pmp_banner_t *self, int at_eof, pmp_banner_sink_fn *sink, void *arg);

#endif
