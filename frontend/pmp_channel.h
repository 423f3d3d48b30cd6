/*
 * pmp_channel.h - one point-to-point channel between two processes, the
 * transport under pympipool.SocketInterface and the program it boots.
 * No Python in here.
 *
 * A channel is one ZeroMQ PAIR socket in a context of its own.  The server
 * side binds (TCP, 127.0.0.1 by default) and may boot a program; the client
 * side (the booted program, or one started elsewhere) connects.  Messages
 * use the pympipool framing of protocol/pmp_protocol.h: the server sends
 * TASK messages (an instruction), the client answers with RESULT or ERROR;
 * each message is the header frame, a payload frame and any number of
 * out-of-band buffer frames, received without copying (pmp_frame_t).  A
 * message that fails the protocol checks is logged and dropped.
 *
 * Security.  When libzmq has CURVE (pmp_channel_has_curve()), a server made
 * with curve != 0 creates fresh key pairs for itself and for one client,
 * encrypts the connection and serves a ZAP handler (inproc, inside the
 * channel's own context, answered by whichever call is waiting on the
 * channel) that accepts only that client's public key.  The booted program
 * gets the server's public key and the client's key pair through its
 * environment (the binding sets PYMPIPOOL_SOCKET_* variables), never on its
 * command line.  Without CURVE the only protection is the address: by
 * default the socket listens on the loopback interface, so other hosts
 * cannot reach it, but other users of the same host can.
 *
 * The booted program is watched by a small thread of the channel (the
 * "keeper"): it forks the program (so that the program gets SIGTERM when the
 * keeper, and with it the channel or this process, goes away), echoes and
 * keeps the tail of the program's stderr, reaps it when it exits and wakes
 * any call waiting on the channel.  A receive or a wait for writability then
 * fails with errno = ECHILD and a sentence giving the exit status and the
 * stderr tail, instead of waiting forever.
 *
 * Threads: a channel (its socket) may be used by one thread at a time; the
 * caller serialises the calls.  The keeper thread only touches the child
 * process and a mutex-protected status; it never touches the socket.
 *
 * Fork: a channel belongs to the process that created it.  In a child made
 * by fork() every call below that would use its socket, keeper or locks
 * fails at once with errno = PMP_EFORKED (and, where it takes err, the
 * sentence "this socket interface belongs to process P; it cannot be used
 * in a forked child (pid C)"); a send that fails so calls no free_fn.
 * pmp_channel_destroy() then returns at once, leaves the parent's booted
 * program alone and leaks the object (the child's exit or exec reclaims
 * it).
 */
#ifndef PMP_CHANNEL_H
#define PMP_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pmp_error.h"
#include "pmp_frame.h" /* PMP_EXPORT, PMP_EFORKED, pmp_buffer_t, pmp_frame_t */
#include "pmp_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pmp_channel pmp_channel_t;

/* Z85 text of a CURVE key (40 characters) plus the terminating NUL. */
#define PMP_CHANNEL_KEY_TEXT 41

/* One received message.  frames[i] may be taken (set to NULL) by the
 * caller, who then frees it with pmp_frame_destroy(). */
typedef struct {
    int type; /* pmp_msg_type_t */
    uint64_t task_id;
    uint32_t flags;
    size_t nframes; /* frames after the header: payload + buffers */
    pmp_frame_t **frames;
} pmp_channel_msg_t;

/* Whether this libzmq supports CURVE. */
PMP_EXPORT int pmp_channel_has_curve(void);

/* 1 if this process is a forked child of the one that created the channel
 * (its other calls then fail with PMP_EFORKED), 0 otherwise.  Cheap. */
PMP_EXPORT int pmp_channel_forked(const pmp_channel_t *self);

/* Creates the server side: a PAIR socket not bound yet.  interface is the
 * address to bind later ("127.0.0.1" when NULL; "*" means every interface;
 * an IPv6 address enables IPv6).  curve: 1 = use CURVE (ENOTSUP if libzmq
 * has none), 0 = plain TCP, -1 = CURVE when available.  Returns NULL with
 * errno and a sentence in err. */
PMP_EXPORT pmp_channel_t *pmp_channel_new_server(const char *interface, int curve,
                                                 pmp_error_t *err);

/* Creates the client side and connects it to tcp://host:port.  With
 * server_key (Z85) the connection uses CURVE with the client key pair
 * public_key / secret_key (all three required then).  Returns NULL with
 * errno (EINVAL for bad arguments or keys) and a sentence in err.  The
 * connection is made in the background: a server that is not there yet is
 * retried. */
PMP_EXPORT pmp_channel_t *pmp_channel_new_client(const char *host, int port, const char *server_key,
                                                 const char *public_key, const char *secret_key,
                                                 pmp_error_t *err);

/* Closes the socket and, if a program was booted, stops it: with wait != 0
 * waits up to grace_ms for it to exit by itself, then sends SIGTERM to its
 * process group and, 2 s later, SIGKILL, and returns once it is reaped; with
 * wait == 0 returns at once and the keeper thread does the same in the
 * background.  Messages still queued for sending get up to 1 s to leave.
 * NULL-safe; nulls *self_p.  In a forked child: returns at once, touches
 * nothing and leaks the channel. */
PMP_EXPORT void pmp_channel_destroy(pmp_channel_t **self_p, int grace_ms, int wait);

/* Server: binds to a free port of the interface chosen at creation.
 * Returns the port, or -1 with errno and a sentence in err (EALREADY if the
 * channel is bound already, or the bind error). */
PMP_EXPORT int pmp_channel_bind_random_port(pmp_channel_t *self, pmp_error_t *err);

/* The bound or connected endpoint ("tcp://127.0.0.1:43012"), "" before
 * bind.  Owned by the channel, valid until destroy. */
PMP_EXPORT const char *pmp_channel_endpoint(const pmp_channel_t *self);

/* Whether the channel uses CURVE. */
PMP_EXPORT int pmp_channel_curve(const pmp_channel_t *self);

/* Server with CURVE: the Z85 keys a client needs (the server's public key,
 * the client's public and secret keys).  NULL without CURVE or on a
 * client.  Owned by the channel. */
PMP_EXPORT const char *pmp_channel_server_public_key(const pmp_channel_t *self);
PMP_EXPORT const char *pmp_channel_client_public_key(const pmp_channel_t *self);
PMP_EXPORT const char *pmp_channel_client_secret_key(const pmp_channel_t *self);

/* Server: starts argv[0] (looked up in PATH unless it has a '/') with argv,
 * never through a shell, in cwd (NULL: the current directory), with the
 * environment envp ("KEY=value" strings, NULL-terminated; NULL: this
 * process's environment), stdin from /dev/null, stdout inherited and stderr
 * echoed to ours and watched.  Returns 0 once the exec succeeded, or -1 with
 * errno (ENOENT: program not found, the sentence names it; EALREADY: a
 * program was booted already; EINVAL) and a sentence in err; nothing is
 * left behind on failure.  Only one program per channel. */
PMP_EXPORT int pmp_channel_bootup(pmp_channel_t *self, const char *const argv[], const char *cwd,
                                  const char *const envp[], pmp_error_t *err);

/* Process id of the booted program, or -1. */
PMP_EXPORT pid_t pmp_channel_pid(const pmp_channel_t *self);

/* 1 if the booted program has exited (and was reaped), 0 if it runs or none
 * was booted, -1 with errno = PMP_EFORKED in a forked child.  With status
 * != NULL stores its waitpid status (-1 if unknown).  Thread-safe. */
PMP_EXPORT int pmp_channel_exited(pmp_channel_t *self, int *status);

/* The sentence describing the booted program's exit (status and stderr
 * tail), malloc'ed (caller frees); NULL with errno = ESRCH while it runs or
 * when none was booted (PMP_EFORKED in a forked child). */
PMP_EXPORT char *pmp_channel_exit_text(pmp_channel_t *self);

/* Waits up to timeout_ms (-1: forever) until a message can be sent at once
 * (the peer is connected and has room), serving the ZAP handler meanwhile.
 * Returns 0, or -1 with errno = EAGAIN on timeout, ECHILD with the exit
 * sentence in err when the booted program has exited, or another errno. */
PMP_EXPORT int pmp_channel_wait_writable(pmp_channel_t *self, int timeout_ms, pmp_error_t *err);

/* Sends one message: the header (type, task_id, flags, nframes = nbufs) and
 * bufs[0..nbufs-1] (payload first, then out-of-band buffers; nbufs >= 1).
 * Buffers with free_fn == NULL are copied; the others are sent without
 * copying and free_fn(data, hint) is called exactly once when ZeroMQ is done
 * with them, from any thread, also when sending fails (before this returns
 * in that case), except for the failures that take nothing, listed below.
 * Never blocks: call pmp_channel_wait_writable() first.  Returns 0, or -1
 * with errno and a sentence: EAGAIN if the peer cannot take a message now
 * (not connected, or it left since it was writable; wait and send again),
 * EINVAL for a bad type, id or buffers, PMP_EFORKED in a forked child (for
 * these three no free_fn is called: the buffers are still the caller's);
 * ECONNRESET if the peer left in the middle of the message, which is lost,
 * or another errno. */
PMP_EXPORT int pmp_channel_send(pmp_channel_t *self, int type, uint64_t task_id, uint32_t flags,
                                const pmp_buffer_t *bufs, size_t nbufs, pmp_error_t *err);

/* Waits up to timeout_ms (-1: forever, 0: poll) for the next valid message
 * (a server accepts RESULT and ERROR, a client TASK; anything else, and
 * anything malformed, is logged and dropped).  Returns it (caller owns it:
 * pmp_channel_msg_destroy), or NULL with errno = EAGAIN on timeout, ECHILD
 * with the exit sentence in err when the booted program has exited and no
 * message from it arrived within 300 ms after, or another errno.  A message
 * the program sent before it exited is always returned first. */
PMP_EXPORT pmp_channel_msg_t *pmp_channel_recv(pmp_channel_t *self, int timeout_ms,
                                               pmp_error_t *err);

/* Frees a message and every frame not taken.  NULL-safe; nulls *self_p. */
PMP_EXPORT void pmp_channel_msg_destroy(pmp_channel_msg_t **self_p);

#ifdef __cplusplus
}
#endif

#endif
