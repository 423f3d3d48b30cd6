/*
 * test_credentials.c - unit test of the credentials file (pmp_credentials),
 * run by CTest as unit.credentials.
 *
 * The file is what a runtime trusts to authenticate itself, so the reader
 * must refuse anything another user could have planted or read: a symbolic
 * link, something that is not a regular file, a file of another owner, a
 * file with any permission for group or others; and it must refuse a
 * malformed or incomplete file rather than guess.  Each refusal is checked
 * for its errno, for a sentence that names the problem, and for a wiped
 * result.  Writing is checked for its mode (0600) and for leaving nothing
 * but the file behind.
 *
 * No framework: CHECK() records a failure and goes on; the exit status is
 * the verdict.
 */
#include "pmp_credentials.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pmp_check.h"

static char s_dir[256];

static const char s_key_a[] = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
static const char s_key_b[] = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
static const char s_key_c[] = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";

static void s_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", s_dir, name);
}

static void s_write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    CHECK(chmod(path, mode) == 0);
}

static int s_wiped(const pmp_credentials_t *c)
{
    static const pmp_credentials_t zero;
    return memcmp(c, &zero, sizeof zero) == 0;
}

/* Expects a refusal of path with errno e and a reason containing want. */
static void s_refused(const char *path, int e, const char *want)
{
    pmp_credentials_t c;
    memset(&c, 0x5a, sizeof c);
    pmp_error_t err = {{0}};
    errno = 0;
    int rc = pmp_credentials_read(path, &c, &err);
    CHECK(rc == -1);
    CHECK(errno == e);
    CHECK(strstr(err.text, want) != NULL);
    CHECK(s_wiped(&c));
    if (rc != -1 || errno != e || !strstr(err.text, want))
        fprintf(stderr, "  for %s: rc %d errno %d: %s (wanted '%s')\n", path, rc, errno, err.text,
                want);
}

static void test_round_trips(void)
{
    char path[512];
    s_path(path, sizeof path, "credentials");
    pmp_credentials_t out = {.mechanism = PMP_CREDENTIALS_PLAIN}, in;
    snprintf(out.password, sizeof out.password, "%s", s_key_a);
    pmp_error_t err = {{0}};
    CHECK(pmp_credentials_write(path, &out, &err) == 0);
    struct stat st;
    CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600);
    CHECK(pmp_credentials_read(path, &in, &err) == 0);
    CHECK(in.mechanism == PMP_CREDENTIALS_PLAIN && strcmp(in.password, s_key_a) == 0);

    out = (pmp_credentials_t){.mechanism = PMP_CREDENTIALS_CURVE};
    snprintf(out.server_public, sizeof out.server_public, "%s", s_key_a);
    snprintf(out.client_public, sizeof out.client_public, "%s", s_key_b);
    snprintf(out.client_secret, sizeof out.client_secret, "%s", s_key_c);
    CHECK(pmp_credentials_write(path, &out, &err) == 0); /* replaces the old one */
    CHECK(pmp_credentials_read(path, &in, &err) == 0);
    CHECK(in.mechanism == PMP_CREDENTIALS_CURVE && strcmp(in.server_public, s_key_a) == 0 &&
          strcmp(in.client_public, s_key_b) == 0 && strcmp(in.client_secret, s_key_c) == 0);
    pmp_credentials_wipe(&in);
    CHECK(s_wiped(&in));
    pmp_credentials_wipe(NULL);

    /* nothing but the file is left in the directory (no temporary file) */
    DIR *d = opendir(s_dir);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            entries++;
    if (d)
        closedir(d);
    CHECK(entries == 1);

    /* incomplete credentials are not written */
    pmp_credentials_t half = {.mechanism = PMP_CREDENTIALS_CURVE};
    snprintf(half.server_public, sizeof half.server_public, "%s", s_key_a);
    char other[512];
    s_path(other, sizeof other, "half");
    errno = 0;
    CHECK(pmp_credentials_write(other, &half, &err) == -1 && errno == EINVAL);
    CHECK(access(other, F_OK) == -1);
    unlink(path);
}

static void test_refusals(void)
{
    char path[512], link[512], sub[512];
    s_path(path, sizeof path, "file");
    char good[256];
    snprintf(good, sizeof good, "mechanism=plain\npassword=%s\n", s_key_a);

    s_write_text(path, good, 0640);
    s_refused(path, EPERM, "lets others read");
    s_write_text(path, good, 0604);
    s_refused(path, EPERM, "lets others read");
    s_write_text(path, good, 0620);
    s_refused(path, EPERM, "(0600 expected)");

    s_write_text(path, good, 0600);
    s_path(link, sizeof link, "link");
    CHECK(symlink(path, link) == 0);
    s_refused(link, EPERM, "symbolic link");
    unlink(link);

    s_path(sub, sizeof sub, "dir");
    CHECK(mkdir(sub, 0700) == 0);
    s_refused(sub, EPERM, "not a regular file");
    rmdir(sub);

    if (geteuid() == 0) { /* another owner: only root can make one */
        CHECK(chown(path, 65534, 65534) == 0);
        s_refused(path, EPERM, "belongs to uid 65534");
        CHECK(chown(path, 0, 0) == 0);
    } else {
        fprintf(stderr, "test_credentials: not root: the other-owner case is not run\n");
    }

    s_path(link, sizeof link, "missing");
    s_refused(link, ENOENT, "cannot open the credentials file");

    /* malformed and incomplete files */
    char text[512];
    s_write_text(path, "mechanism=plain\nno equals sign\n", 0600);
    s_refused(path, EINVAL, "has no '='");
    s_write_text(path, "mechanism=plain\ncolour=blue\n", 0600);
    s_refused(path, EINVAL, "unknown key 'colour'");
    s_write_text(path, "mechanism=plain\npassword=short\n", 0600);
    s_refused(path, EINVAL, "bad value for 'password'");
    s_write_text(path, "mechanism=kerberos\n", 0600);
    s_refused(path, EINVAL, "bad value for 'mechanism'");
    snprintf(text, sizeof text, "mechanism=curve\nserver-public-key=%s\n", s_key_a);
    s_write_text(path, text, 0600);
    s_refused(path, EINVAL, "incomplete");
    s_write_text(path, "", 0600);
    s_refused(path, EINVAL, "(0 bytes)");
    int fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && write(fd, "mechanism=plain\0\n", 17) == 17);
    if (fd >= 0)
        close(fd);
    s_refused(path, EINVAL, "a NUL byte");
    s_write_text(path, "# only a comment\n", 0600);
    s_refused(path, EINVAL, "incomplete");
    unlink(path);
}

static void test_key_valid(void)
{
    CHECK(pmp_credentials_key_valid(s_key_a));
    CHECK(!pmp_credentials_key_valid(""));
    CHECK(!pmp_credentials_key_valid("abc"));
    char longer[64];
    snprintf(longer, sizeof longer, "%sx", s_key_a);
    CHECK(!pmp_credentials_key_valid(longer));
    char bad[64];
    snprintf(bad, sizeof bad, "%s", s_key_a);
    bad[5] = '"'; /* not in the Z85 alphabet */
    CHECK(!pmp_credentials_key_valid(bad));
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof s_dir, "%s/pmp-cred-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trips();
    test_refusals();
    test_key_valid();
    rmdir(s_dir);
    return pmp_check_verdict("test_credentials");
}
