/*
 * pmp_credentials.c - writing and reading the runtime's credentials file
 * (format and rules in pmp_credentials.h).
 *
 * Why a file and not an argument or the environment: a command line is
 * world-readable in /proc, and mpiexec forwards the environment to every
 * rank on every host through its own channels and may print it; a file of
 * mode 0600 in a directory of mode 0700 is readable by this user alone,
 * and the frontend deletes it as soon as no runtime needs it any more.
 *
 * The reader is deliberately strict: it opens with O_NOFOLLOW and checks
 * the opened descriptor (fstat), not the name, so that a file swapped in
 * between the check and the read is still the one checked; an unknown key,
 * a missing one or a value that is not 40 Z85 characters is an error, so a
 * corrupted file fails loudly instead of producing credentials that fail
 * later with a less helpful "handshake failed".
 */
#define _GNU_SOURCE
#include "pmp_credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_FILE_MAX 4096

static const char s_z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            ".-:+=^!/*?&<>()[]{}@%$#";

int pmp_credentials_key_valid(const char *text)
{
    if (!text)
        return 0;
    size_t n = strlen(text);
    if (n != PMP_CREDENTIALS_KEY_TEXT - 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr(s_z85, text[i]))
            return 0;
    return 1;
}

void pmp_credentials_wipe(pmp_credentials_t *c)
{
    if (c)
        explicit_bzero(c, sizeof *c);
}

static int s_complete(const pmp_credentials_t *c)
{
    if (c->mechanism == PMP_CREDENTIALS_PLAIN)
        return pmp_credentials_key_valid(c->password);
    if (c->mechanism == PMP_CREDENTIALS_CURVE)
        return pmp_credentials_key_valid(c->server_public) &&
               pmp_credentials_key_valid(c->client_public) &&
               pmp_credentials_key_valid(c->client_secret);
    return 0;
}

static int s_write_all(int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

int pmp_credentials_write(const char *path, const pmp_credentials_t *c, pmp_error_t *err)
{
    if (!path || !*path || !c || !s_complete(c)) {
        pmp_error_set(err, "credentials: nothing complete to write");
        errno = EINVAL;
        return -1;
    }
    char text[512];
    int n;
    if (c->mechanism == PMP_CREDENTIALS_PLAIN)
        n = snprintf(text, sizeof text,
                     "# pympipool: the runtime's credentials; removed after start-up\n"
                     "mechanism=plain\npassword=%s\n",
                     c->password);
    else
        n = snprintf(text, sizeof text,
                     "# pympipool: the runtime's credentials; removed after start-up\n"
                     "mechanism=curve\nserver-public-key=%s\nclient-public-key=%s\n"
                     "client-secret-key=%s\n",
                     c->server_public, c->client_public, c->client_secret);
    size_t len = strlen(path) + 16;
    char *tmp = malloc(len);
    if (!tmp || n < 0 || (size_t)n >= sizeof text) {
        free(tmp);
        explicit_bzero(text, sizeof text);
        pmp_error_set(err, "credentials: out of memory");
        errno = ENOMEM;
        return -1;
    }
    snprintf(tmp, len, "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    int e = 0;
    if (fd < 0) {
        e = errno;
        pmp_error_set(err, "cannot create the credentials file next to %s: %s", path, strerror(e));
    } else if (fchmod(fd, 0600) < 0 || s_write_all(fd, text, (size_t)n) < 0) {
        e = errno;
        pmp_error_set(err, "cannot write the credentials file %s: %s", tmp, strerror(e));
    }
    if (fd >= 0 && close(fd) < 0 && !e) {
        e = errno;
        pmp_error_set(err, "cannot write the credentials file %s: %s", tmp, strerror(e));
    }
    if (!e && rename(tmp, path) < 0) {
        e = errno;
        pmp_error_set(err, "cannot move the credentials file to %s: %s", path, strerror(e));
    }
    if (e && fd >= 0)
        unlink(tmp);
    explicit_bzero(text, sizeof text);
    free(tmp);
    errno = e;
    return e ? -1 : 0;
}

/* Copies value into a key field; 0, or -1 if it is not a valid key. */
static int s_set_key(char *field, const char *value)
{
    if (!pmp_credentials_key_valid(value))
        return -1;
    memcpy(field, value, PMP_CREDENTIALS_KEY_TEXT);
    return 0;
}

static int s_parse(char *text, pmp_credentials_t *c, const char *path, pmp_error_t *err)
{
    char *save = NULL;
    int lineno = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            pmp_error_set(err, "the credentials file %s is malformed (line %d has no '=')", path,
                          lineno);
            return -1;
        }
        *eq = '\0';
        const char *key = line, *value = eq + 1;
        int rc = 0;
        if (strcmp(key, "mechanism") == 0) {
            if (strcmp(value, "plain") == 0)
                c->mechanism = PMP_CREDENTIALS_PLAIN;
            else if (strcmp(value, "curve") == 0)
                c->mechanism = PMP_CREDENTIALS_CURVE;
            else
                rc = -1;
        } else if (strcmp(key, "password") == 0) {
            rc = s_set_key(c->password, value);
        } else if (strcmp(key, "server-public-key") == 0) {
            rc = s_set_key(c->server_public, value);
        } else if (strcmp(key, "client-public-key") == 0) {
            rc = s_set_key(c->client_public, value);
        } else if (strcmp(key, "client-secret-key") == 0) {
            rc = s_set_key(c->client_secret, value);
        } else {
            pmp_error_set(err, "the credentials file %s is malformed (unknown key '%.40s')", path,
                          key);
            return -1;
        }
        if (rc < 0) {
            pmp_error_set(err, "the credentials file %s is malformed (bad value for '%s')", path,
                          key);
            return -1;
        }
    }
    if (!s_complete(c)) {
        pmp_error_set(err, "the credentials file %s is incomplete", path);
        return -1;
    }
    return 0;
}

int pmp_credentials_read(const char *path, pmp_credentials_t *c, pmp_error_t *err)
{
    memset(c, 0, sizeof *c);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP) {
            pmp_error_set(err, "refusing the credentials file %s: it is a symbolic link", path);
            e = EPERM;
        } else {
            pmp_error_set(err, "cannot open the credentials file %s: %s", path, strerror(e));
        }
        errno = e;
        return -1;
    }
    struct stat st;
    int e = 0;
    if (fstat(fd, &st) < 0) {
        e = errno;
        pmp_error_set(err, "cannot check the credentials file %s: %s", path, strerror(e));
    } else if (!S_ISREG(st.st_mode)) {
        e = EPERM;
        pmp_error_set(err, "refusing the credentials file %s: it is not a regular file", path);
    } else if (st.st_uid != geteuid()) {
        e = EPERM;
        pmp_error_set(err, "refusing the credentials file %s: it belongs to uid %ld, not to %ld",
                      path, (long)st.st_uid, (long)geteuid());
    } else if (st.st_mode & 077) {
        e = EPERM;
        pmp_error_set(err,
                      "refusing the credentials file %s: its mode %04o lets others read or "
                      "change it (0600 expected)",
                      path, (unsigned)(st.st_mode & 07777));
    } else if (st.st_size <= 0 || st.st_size >= S_FILE_MAX) {
        e = EINVAL;
        pmp_error_set(err, "the credentials file %s is malformed (%lld bytes)", path,
                      (long long)st.st_size);
    }
    char text[S_FILE_MAX];
    size_t got = 0;
    while (!e && got < sizeof text - 1) {
        ssize_t n = read(fd, text + got, sizeof text - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            pmp_error_set(err, "cannot read the credentials file %s: %s", path, strerror(e));
        }
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!e) {
        text[got] = '\0';
        /* s_parse cuts the text into lines in place: look for NULs first */
        if (strlen(text) != got) {
            pmp_error_set(err, "the credentials file %s is malformed (a NUL byte)", path);
            e = EINVAL;
        } else if (s_parse(text, c, path, err) < 0) {
            e = EINVAL;
        }
    }
    explicit_bzero(text, sizeof text);
    if (e) {
        pmp_credentials_wipe(c);
        errno = e;
        return -1;
    }
    return 0;
}
