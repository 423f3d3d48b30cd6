/*
 * pmp_channel_internal.h - what the files of a socket channel share:
 * pmp_channel.c (the channel: creation, keys, bind, waiting and the receive
 * loop), pmp_channel_msg.c (messages on the wire) and pmp_channel_keeper.c
 * (the thread that boots and watches the program).  Internal to the
 * frontend.
 */
#ifndef PMP_CHANNEL_INTERNAL_H
#define PMP_CHANNEL_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "pmp_auth.h"
#include "pmp_channel.h"

#define PMP_CHANNEL_ENDPOINT_MAX 300

/* The booted program's keeper (pmp_channel_keeper.c), opaque. */
typedef struct pmp_channel_keeper pmp_channel_keeper_t;

struct pmp_channel {
    unsigned gen; /* fork generation at creation (pmp_fork.h) */
    pid_t owner;  /* the process that created it */
    void *ctx;
    void *sock;
    pmp_auth_t *auth; /* CURVE servers only: keys and the ZAP handler */
    int server;
    int curve;
    int bound;
    char interface[256];
    char endpoint[PMP_CHANNEL_ENDPOINT_MAX];
    pmp_channel_keeper_t *keeper;
    int64_t exit_seen_ms; /* when a receive first saw the program gone */
    int send_pause_ms;    /* PYMPIPOOL_TEST_SEND_PAUSE_MS (tests only): a pause at the
                             start of every send, so that a test can make its peer
                             leave between the wait for writability and the send */
};

/* ---- messages (pmp_channel_msg.c) ------------------------------------------ */

/* Takes one whole message if one is there, without waiting.  Returns it
 * (caller owns it), or NULL with errno = EAGAIN when nothing valid is
 * pending (invalid messages are logged and dropped), or another errno with
 * a sentence in err.  The channel's thread only. */
pmp_channel_msg_t *pmp_channel_try_recv(pmp_channel_t *self, pmp_error_t *err);

/* ---- the keeper (pmp_channel_keeper.c) ------------------------------------- */

/* Looks up argv[0] (PATH unless it has a '/'), starts the keeper thread and
 * has it launch argv in cwd with envp (pmp_channel_bootup()); returns once
 * the exec succeeded.  Returns the keeper, or NULL with errno and a
 * sentence in err, and then nothing is left behind. */
pmp_channel_keeper_t *pmp_channel_keeper_start(const char *const argv[], const char *cwd,
                                               const char *const envp[], pmp_error_t *err);

/* Stops the program (grace_ms to exit by itself, then SIGTERM and, 2 s
 * later, SIGKILL).  wait != 0: returns once it is reaped and frees k;
 * wait == 0: returns at once and the detached keeper frees itself. */
void pmp_channel_keeper_stop(pmp_channel_keeper_t *k, int grace_ms, int wait);

/* The program's process id. */
pid_t pmp_channel_keeper_pid(const pmp_channel_keeper_t *k);

/* An eventfd that becomes readable once the program has exited (owned by
 * the keeper). */
int pmp_channel_keeper_exitfd(const pmp_channel_keeper_t *k);

/* 1 once the program has exited and was reaped (its waitpid status in
 * *status when not NULL), 0 while it runs (*status = -1).  Thread-safe. */
int pmp_channel_keeper_exited(pmp_channel_keeper_t *k, int *status);

/* The sentence describing the exit, malloc'ed; NULL with errno = ESRCH
 * while the program runs, ENOMEM if out of memory. */
char *pmp_channel_keeper_exit_text(pmp_channel_keeper_t *k);

#endif
