/*
 * pmp_endpoint.h - where the executor's runtime connects: a private
 * directory, the ROUTER socket bound in it (ipc://) or on one address of
 * this host (tcp://), the authentication that admits only that runtime,
 * and the credentials file through which the runtime learns the secret.
 * Internal to the frontend.
 *
 * Ownership and threads.  pmp_executor_new() creates the endpoint; until
 * the executor's I/O thread starts, the creating thread owns all of it;
 * from then on the socket, the ZAP handler and the credentials file belong
 * to the I/O thread alone, which closes the socket before it ends.  The
 * address and the credentials path never change after new() and may be
 * read by any thread.  pmp_endpoint_destroy() runs after the I/O thread
 * was joined.
 *
 * Cost: new() makes one directory, one ZeroMQ context and socket, and
 * fresh keys (pmp_auth); the other functions are O(1) apart from writing
 * the small credentials file.  Nothing here blocks on the network.
 */
#ifndef PMP_ENDPOINT_H
#define PMP_ENDPOINT_H

#include <zmq.h>

#include "pmp_error.h"

typedef struct pmp_endpoint pmp_endpoint_t;

/* pmp_endpoint_pollitems() fills at most this many entries. */
#define PMP_ENDPOINT_MAX_ITEMS 2

/* Makes a fresh directory of mode 0700 under $TMPDIR (or /tmp) and either
 * listens on the Unix socket <dir>/frontend, address ipc://<dir>/frontend
 * (hostname NULL: the groups connect over local links, pmp_link.h, and
 * greet with a fresh PLAIN password), or binds a ROUTER socket
 * (ZMQ_ROUTER_MANDATORY, no send limit, linger 0) to
 * tcp://<hostname>:<port chosen by the system> with CURVE, served by a ZAP
 * handler in the endpoint's own ZeroMQ context.  hostname is an IP address
 * or the name of an interface of this host; a wildcard is refused.
 * Returns NULL with errno and a sentence in err (EINVAL: a hostname that
 * cannot be bound; ENAMETOOLONG: a socket path too long for a Unix socket;
 * ENOMEM), and then leaves no directory behind. */
pmp_endpoint_t *pmp_endpoint_new(const char *hostname, pmp_error_t *err);

/* Closes the socket (if still open), the ZAP handler and the context, and
 * removes the socket file, the credentials file and the directory.
 * NULL-safe; nulls *self_p. */
void pmp_endpoint_destroy(pmp_endpoint_t **self_p);

/* "ipc://<dir>/frontend" or "tcp://<address>:<port>", as the runtime must
 * connect; owned by the endpoint. */
const char *pmp_endpoint_address(const pmp_endpoint_t *self);

/* "<dir>/credentials", where pmp_endpoint_write_credentials() puts them. */
const char *pmp_endpoint_credentials_path(const pmp_endpoint_t *self);

/* The bound ROUTER socket of a tcp:// endpoint (NULL on ipc, or once
 * closed); the owning thread's only. */
void *pmp_endpoint_socket(const pmp_endpoint_t *self);

/* Closes the socket (tcp: giving unsent messages linger_ms to leave; ipc:
 * the listening socket, the links are the I/O thread's).  Idempotent. */
void pmp_endpoint_close_socket(pmp_endpoint_t *self, int linger_ms);

/* Fills items (room for PMP_ENDPOINT_MAX_ITEMS) with what the owning thread
 * polls for the handshakes, next to the socket; returns how many. */
int pmp_endpoint_pollitems(pmp_endpoint_t *self, zmq_pollitem_t *items);

/* Admits the runtime's handshakes and refuses (and logs) the rest, without
 * blocking.  Call it when one of those items is readable. */
void pmp_endpoint_serve(pmp_endpoint_t *self);

/* ipc: the listening Unix socket (-1 on tcp, or once closed), for poll();
 * the owning thread's only. */
int pmp_endpoint_listen_fd(const pmp_endpoint_t *self);

/* ipc: accepts the next waiting connection of a process of this user and
 * returns its descriptor (non-blocking, close-on-exec; the caller owns
 * it).  A connection of another uid is refused, logged and closed.
 * Returns -1 with errno EAGAIN when nobody waits (EBADF on tcp). */
int pmp_endpoint_accept(pmp_endpoint_t *self);

/* ipc: judges the first frame a connection sent (a link greeting,
 * pmp_link.h) as the ZAP handler judges a PLAIN handshake: 0 admits it,
 * -1 refuses it (logged and counted, naming peer). */
int pmp_endpoint_admit_link(pmp_endpoint_t *self, const void *greeting, size_t len,
                            const char *peer);

/* Writes the runtime's credentials file (mode 0600 in the 0700 directory;
 * atomic, so a second write simply replaces it).  Returns 0, or -1 with
 * errno and a sentence in err. */
int pmp_endpoint_write_credentials(pmp_endpoint_t *self, pmp_error_t *err);

/* Removes the credentials file once no runtime needs it (why: for the
 * log).  Idempotent; a failure only costs a warning in the log. */
void pmp_endpoint_remove_credentials(pmp_endpoint_t *self, const char *why);

#endif
