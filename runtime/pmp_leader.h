/*
 * pmp_leader.h - the group leader's connection to the frontend.
 *
 * The leader of each group owns one connection, used by the main thread
 * only: on the frontend's host (an ipc:// endpoint) a local link, a Unix
 * stream socket it reads and writes itself (pmp_link.h); otherwise a
 * ZeroMQ DEALER socket (in its own context) connected to the frontend's
 * ROUTER.  It says HELLO once, then receives TASK / INIT / DEFINE /
 * FORGET / SHUTDOWN messages and sends RESULT / ERROR replies and, at the
 * end, GOODBYE.
 *
 * Waiting for the next message polls in slices (1 s when idle, 10 ms while
 * result buffers are still out with ZeroMQ) so that the leader (a) notices
 * a frontend that died without saying goodbye - the link's end of file,
 * kill(pid, 0) failing with ESRCH, or on another host a connection lost
 * for good, is treated as a SHUTDOWN - and (b) releases the Python objects
 * of results the transport has finished sending (pmp_python_drain; a link
 * has written them before pmp_leader_send returns).  Malformed or foreign
 * messages are logged and dropped; they never end the runtime.
 */
#ifndef PMP_LEADER_H
#define PMP_LEADER_H

#include <stddef.h>
#include <sys/types.h>
#include <zmq.h>

#include "pmp_error.h"
#include "pmp_protocol.h"
#include "pmp_python.h"
#include "pmp_rtmsg.h"

typedef struct pmp_leader pmp_leader_t;

/* Connects to endpoint: ipc://PATH over a local link (connect, then the
 * greeting with the password of the credentials file), anything else with
 * a DEALER socket (ZMQ_LINGER 0) in a context of its own, authenticated with the credentials file
 * (pmp_credentials.h; NULL: none, allowed for ipc:// only).  Before it connects it makes sure the
 * frontend is genuine: an ipc:// socket must lie in a directory that belongs to this user and
 * nobody else can enter (so that only this user can have bound it); a tcp:// endpoint needs CURVE
 * credentials, whose server key only the real frontend can answer to.  frontend_pid 0 disables the
 * process check; frontend_host (NULL: this host) tells where that process lives: on another host
 * the connection is watched instead (heartbeats and a socket monitor, see pmp_leader.c).  Returns
 * NULL with errno and a sentence in err (an invalid endpoint, a refused or malformed credentials
 * file, a socket directory that is not private). */
pmp_leader_t *pmp_leader_new(const char *endpoint, pid_t frontend_pid, const char *frontend_host,
                             const char *credentials, pmp_error_t *err);

/* Sends GOODBYE (if HELLO was sent and the frontend is not known to be
 * gone), closes the
 * socket and terminates the context; the free callbacks of unsent messages
 * have run when this returns.  NULL-safe; nulls the pointer. */
void pmp_leader_destroy(pmp_leader_t **self_p);

/* Sends HELLO; with nranks > 0 it also names every rank of the group
 * (the optional "ranks" line, docs/protocol.md).  Returns 0 or -1 with
 * errno. */
int pmp_leader_send_hello(pmp_leader_t *self, const pmp_hello_t *hello,
                          const pmp_hello_rank_t *ranks, size_t nranks);

/* Waits for the next valid message from the frontend and returns it with
 * its frames as received (caller owns it).  Calls pmp_python_drain(py) on
 * every wake-up.  Returns a SHUTDOWN message when the frontend process is
 * gone or the socket fails for good. */
pmp_rtmsg_t *pmp_leader_recv(pmp_leader_t *self, pmp_python_t *py);

/* Sends one message: parts[0..n-1] are the header and the frames, already
 * initialised; ownership passes to this function whatever happens (parts
 * are sent or closed).  Over a local link it blocks until the kernel has
 * taken every byte.  Returns 0 or -1 with errno (logged). */
int pmp_leader_send(pmp_leader_t *self, zmq_msg_t *parts, size_t n);

/* Initialises part as the encoded header of a message. */
void pmp_leader_header(zmq_msg_t *part, int type, uint64_t task_id, uint32_t flags,
                       uint32_t nframes);

#endif
