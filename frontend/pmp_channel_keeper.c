/*
 * pmp_channel_keeper.c - the thread of a socket channel that boots its
 * program and watches it (see pmp_channel_internal.h).
 *
 * Why a thread: pmp_launcher forks from the calling thread and asks for
 * SIGTERM on the child when that thread ends (PR_SET_PDEATHSIG).  A Python
 * thread that calls bootup() may end long before the interface, so the
 * fork happens on a thread the channel owns, which lives until the child is
 * reaped.  It polls the child's stderr pipe and pidfd (or, without pidfd,
 * waitpid every 100 ms), keeps the stderr tail, publishes the exit under a
 * mutex and through an eventfd (which wakes a call waiting on the channel),
 * and on stop ends the child (grace period, SIGTERM, SIGKILL: the
 * launcher's stop steps, which the executor's I/O thread takes too).  When
 * the stop does not wait, the keeper is detached and frees its own state
 * at the end.  It never touches the channel's socket, and it takes no
 * signal: those belong to the caller's threads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pmp_channel_internal.h"
#include "pmp_launcher.h"

struct pmp_channel_keeper {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    pthread_t thread;
    int wakefd; /* eventfd: pmp_channel_keeper_stop() wakes the keeper */
    int exitfd; /* eventfd: written once when the program has exited */
    /* start-up, read by the keeper before it reports */
    char *path;
    char **argv;
    char **envp;
    char *cwd;
    /* published under mutex */
    int started; /* 0: pending, 1: running, -1: failed */
    int start_errno;
    pmp_error_t start_err;
    pid_t pid;
    int exited;
    int status;
    char *exit_text;
    int stop;
    int grace_ms;
    int detached;
};

static void s_strv_free(char **v)
{
    if (!v)
        return;
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

static char **s_strv_dup(const char *const *v)
{
    size_t n = 0;
    while (v[n])
        n++;
    char **copy = calloc(n + 1, sizeof *copy);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        copy[i] = strdup(v[i]);
        if (!copy[i]) {
            s_strv_free(copy);
            errno = ENOMEM;
            return NULL;
        }
    }
    return copy;
}

static void s_keeper_free(pmp_channel_keeper_t *k)
{
    if (!k)
        return;
    pthread_mutex_destroy(&k->mutex);
    pthread_cond_destroy(&k->cond);
    if (k->wakefd >= 0)
        close(k->wakefd);
    if (k->exitfd >= 0)
        close(k->exitfd);
    free(k->path);
    s_strv_free(k->argv);
    s_strv_free(k->envp);
    free(k->cwd);
    free(k->exit_text);
    free(k);
}

static void s_eventfd_post(int fd)
{
    uint64_t one = 1;
    ssize_t rc;
    do
        rc = write(fd, &one, sizeof one);
    while (rc < 0 && errno == EINTR);
}

static void *s_keeper_run(void *arg)
{
    pmp_channel_keeper_t *k = arg;
    pthread_setname_np(pthread_self(), "pympipool-keep");
    pmp_error_t err;
    err.text[0] = '\0';
    /* the program's environment as given (or ours, untouched) and our stdout */
    pmp_launcher_opts_t opts = {.envp = k->envp, .cwd = k->cwd};
    pmp_launcher_t *launcher = pmp_launcher_new(k->path, k->argv, &opts, &err);
    int e = errno;
    pthread_mutex_lock(&k->mutex);
    if (!launcher) {
        k->started = -1;
        k->start_errno = e;
        k->start_err = err;
    } else {
        k->started = 1;
        k->pid = pmp_launcher_pid(launcher);
    }
    pthread_cond_broadcast(&k->cond);
    pthread_mutex_unlock(&k->mutex);
    if (!launcher)
        return NULL; /* the creator joins and frees */

    int exited = 0;
    pmp_launcher_stop_t ending = {0}; /* grace, SIGTERM, SIGKILL (pmp_launcher.h) */
    for (;;) {
        if (!exited && pmp_launcher_poll_exit(launcher)) {
            pmp_launcher_drain(launcher, 500);
            char *text = pmp_launcher_exit_text(launcher, "the booted program");
            pthread_mutex_lock(&k->mutex);
            k->exited = 1;
            k->status = pmp_launcher_status(launcher);
            k->exit_text = text;
            pthread_mutex_unlock(&k->mutex);
            s_eventfd_post(k->exitfd);
            exited = 1;
        }
        pthread_mutex_lock(&k->mutex);
        int stop = k->stop, grace_ms = k->grace_ms;
        pthread_mutex_unlock(&k->mutex);
        if (stop && exited)
            break;
        if (stop && !pmp_launcher_stop_begun(&ending))
            pmp_launcher_stop_begin(&ending, grace_ms, 0);
        pmp_launcher_stop_next(launcher, &ending);
        struct pollfd p[2 + PMP_LAUNCHER_MAX_FDS];
        nfds_t n = 0;
        p[n++] = (struct pollfd){.fd = k->wakefd, .events = POLLIN};
        int pidfd = exited ? -1 : pmp_launcher_pidfd(launcher);
        if (pidfd >= 0)
            p[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        int timeout = -1;
        nfds_t out_i = n;
        n += (nfds_t)pmp_launcher_pollfds(launcher, p + n, &timeout); /* its stderr */
        if (!exited && pidfd < 0 && (timeout < 0 || timeout > 100))
            timeout = 100;
        int64_t left = exited ? -1 : pmp_launcher_stop_left(&ending);
        if (left >= 0 && (timeout < 0 || left < timeout))
            timeout = (int)left;
        if (poll(p, n, timeout) <= 0)
            continue;
        if (p[0].revents) {
            uint64_t v;
            ssize_t rc = read(k->wakefd, &v, sizeof v);
            (void)rc;
        }
        for (nfds_t i = out_i; i < n; i++)
            if (p[i].revents) {
                pmp_launcher_pump(launcher);
                break;
            }
    }
    pmp_launcher_destroy(&launcher);
    pthread_mutex_lock(&k->mutex);
    int detached = k->detached;
    pthread_mutex_unlock(&k->mutex);
    if (detached)
        s_keeper_free(k);
    return NULL;
}

pmp_channel_keeper_t *pmp_channel_keeper_start(const char *const argv[], const char *cwd,
                                               const char *const envp[], pmp_error_t *err)
{
    pmp_channel_keeper_t *k = calloc(1, sizeof *k);
    if (!k) {
        pmp_error_set(err, "out of memory booting %s", argv[0]);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&k->mutex, NULL);
    pthread_cond_init(&k->cond, NULL);
    k->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    k->exitfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    k->status = -1;
    k->pid = -1;
    if (k->wakefd < 0 || k->exitfd < 0) {
        int e = errno;
        pmp_error_set(err, "cannot create an eventfd: %s", strerror(e));
        s_keeper_free(k);
        errno = e;
        return NULL;
    }
    k->path = pmp_launcher_which(argv[0], "program", err);
    if (!k->path) {
        int e = errno;
        s_keeper_free(k);
        errno = e;
        return NULL;
    }
    k->argv = s_strv_dup(argv);
    k->envp = envp ? s_strv_dup(envp) : NULL;
    k->cwd = cwd ? strdup(cwd) : NULL;
    if (!k->argv || (envp && !k->envp) || (cwd && !k->cwd)) {
        pmp_error_set(err, "out of memory booting %s", argv[0]);
        s_keeper_free(k);
        errno = ENOMEM;
        return NULL;
    }
    /* The keeper takes no signal: they belong to the caller's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&k->thread, NULL, s_keeper_run, k);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pmp_error_set(err, "cannot start the thread that watches %s: %s", argv[0], strerror(rc));
        s_keeper_free(k);
        errno = rc;
        return NULL;
    }
    pthread_mutex_lock(&k->mutex);
    while (k->started == 0)
        pthread_cond_wait(&k->cond, &k->mutex);
    int started = k->started;
    pthread_mutex_unlock(&k->mutex);
    if (started < 0) {
        pthread_join(k->thread, NULL);
        if (err)
            *err = k->start_err;
        int e = k->start_errno;
        s_keeper_free(k);
        errno = e;
        return NULL;
    }
    return k;
}

void pmp_channel_keeper_stop(pmp_channel_keeper_t *k, int grace_ms, int wait)
{
    if (grace_ms < 0)
        grace_ms = 0;
    pthread_t thread = k->thread;
    pthread_mutex_lock(&k->mutex);
    k->stop = 1;
    k->grace_ms = grace_ms;
    k->detached = !wait;
    pthread_mutex_unlock(&k->mutex);
    s_eventfd_post(k->wakefd); /* after this, a detached keeper owns k */
    if (wait) {
        pthread_join(thread, NULL);
        s_keeper_free(k);
    } else {
        pthread_detach(thread);
    }
}

pid_t pmp_channel_keeper_pid(const pmp_channel_keeper_t *k)
{
    return k->pid;
}

int pmp_channel_keeper_exitfd(const pmp_channel_keeper_t *k)
{
    return k->exitfd;
}

int pmp_channel_keeper_exited(pmp_channel_keeper_t *k, int *status)
{
    pthread_mutex_lock(&k->mutex);
    int exited = k->exited;
    if (status)
        *status = exited ? k->status : -1;
    pthread_mutex_unlock(&k->mutex);
    return exited;
}

char *pmp_channel_keeper_exit_text(pmp_channel_keeper_t *k)
{
    pthread_mutex_lock(&k->mutex);
    int exited = k->exited;
    char *text = exited ? strdup(k->exit_text ? k->exit_text : "the booted program exited") : NULL;
    pthread_mutex_unlock(&k->mutex);
    if (!text)
        errno = exited ? ENOMEM : ESRCH;
    return text;
}
