/*
 * pmp_relay.h - moves the launched job's stdout to this process's stdout,
 * without the launcher's failure banner (pmp_banner.h) and without ever
 * blocking the thread that drives it.  Internal to the frontend: owned by
 * the launcher, driven by the executor's I/O thread only.
 *
 * The job writes into a pipe; the relay reads it whenever it has room for
 * more (at most 64 KiB wait for the user's stdout: beyond that the job's
 * own writes block, as they would on an inherited stdout that does not
 * drain), passes the bytes through the banner filter and writes the
 * program output to out_fd only as much as out_fd takes at once.  What
 * cannot be written stays queued until out_fd polls writable.  A broken
 * out_fd (EPIPE, EBADF, EIO, ...) ends the relaying: output is read and
 * dropped from then on, so the job never blocks on it.  SIGPIPE is never
 * raised by the relay, whatever the process does with that signal.
 */
#ifndef PMP_RELAY_H
#define PMP_RELAY_H

#include <poll.h>
#include <stddef.h>

typedef struct pmp_relay pmp_relay_t;

/* Receives the launcher's banner (len bytes, in stream order). */
typedef void(pmp_relay_banner_fn)(void *arg, const char *data, size_t len);

/* How many pollfds pmp_relay_pollfds() fills at most. */
#define PMP_RELAY_MAX_FDS 2

/* Takes ownership of in_fd (the read end of the job's stdout pipe; made
 * non-blocking here) and of out_fd (where program output goes, usually a
 * close-on-exec duplicate of fd 1 made at launch; -1: it is dropped).
 * banner(arg, ...) gets the launcher's banner.  Returns NULL with errno =
 * ENOMEM (the fds are then closed). */
pmp_relay_t *pmp_relay_new(int in_fd, int out_fd, pmp_relay_banner_fn *banner, void *arg);

/* Closes both fds and drops what was not written.  NULL-safe; nulls
 * *self_p. */
void pmp_relay_destroy(pmp_relay_t **self_p);

/* Fills fds with what to poll: the pipe (POLLIN) while there is room for
 * more, out_fd (POLLOUT) while output waits for it.  Returns how many (0
 * to PMP_RELAY_MAX_FDS).  Lowers *timeout_ms (-1: none yet) to when held
 * output must be let go even if no more bytes come. */
int pmp_relay_pollfds(const pmp_relay_t *self, struct pollfd *fds, int *timeout_ms);

/* Reads what the pipe holds, filters it and writes what out_fd takes now;
 * never blocks.  Call after a poll that saw one of the fds ready or when
 * the timeout passed (calling it more often is harmless).  Returns 1 once
 * the pipe reached end of file and everything was written or dropped, 0
 * otherwise. */
int pmp_relay_pump(pmp_relay_t *self);

#endif
