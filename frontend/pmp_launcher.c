/*
 * pmp_launcher.c - the child process that runs the MPI job, and its watch.
 *
 * The executor's I/O thread calls pmp_launcher_new(), which forks and execs
 * mpiexec (or flux) with an argv list, never a shell.  Between fork and exec
 * the child only makes async-signal-safe calls: it moves into its own
 * process group (so that one kill(-pgid) reaches mpiexec and everything it
 * started), asks for SIGTERM when the forking thread dies
 * (PR_SET_PDEATHSIG: the I/O thread, not the caller, forks so that the job
 * lives exactly as long as the executor), resets the signal mask and the
 * dispositions an interpreter likes to ignore (SIGPIPE, SIGXFSZ), changes
 * directory, takes stdin from /dev/null, sends stderr (and, relayed, stdout)
 * into a pipe and, when asked to and this process is itself an MPI rank,
 * removes the enclosing job's launcher variables from its own copy of
 * environ (pmp_environ_clean: in place, no allocation).  A second,
 * close-on-exec pipe reports a failed chdir or exec back to the parent, so
 * pmp_launcher_new() returns only once the exec is known to have happened
 * and its error sentence says exactly what failed.
 *
 * The watch: a pidfd (pidfd_open through syscall(), Linux >= 5.3) becomes
 * readable when the job exits, so the I/O thread sees the exit in the same
 * poll set as its socket; where pidfd_open is unavailable the I/O thread
 * polls pmp_launcher_poll_exit() every 100 ms instead.  Every chunk read from
 * the stderr pipe is echoed to the user's fd 2 (the user still sees what
 * mpiexec and the ranks print) and kept in an 8 KiB tail for the
 * "job exited" message.  The relayed stdout (pmp_relay) is written to a
 * duplicate of fd 1 made at launch, so the job's output goes where an
 * inherited stdout would have gone; the launcher's banner taken out of it
 * is treated as stderr.  Once the owner ended the job on purpose
 * (pmp_launcher_quiet) the echo stops; the tail keeps everything, so an
 * exit text never lacks what the job said.
 *
 * Ending a job on purpose: both owners (the executor's I/O thread and a
 * channel's keeper) stop their job the same way, a grace period, SIGTERM,
 * two seconds, SIGKILL, from inside their own poll loops.  The steps
 * (pmp_launcher_stop_t) are kept here, once, as a record with a deadline
 * that the loop asks about, rather than a blocking call, because each loop
 * must keep pumping the job's output and serving its sockets meanwhile.
 */
#define _GNU_SOURCE /* pipe2 */
#include "pmp_launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pmp_environ.h"
#include "pmp_relay.h"
#include "pmp_tail.h"

#define S_TAIL_BYTES 8192

extern char **environ;

struct pmp_launcher {
    pid_t pid; /* also the process group id */
    int pidfd;
    int errfd;
    int exited;
    int status;
    int quiet; /* PMP_LAUNCHER_QUIET_* */
    char *argv0;
    pmp_tail_t *tail;
    pmp_relay_t *relay; /* the relayed stdout, or NULL */
};

/* Copies bytes of the job's output to this process's fd 2, as far as it
 * takes them (an error or a full non-blocking stderr drops the rest). */
static void s_echo(const char *data, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t w = write(2, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

static int s_is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char *pmp_launcher_which(const char *name, const char *what, pmp_error_t *err)
{
    if (!name || !*name) {
        pmp_error_set(err, "%s: no program name given", what);
        errno = ENOENT;
        return NULL;
    }
    if (strchr(name, '/')) {
        if (!s_is_executable(name)) {
            pmp_error_set(err, "%s '%s' was not found or is not an executable file", what, name);
            errno = ENOENT;
            return NULL;
        }
        char *copy = strdup(name);
        if (!copy)
            errno = ENOMEM;
        return copy;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    size_t nlen = strlen(name);
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        char *cand = malloc(dlen + nlen + 3);
        if (!cand) {
            errno = ENOMEM;
            return NULL;
        }
        if (dlen == 0)
            snprintf(cand, dlen + nlen + 3, "./%s", name);
        else
            snprintf(cand, dlen + nlen + 3, "%.*s/%s", (int)dlen, p, name);
        if (s_is_executable(cand))
            return cand;
        free(cand);
        if (!colon)
            break;
        p = colon + 1;
    }
    pmp_error_set(err, "%s '%s' was not found in PATH; install it or give its full path", what,
                  name);
    errno = ENOENT;
    return NULL;
}

/* What the child reports through the exec pipe when it cannot exec. */
enum { S_STAGE_CHDIR = 1, S_STAGE_EXEC = 2, S_STAGE_SETUP = 3 };

static void s_child_fail(int fd, int stage)
{
    int msg[2] = {stage, errno};
    ssize_t rc = write(fd, msg, sizeof msg);
    (void)rc;
    _exit(127);
}

static void s_child(const char *path, char *const argv[], const pmp_launcher_opts_t *opts,
                    int outpipe_w, int errpipe_w, int execpipe_w, pid_t parent)
{
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        s_child_fail(execpipe_w, S_STAGE_SETUP);
    if (getppid() != parent) /* the forking thread already died */
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    sigaction(SIGXFSZ, &dfl, NULL);
    if (opts->cwd && chdir(opts->cwd) < 0)
        s_child_fail(execpipe_w, S_STAGE_CHDIR);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(errpipe_w, 2) < 0 ||
        (outpipe_w >= 0 && dup2(outpipe_w, 1) < 0))
        s_child_fail(execpipe_w, S_STAGE_SETUP);
    if (opts->envp) {
        execve(path, argv, opts->envp);
    } else {
        if (opts->clean_environ && environ)
            pmp_environ_clean(environ); /* this process's copy: the parent keeps its own */
        execv(path, argv);
    }
    s_child_fail(execpipe_w, S_STAGE_EXEC);
}

/* The launcher's banner, taken out of the relayed stdout: kept like
 * stderr, and echoed unless the owner ended the job on purpose. */
static void s_banner(void *arg, const char *data, size_t len)
{
    pmp_launcher_t *self = arg;
    pmp_tail_append(self->tail, data, len);
    if (!(self->quiet & PMP_LAUNCHER_QUIET_BANNER))
        s_echo(data, len);
}

pmp_launcher_t *pmp_launcher_new(const char *path, char *const argv[],
                                 const pmp_launcher_opts_t *opts, pmp_error_t *err)
{
    static const pmp_launcher_opts_t defaults;
    if (!opts)
        opts = &defaults;
    const char *cwd = opts->cwd;
    pmp_launcher_t *self = calloc(1, sizeof *self);
    int errpipe[2] = {-1, -1}, execpipe[2] = {-1, -1}, outpipe[2] = {-1, -1}, out_fd = -1;
    if (!self)
        goto nomem;
    self->pid = -1;
    self->pidfd = -1;
    self->errfd = -1;
    self->status = -1;
    self->argv0 = strdup(argv[0]);
    self->tail = pmp_tail_new(S_TAIL_BYTES);
    if (!self->argv0 || !self->tail)
        goto nomem;
    if (opts->relay_stdout && pipe2(outpipe, O_CLOEXEC) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot create pipes to start %s: %s", argv[0], strerror(e));
        errno = e;
        goto fail;
    }
    if (pipe2(errpipe, O_CLOEXEC) < 0 || pipe2(execpipe, O_CLOEXEC) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot create pipes to start %s: %s", argv[0], strerror(e));
        errno = e;
        goto fail;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        pmp_error_set(err, "cannot start %s: fork failed: %s", argv[0], strerror(e));
        errno = e;
        goto fail;
    }
    if (pid == 0)
        s_child(path, argv, opts, outpipe[1], errpipe[1], execpipe[1], parent);
    self->pid = pid;
    setpgid(pid, pid); /* also here, so that no kill(-pid) can race the child */
    close(errpipe[1]);
    close(execpipe[1]);
    errpipe[1] = execpipe[1] = -1;
    if (outpipe[1] >= 0) {
        close(outpipe[1]);
        outpipe[1] = -1;
    }

    int report[2];
    ssize_t got;
    do
        got = read(execpipe[0], report, sizeof report);
    while (got < 0 && errno == EINTR);
    close(execpipe[0]);
    execpipe[0] = -1;
    if (got == (ssize_t)sizeof report) {
        int e = report[1];
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        self->pid = -1;
        if (report[0] == S_STAGE_CHDIR)
            pmp_error_set(err, "cannot start %s: cannot change to the directory '%s': %s", argv[0],
                          cwd, strerror(e));
        else if (report[0] == S_STAGE_EXEC)
            pmp_error_set(err, "cannot start %s: executing '%s' failed: %s", argv[0], path,
                          strerror(e));
        else
            pmp_error_set(err, "cannot start %s: setting up the child failed: %s", argv[0],
                          strerror(e));
        errno = e ? e : ECHILD;
        goto fail;
    }
    self->errfd = errpipe[0];
    errpipe[0] = -1;
    fcntl(self->errfd, F_SETFL, fcntl(self->errfd, F_GETFL) | O_NONBLOCK);
    if (outpipe[0] >= 0) {
        /* where the job's stdout would have gone: fd 1 as it is now (-1
         * if closed, then the output is dropped) */
        out_fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
        self->relay = pmp_relay_new(outpipe[0], out_fd, s_banner, self);
        outpipe[0] = out_fd = -1; /* the relay owns them, also on failure */
        if (!self->relay) {
            pmp_launcher_destroy(&self); /* kills and reaps the job */
            pmp_error_set(err, "out of memory while starting %s", argv[0]);
            errno = ENOMEM;
            return NULL;
        }
    }
#ifdef SYS_pidfd_open
    /* PYMPIPOOL_NO_PIDFD=1 forces the waitpid poll (to test that path) */
    const char *no_pidfd = getenv("PYMPIPOOL_NO_PIDFD");
    if (!no_pidfd || strcmp(no_pidfd, "1") != 0)
        self->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (self->pidfd >= 0)
        fcntl(self->pidfd, F_SETFD, FD_CLOEXEC);
#endif
    return self;

nomem:
    pmp_error_set(err, "out of memory while starting %s", argv[0]);
    errno = ENOMEM;
fail : {
    int e = errno;
    for (int i = 0; i < 2; i++) {
        if (errpipe[i] >= 0)
            close(errpipe[i]);
        if (execpipe[i] >= 0)
            close(execpipe[i]);
        if (outpipe[i] >= 0)
            close(outpipe[i]);
    }
    if (self) {
        pmp_tail_destroy(&self->tail);
        free(self->argv0);
        free(self);
    }
    errno = e;
    return NULL;
}
}

void pmp_launcher_destroy(pmp_launcher_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_launcher_t *self = *self_p;
    if (!self->exited && self->pid > 0) {
        pmp_launcher_signal(self, SIGKILL);
        pmp_launcher_wait(self);
    }
    if (self->pidfd >= 0)
        close(self->pidfd);
    if (self->errfd >= 0)
        close(self->errfd);
    pmp_relay_destroy(&self->relay);
    pmp_tail_destroy(&self->tail);
    free(self->argv0);
    free(self);
    *self_p = NULL;
}

pid_t pmp_launcher_pid(const pmp_launcher_t *self)
{
    return self->pid;
}

int pmp_launcher_pidfd(const pmp_launcher_t *self)
{
    return self->exited ? -1 : self->pidfd;
}

int pmp_launcher_pollfds(const pmp_launcher_t *self, struct pollfd *fds, int *timeout_ms)
{
    int n = 0;
    if (self->errfd >= 0)
        fds[n++] = (struct pollfd){.fd = self->errfd, .events = POLLIN};
    if (self->relay)
        n += pmp_relay_pollfds(self->relay, fds + n, timeout_ms);
    return n;
}

/* Reads what is available on the stderr pipe without blocking, echoes it
 * (unless quiet) and keeps its tail.  Returns 1 at end of file. */
static int s_read_stderr(pmp_launcher_t *self)
{
    char buf[4096];
    while (self->errfd >= 0) {
        ssize_t n = read(self->errfd, buf, sizeof buf);
        if (n > 0) {
            pmp_tail_append(self->tail, buf, (size_t)n);
            if (!(self->quiet & PMP_LAUNCHER_QUIET_STDERR))
                s_echo(buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        close(self->errfd); /* end of file or a broken pipe */
        self->errfd = -1;
        return 1;
    }
    return 1;
}

int pmp_launcher_pump(pmp_launcher_t *self)
{
    int err_done = s_read_stderr(self);
    int out_done = self->relay ? pmp_relay_pump(self->relay) : 1;
    return err_done && out_done;
}

void pmp_launcher_quiet(pmp_launcher_t *self, int what)
{
    self->quiet |= what;
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pmp_launcher_drain(pmp_launcher_t *self, int timeout_ms)
{
    int64_t deadline = s_now_ms() + timeout_ms;
    while (!pmp_launcher_pump(self)) {
        int64_t left = deadline - s_now_ms();
        if (left <= 0)
            return;
        struct pollfd p[PMP_LAUNCHER_MAX_FDS];
        int t = -1;
        int n = pmp_launcher_pollfds(self, p, &t);
        if (t < 0 || t > left)
            t = (int)left;
        poll(p, (nfds_t)n, t);
    }
}

int pmp_launcher_poll_exit(pmp_launcher_t *self)
{
    if (self->exited)
        return 1;
    int status;
    pid_t r = waitpid(self->pid, &status, WNOHANG);
    if (r == self->pid) {
        self->exited = 1;
        self->status = status;
        return 1;
    }
    if (r < 0 && errno == ECHILD) { /* somebody else reaped it */
        self->exited = 1;
        self->status = -1;
        return 1;
    }
    return 0;
}

void pmp_launcher_wait(pmp_launcher_t *self)
{
    if (self->exited)
        return;
    int status;
    pid_t r;
    do
        r = waitpid(self->pid, &status, 0);
    while (r < 0 && errno == EINTR);
    self->exited = 1;
    self->status = r == self->pid ? status : -1;
}

int pmp_launcher_signal(pmp_launcher_t *self, int sig)
{
    if (self->pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    return kill(-self->pid, sig);
}

void pmp_launcher_stop_begin(pmp_launcher_stop_t *stop, int grace_ms, int quiet)
{
    stop->step = 1;
    stop->deadline = s_now_ms() + (grace_ms < 0 ? 0 : grace_ms);
    stop->quiet = quiet;
}

int pmp_launcher_stop_begun(const pmp_launcher_stop_t *stop)
{
    return stop->step > 0;
}

int pmp_launcher_stop_due(const pmp_launcher_stop_t *stop)
{
    return stop->step > 0 && stop->step < 3 && s_now_ms() >= stop->deadline;
}

int64_t pmp_launcher_stop_left(const pmp_launcher_stop_t *stop)
{
    if (stop->step < 1 || stop->step > 2)
        return -1;
    int64_t left = stop->deadline - s_now_ms();
    return left < 0 ? 0 : left;
}

int pmp_launcher_stop_next(pmp_launcher_t *self, pmp_launcher_stop_t *stop)
{
    if (!pmp_launcher_stop_due(stop))
        return 0;
    if (stop->step == 1) {
        /* ended on purpose: what the launcher says about it is noise */
        if (stop->quiet)
            pmp_launcher_quiet(self, stop->quiet);
        pmp_launcher_signal(self, SIGTERM);
        stop->step = 2;
        stop->deadline = s_now_ms() + PMP_LAUNCHER_TERM_GRACE_MS;
        return SIGTERM;
    }
    pmp_launcher_signal(self, SIGKILL);
    stop->step = 3;
    return SIGKILL;
}

int pmp_launcher_exited(const pmp_launcher_t *self)
{
    return self->exited;
}

int pmp_launcher_status(const pmp_launcher_t *self)
{
    return self->exited ? self->status : -1;
}

char *pmp_launcher_exit_text(const pmp_launcher_t *self, const char *what)
{
    char how[128];
    if (!self->exited)
        snprintf(how, sizeof how, "is still running");
    else if (self->status == -1)
        snprintf(how, sizeof how, "exited with an unknown status");
    else if (WIFEXITED(self->status))
        snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(self->status));
    else if (WIFSIGNALED(self->status))
        snprintf(how, sizeof how, "was killed by signal %d (%s)", WTERMSIG(self->status),
                 strsignal(WTERMSIG(self->status)));
    else
        snprintf(how, sizeof how, "ended with wait status %d", self->status);
    char *tail = pmp_tail_text(self->tail);
    if (!tail)
        return NULL;
    size_t len = strlen(what) + strlen(self->argv0) + strlen(how) + strlen(tail) + 128;
    char *text = malloc(len);
    if (text && *tail)
        snprintf(text, len, "%s (%s pid %ld) %s; its stderr ended with:\n%s", what, self->argv0,
                 (long)self->pid, how, tail);
    else if (text) /* say so: silence is a clue too (a launcher that misread its environment) */
        snprintf(text, len, "%s (%s pid %ld) %s; it wrote nothing to stderr", what, self->argv0,
                 (long)self->pid, how);
    else
        errno = ENOMEM;
    free(tail);
    return text;
}
