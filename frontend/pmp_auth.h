/*
 * pmp_auth.h - authentication of the one peer a frontend socket serves:
 * fresh credentials, the server side of ZeroMQ's PLAIN or CURVE mechanism
 * and a ZAP handler that admits only the holder of those credentials.
 * Shared by the executor (pmp_endpoint.c: the runtime's leaders) and the
 * socket interface (pmp_channel.c: the booted program).  No Python in here.
 *
 * How it works.  pmp_auth_new() makes the credentials (PLAIN: a password of
 * 32 random bytes; CURVE: a server key pair and one client key pair) and
 * binds a REP socket on inproc://zeromq.zap.01 in the given context: ZeroMQ
 * sends that endpoint a ZAP request for every handshake of every socket of
 * the context that uses PLAIN or CURVE, and completes the handshake only if
 * the answer is "200".  pmp_auth_server_setup() makes a socket such a
 * server; pmp_auth_watch() also attaches a socket monitor, so that a peer
 * that fails before ZAP is asked (a NULL or mismatched mechanism, a CURVE
 * client with the wrong server key, garbage) is logged with the reason as
 * well.  Nothing is answered by a thread of its own: the thread that owns
 * the served socket polls the items of pmp_auth_pollitems() next to it and
 * calls pmp_auth_serve(); until it does, a peer's handshake simply waits.
 *
 * Guarantees: a request is admitted only when its mechanism is the one set
 * up and its credentials match byte for byte (compared in constant time);
 * everything else, including malformed requests, is refused with status 400
 * and logged at warning level (PYMPIPOOL_LOG_LEVEL) with the peer's address
 * and the reason.  The ZAP socket must outlive the served socket (close the
 * served socket first): without a handler, libzmq would admit PLAIN and
 * CURVE peers unchecked.
 *
 * Threads: an auth object belongs to one thread at a time (the one that
 * polls it); it may be created on one thread and handed to another.
 */
#ifndef PMP_AUTH_H
#define PMP_AUTH_H

#include <stddef.h>
#include <zmq.h>

#include "pmp_credentials.h"
#include "pmp_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pmp_auth pmp_auth_t;

/* Creates fresh credentials for mechanism (PMP_CREDENTIALS_PLAIN or
 * PMP_CREDENTIALS_CURVE) and binds the ZAP handler in ctx, which must not
 * have one yet.  who names the server in log lines ("frontend", "socket
 * interface").  Returns NULL with errno (ENOTSUP: CURVE without libzmq
 * support; EADDRINUSE: ctx has a handler) and a sentence in err. */
pmp_auth_t *pmp_auth_new(void *ctx, int mechanism, const char *who, pmp_error_t *err);

/* Closes the ZAP and monitor sockets (linger 0) and wipes the secrets.
 * Close every served socket first.  NULL-safe; nulls *self_p. */
void pmp_auth_destroy(pmp_auth_t **self_p);

/* Makes sock a PLAIN or CURVE server answered by this handler; call it
 * before sock binds.  Returns 0, or -1 with errno and a sentence in err. */
int pmp_auth_server_setup(pmp_auth_t *self, void *sock, pmp_error_t *err);

/* Attaches a socket monitor to sock (set up by pmp_auth_server_setup) so
 * that failed handshakes are logged too.  One socket per auth object.
 * Returns 0, or -1 with errno and a sentence in err (then nothing is
 * watched, which only costs log lines). */
int pmp_auth_watch(pmp_auth_t *self, void *sock, pmp_error_t *err);

/* Fills items (room for 2) with what the owner must poll for ZMQ_POLLIN;
 * returns how many. */
int pmp_auth_pollitems(pmp_auth_t *self, zmq_pollitem_t *items);

/* Answers every pending ZAP request and logs every pending monitor event,
 * without blocking.  Call it when a poll item of pmp_auth_pollitems() is
 * readable (calling it at other times is harmless). */
void pmp_auth_serve(pmp_auth_t *self);

/* Judges a local link's greeting (pmp_link.h) by the same rules as a PLAIN
 * handshake: admitted (0) only with this object's password (compared in
 * constant time).  why, when not NULL, refuses it for that reason (a
 * malformed greeting, a foreign uid); peer names it in the log line.
 * Every refusal is counted and logged like a refused handshake.  Returns 0
 * or -1. */
int pmp_auth_judge_link(pmp_auth_t *self, const void *password, size_t len, const char *why,
                        const char *peer);

/* The credentials a client needs; owned by the auth object. */
const pmp_credentials_t *pmp_auth_credentials(const pmp_auth_t *self);

#ifdef __cplusplus
}
#endif

#endif
