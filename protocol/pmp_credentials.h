/*
 * pmp_credentials.h - the credentials file that hands a runtime the secret
 * it authenticates with, shared by the frontend (writes it) and
 * pympipool-runtime (reads it).  No ZeroMQ in here: only the file.
 *
 * The frontend makes fresh credentials for every executor and writes them,
 * right before each launch, to <dir>/credentials, where <dir> is the
 * executor's private directory (mode 0700); the file itself has mode 0600.
 * The runtime gets the path as --credentials PATH (never the secret on its
 * command line, which every user of the host can read in /proc), reads the
 * file before it connects and refuses one that is not a regular file owned
 * by its own user with no permission bits for group or others.  The
 * frontend removes the file once every group has said hello, when the job
 * exits, and on destroy in any case.
 *
 * Format: text lines "key=value"; lines starting with '#' are comments.
 *
 *   mechanism=plain                  mechanism=curve
 *   password=<Z85, 40 chars>         server-public-key=<Z85, 40 chars>
 *                                    client-public-key=<Z85, 40 chars>
 *                                    client-secret-key=<Z85, 40 chars>
 *
 * plain: ZeroMQ's PLAIN mechanism with user name PMP_CREDENTIALS_USER and
 * the password (the Z85 text of 32 random bytes), used on ipc://.
 * curve: ZeroMQ's CURVE mechanism; the runtime authenticates the frontend
 * by its public key and proves its own key pair, used on tcp://.
 */
#ifndef PMP_CREDENTIALS_H
#define PMP_CREDENTIALS_H

#include "pmp_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Z85 text of 32 bytes (a CURVE key or the PLAIN password) plus the NUL. */
#define PMP_CREDENTIALS_KEY_TEXT 41
/* The PLAIN user name the runtime presents. */
#define PMP_CREDENTIALS_USER "pympipool-runtime"

typedef enum { PMP_CREDENTIALS_PLAIN = 1, PMP_CREDENTIALS_CURVE = 2 } pmp_credentials_mechanism_t;

typedef struct {
    int mechanism;                                /* pmp_credentials_mechanism_t */
    char password[PMP_CREDENTIALS_KEY_TEXT];      /* plain */
    char server_public[PMP_CREDENTIALS_KEY_TEXT]; /* curve: the frontend's public key */
    char client_public[PMP_CREDENTIALS_KEY_TEXT]; /* curve: the runtime's key pair */
    char client_secret[PMP_CREDENTIALS_KEY_TEXT];
} pmp_credentials_t;

/* Whether text is exactly 40 characters of the Z85 alphabet. */
int pmp_credentials_key_valid(const char *text);

/* Writes c to path with mode 0600, atomically: a temporary file in the same
 * directory is written and renamed over path, so that a reader sees the old
 * file or the new one, never half of one.  Returns 0, or -1 with errno and a
 * sentence in err (EINVAL when c is incomplete); nothing is left behind on
 * failure. */
int pmp_credentials_write(const char *path, const pmp_credentials_t *c, pmp_error_t *err);

/* Reads path into *c.  Refuses (EPERM, with a sentence naming the file and
 * what is wrong) a file that is not a regular file, is a symbolic link, is
 * not owned by this process's effective user or has any permission bit for
 * group or others; fails with EINVAL for a malformed file and with the
 * open() errno otherwise.  On failure *c is wiped. */
int pmp_credentials_read(const char *path, pmp_credentials_t *c, pmp_error_t *err);

/* Overwrites every secret in c (explicit_bzero), so that it does not stay
 * in memory longer than needed.  NULL-safe. */
void pmp_credentials_wipe(pmp_credentials_t *c);

#ifdef __cplusplus
}
#endif

#endif
