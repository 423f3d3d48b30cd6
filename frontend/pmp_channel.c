/*
 * pmp_channel.c - the transport of SocketInterface: one ZeroMQ PAIR socket,
 * pympipool framing, optional CURVE with a ZAP handler, and a watched child.
 *
 * Why PAIR: a SocketInterface talks to exactly one peer, strictly in turn
 * (instruction, reply), so there is nothing to route; PAIR refuses a second
 * peer while the first is connected.  Each channel has its own ZeroMQ
 * context so that its ZAP handler (inproc://zeromq.zap.01 is per context)
 * only ever answers for this channel.
 *
 * How a call waits: every blocking operation goes through s_wait(), one
 * zmq_poll over the PAIR socket, the ZAP and monitor sockets (CURVE
 * servers, pmp_auth) and the keeper's exit eventfd.  ZAP requests are answered inline, so the CURVE
 * handshake of the client progresses whenever a caller is waiting on the
 * channel (ZeroMQ retries a handshake that took longer than 30 s, so a
 * server that is busy elsewhere for a while only delays the client).  The
 * exit eventfd wakes a waiting call the moment the booted program is gone;
 * a receive then still takes whatever the program sent before it exited
 * (up to S_EXIT_LINGER_MS later, for bytes still on their way through the
 * kernel and ZeroMQ's I/O thread) before failing with ECHILD.
 *
 * The keeper thread: pmp_launcher forks from the calling thread and asks
 * for SIGTERM on the child when that thread ends (PR_SET_PDEATHSIG).  A
 * Python thread that calls bootup() may end long before the interface, so
 * the fork happens on a thread the channel owns, which lives until the
 * child is reaped.  It polls the child's stderr pipe and pidfd (or, without
 * pidfd, waitpid every 100 ms), keeps the stderr tail, publishes the exit
 * under a mutex and through the eventfd, and on destroy stops the child
 * (grace period, SIGTERM, SIGKILL: the launcher's stop steps, which the
 * executor's I/O thread takes too).  When destroy does not wait, the keeper
 * is detached and frees its own state at the end.
 *
 * Guarantees: no call blocks forever on a dead booted program; a malformed
 * or unexpected message is dropped with a logged reason; every zero-copy
 * buffer's free_fn runs exactly once; destroy leaves no child behind (with
 * wait == 0, within the grace period plus 2 s).
 */
#define _GNU_SOURCE
#include "pmp_channel.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "pmp_auth.h"
#include "pmp_completion.h"
#include "pmp_fork.h"
#include "pmp_launcher.h"

#define S_LINGER_MS 1000
#define S_EXIT_LINGER_MS 300
#define S_ENDPOINT_MAX 300

/* ---- the keeper thread --------------------------------------------------- */

typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    pthread_t thread;
    int wakefd; /* eventfd: destroy() wakes the keeper */
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
} s_keeper_t;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static void s_keeper_free(s_keeper_t *k)
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
    s_keeper_t *k = arg;
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

/* ---- the channel --------------------------------------------------------- */

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
    char endpoint[S_ENDPOINT_MAX];
    s_keeper_t *keeper;
    int64_t exit_seen_ms; /* when a receive first saw the program gone */
};

int pmp_channel_has_curve(void)
{
    return zmq_has("curve");
}

/* Whether this process is a forked child of the channel's creator: then
 * ZeroMQ's threads and the keeper are not here, and every call that would
 * wait on them (or on a lock they may hold) fails at once instead. */
static inline int s_in_child(const pmp_channel_t *self)
{
    return __builtin_expect(self->gen != pmp_fork_generation(), 0);
}

int pmp_channel_forked(const pmp_channel_t *self)
{
    return s_in_child(self);
}

static pmp_channel_t *s_channel_alloc(int server, pmp_error_t *err)
{
    pmp_channel_t *self = calloc(1, sizeof *self);
    if (!self) {
        pmp_error_set(err, "out of memory creating a socket channel");
        errno = ENOMEM;
        return NULL;
    }
    pmp_fork_watch();
    self->gen = pmp_fork_generation();
    self->owner = getpid();
    self->server = server;
    self->ctx = zmq_ctx_new();
    if (self->ctx)
        self->sock = zmq_socket(self->ctx, ZMQ_PAIR);
    if (!self->ctx || !self->sock) {
        int e = errno;
        pmp_error_set(err, "cannot create a ZeroMQ socket: %s", zmq_strerror(e));
        if (self->ctx)
            zmq_ctx_term(self->ctx);
        free(self);
        errno = e;
        return NULL;
    }
    int linger = S_LINGER_MS;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    return self;
}

static void s_channel_close_sockets(pmp_channel_t *self)
{
    /* the served socket first: without its ZAP handler, libzmq would admit
     * a CURVE client unchecked */
    if (self->sock) {
        zmq_close(self->sock);
        self->sock = NULL;
    }
    pmp_auth_destroy(&self->auth);
    if (self->ctx) {
        while (zmq_ctx_term(self->ctx) < 0 && errno == EINTR)
            ;
        self->ctx = NULL;
    }
}

pmp_channel_t *pmp_channel_new_server(const char *interface, int curve, pmp_error_t *err)
{
    if (!interface)
        interface = "127.0.0.1";
    if (!*interface || strlen(interface) >= 256 || strpbrk(interface, "/ \t\n")) {
        pmp_error_set(err, "interface '%.100s' is not an address to bind to", interface);
        errno = EINVAL;
        return NULL;
    }
    if (curve > 0 && !pmp_channel_has_curve()) {
        pmp_error_set(err, "this libzmq was built without CURVE security");
        errno = ENOTSUP;
        return NULL;
    }
    pmp_channel_t *self = s_channel_alloc(1, err);
    if (!self)
        return NULL;
    snprintf(self->interface, sizeof self->interface, "%s", interface);
    if (strchr(interface, ':')) {
        int one = 1;
        zmq_setsockopt(self->sock, ZMQ_IPV6, &one, sizeof one);
    }
    self->curve = curve != 0 && pmp_channel_has_curve();
    if (self->curve) {
        self->auth = pmp_auth_new(self->ctx, PMP_CREDENTIALS_CURVE, "socket interface", err);
        if (!self->auth || pmp_auth_server_setup(self->auth, self->sock, err) < 0)
            goto fail;
        pmp_auth_watch(self->auth, self->sock, NULL); /* only for log lines */
    }
    return self;
fail : {
    int e = errno;
    s_channel_close_sockets(self);
    free(self);
    errno = e;
    return NULL;
}
}

pmp_channel_t *pmp_channel_new_client(const char *host, int port, const char *server_key,
                                      const char *public_key, const char *secret_key,
                                      pmp_error_t *err)
{
    if (!host || !*host || strlen(host) >= 256 || strpbrk(host, "/ \t\n")) {
        pmp_error_set(err, "host '%.100s' is not a host name or address", host ? host : "(null)");
        errno = EINVAL;
        return NULL;
    }
    if (port <= 0 || port > 65535) {
        pmp_error_set(err, "port %d is not a TCP port (1..65535)", port);
        errno = EINVAL;
        return NULL;
    }
    if (server_key) {
        uint8_t bin[32];
        const char *keys[3] = {server_key, public_key, secret_key};
        for (int i = 0; i < 3; i++) {
            if (!keys[i] || strlen(keys[i]) != 40 || !zmq_z85_decode(bin, keys[i])) {
                pmp_error_set(err, "CURVE keys must be three 40-character Z85 texts "
                                   "(server public, client public, client secret)");
                errno = EINVAL;
                return NULL;
            }
        }
        if (!pmp_channel_has_curve()) {
            pmp_error_set(err, "the server uses CURVE, but this libzmq was built without it");
            errno = ENOTSUP;
            return NULL;
        }
    }
    pmp_channel_t *self = s_channel_alloc(0, err);
    if (!self)
        return NULL;
    /* Queue messages only on a connection whose handshake completed, so
     * that "writable" means "the server accepted us". */
    int immediate = 1;
    zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate);
    int ipv6 = strchr(host, ':') != NULL;
    if (ipv6) {
        int one = 1;
        zmq_setsockopt(self->sock, ZMQ_IPV6, &one, sizeof one);
    }
    snprintf(self->endpoint, sizeof self->endpoint, ipv6 ? "tcp://[%s]:%d" : "tcp://%s:%d", host,
             port);
    if (server_key) {
        self->curve = 1;
        if (zmq_setsockopt(self->sock, ZMQ_CURVE_SERVERKEY, server_key, 40) < 0 ||
            zmq_setsockopt(self->sock, ZMQ_CURVE_PUBLICKEY, public_key, 40) < 0 ||
            zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, secret_key, 40) < 0) {
            int e = errno;
            pmp_error_set(err, "cannot set the CURVE keys: %s", zmq_strerror(e));
            s_channel_close_sockets(self);
            free(self);
            errno = e;
            return NULL;
        }
    }
    if (zmq_connect(self->sock, self->endpoint) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot connect to %s: %s", self->endpoint, zmq_strerror(e));
        s_channel_close_sockets(self);
        free(self);
        errno = e;
        return NULL;
    }
    return self;
}

void pmp_channel_destroy(pmp_channel_t **self_p, int grace_ms, int wait)
{
    if (!self_p || !*self_p)
        return;
    pmp_channel_t *self = *self_p;
    *self_p = NULL;
    /* In a forked child, closing the socket would wait forever for
     * ZeroMQ's reaper thread, and the booted program is the parent's. */
    if (s_in_child(self))
        return;
    s_channel_close_sockets(self);
    s_keeper_t *k = self->keeper;
    if (k) {
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
    free(self);
}

int pmp_channel_bind_random_port(pmp_channel_t *self, pmp_error_t *err)
{
    if (s_in_child(self))
        return pmp_fork_fail(err, "socket interface", self->owner);
    if (!self->server) {
        pmp_error_set(err, "only the server side of a channel binds");
        errno = EINVAL;
        return -1;
    }
    if (self->bound) {
        pmp_error_set(err, "the socket is bound already, to %s", self->endpoint);
        errno = EALREADY;
        return -1;
    }
    char want[S_ENDPOINT_MAX];
    snprintf(want, sizeof want, strchr(self->interface, ':') ? "tcp://[%s]:*" : "tcp://%s:*",
             self->interface);
    if (zmq_bind(self->sock, want) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot bind to %s: %s", want, zmq_strerror(e));
        errno = e;
        return -1;
    }
    size_t len = sizeof self->endpoint;
    if (zmq_getsockopt(self->sock, ZMQ_LAST_ENDPOINT, self->endpoint, &len) < 0) {
        int e = errno;
        pmp_error_set(err, "cannot read the bound endpoint: %s", zmq_strerror(e));
        errno = e;
        return -1;
    }
    self->bound = 1;
    const char *colon = strrchr(self->endpoint, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (port <= 0) {
        pmp_error_set(err, "cannot read the port of %s", self->endpoint);
        errno = EPROTO;
        return -1;
    }
    return port;
}

const char *pmp_channel_endpoint(const pmp_channel_t *self)
{
    return self->endpoint;
}

int pmp_channel_curve(const pmp_channel_t *self)
{
    return self->curve;
}

const char *pmp_channel_server_public_key(const pmp_channel_t *self)
{
    return self->auth ? pmp_auth_credentials(self->auth)->server_public : NULL;
}

const char *pmp_channel_client_public_key(const pmp_channel_t *self)
{
    return self->auth ? pmp_auth_credentials(self->auth)->client_public : NULL;
}

const char *pmp_channel_client_secret_key(const pmp_channel_t *self)
{
    return self->auth ? pmp_auth_credentials(self->auth)->client_secret : NULL;
}

int pmp_channel_bootup(pmp_channel_t *self, const char *const argv[], const char *cwd,
                       const char *const envp[], pmp_error_t *err)
{
    if (s_in_child(self))
        return pmp_fork_fail(err, "socket interface", self->owner);
    if (!self->server) {
        pmp_error_set(err, "only the server side of a channel boots a program");
        errno = EINVAL;
        return -1;
    }
    if (self->keeper) {
        pmp_error_set(err, "a program was booted already (pid %ld)", (long)self->keeper->pid);
        errno = EALREADY;
        return -1;
    }
    if (!argv || !argv[0] || !argv[0][0]) {
        pmp_error_set(err, "the command is empty");
        errno = EINVAL;
        return -1;
    }
    s_keeper_t *k = calloc(1, sizeof *k);
    if (!k) {
        pmp_error_set(err, "out of memory booting %s", argv[0]);
        errno = ENOMEM;
        return -1;
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
        return -1;
    }
    k->path = pmp_launcher_which(argv[0], "program", err);
    if (!k->path) {
        int e = errno;
        s_keeper_free(k);
        errno = e;
        return -1;
    }
    k->argv = s_strv_dup(argv);
    k->envp = envp ? s_strv_dup(envp) : NULL;
    k->cwd = cwd ? strdup(cwd) : NULL;
    if (!k->argv || (envp && !k->envp) || (cwd && !k->cwd)) {
        pmp_error_set(err, "out of memory booting %s", argv[0]);
        s_keeper_free(k);
        errno = ENOMEM;
        return -1;
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
        return -1;
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
        return -1;
    }
    self->keeper = k;
    self->exit_seen_ms = 0;
    return 0;
}

pid_t pmp_channel_pid(const pmp_channel_t *self)
{
    return self->keeper ? self->keeper->pid : -1;
}

int pmp_channel_exited(pmp_channel_t *self, int *status)
{
    if (s_in_child(self)) {
        if (status)
            *status = -1;
        return pmp_fork_fail(NULL, "socket interface", self->owner);
    }
    s_keeper_t *k = self->keeper;
    if (!k) {
        if (status)
            *status = -1;
        return 0;
    }
    pthread_mutex_lock(&k->mutex);
    int exited = k->exited;
    if (status)
        *status = exited ? k->status : -1;
    pthread_mutex_unlock(&k->mutex);
    return exited;
}

char *pmp_channel_exit_text(pmp_channel_t *self)
{
    if (s_in_child(self)) {
        pmp_fork_fail(NULL, "socket interface", self->owner);
        return NULL;
    }
    s_keeper_t *k = self->keeper;
    char *text = NULL;
    if (k) {
        pthread_mutex_lock(&k->mutex);
        if (k->exited)
            text = strdup(k->exit_text ? k->exit_text : "the booted program exited");
        pthread_mutex_unlock(&k->mutex);
        if (k->exited && !text) {
            errno = ENOMEM;
            return NULL;
        }
    }
    if (!text)
        errno = ESRCH;
    return text;
}

static int s_fail_exited(pmp_channel_t *self, pmp_error_t *err)
{
    char *text = pmp_channel_exit_text(self);
    pmp_error_set(err, "%s", text ? text : "the booted program exited");
    free(text);
    errno = ECHILD;
    return -1;
}

/* ---- waiting --------------------------------------------------------------- */

/* Waits up to timeout_ms (-1: forever) for events on the socket, serving
 * ZAP meanwhile.  watch_exit: also return when the booted program exits.
 * Returns 1 when the socket is ready, 0 on timeout, a signal or the exit
 * event, -1 with errno on error. */
static int s_wait(pmp_channel_t *self, short events, int timeout_ms, int watch_exit)
{
    int64_t deadline = timeout_ms < 0 ? -1 : s_now_ms() + timeout_ms;
    for (;;) {
        zmq_pollitem_t items[4];
        int n = 0, zap_i = -1, nzap = 0, exit_i = -1;
        items[n++] = (zmq_pollitem_t){.socket = self->sock, .events = events};
        if (self->auth) {
            zap_i = n;
            nzap = pmp_auth_pollitems(self->auth, &items[n]);
            n += nzap;
        }
        if (watch_exit && self->keeper) {
            exit_i = n;
            items[n++] = (zmq_pollitem_t){.fd = self->keeper->exitfd, .events = ZMQ_POLLIN};
        }
        long slice = -1;
        if (deadline >= 0) {
            int64_t left = deadline - s_now_ms();
            slice = left > 0 ? (long)left : 0;
        }
        int rc = zmq_poll(items, n, slice);
        if (rc < 0)
            return errno == EINTR ? 0 : -1;
        for (int z = 0; z < nzap; z++)
            if (items[zap_i + z].revents) {
                pmp_auth_serve(self->auth);
                break;
            }
        if (items[0].revents & events)
            return 1;
        if (exit_i >= 0 && items[exit_i].revents)
            return 0;
        if (deadline >= 0 && s_now_ms() >= deadline)
            return 0;
    }
}

int pmp_channel_wait_writable(pmp_channel_t *self, int timeout_ms, pmp_error_t *err)
{
    if (s_in_child(self))
        return pmp_fork_fail(err, "socket interface", self->owner);
    int64_t deadline = timeout_ms < 0 ? -1 : s_now_ms() + timeout_ms;
    for (;;) {
        if (self->server && !self->bound) {
            pmp_error_set(err, "the socket is not bound: call bind_to_random_port() first");
            errno = ENOTCONN;
            return -1;
        }
        if (pmp_channel_exited(self, NULL))
            return s_fail_exited(self, err);
        int left = -1;
        if (deadline >= 0) {
            int64_t l = deadline - s_now_ms();
            left = l > 0 ? (int)l : 0;
        }
        int rc = s_wait(self, ZMQ_POLLOUT, left, 1);
        if (rc < 0) {
            int e = errno;
            pmp_error_set(err, "waiting on the socket failed: %s", zmq_strerror(e));
            errno = e;
            return -1;
        }
        if (rc == 1)
            return 0;
        if (pmp_channel_exited(self, NULL))
            return s_fail_exited(self, err);
        if (deadline >= 0 && s_now_ms() >= deadline) {
            pmp_error_set(err, "the peer is not connected or has no room for a message");
            errno = EAGAIN;
            return -1;
        }
    }
}

/* ---- sending --------------------------------------------------------------- */

static void s_release_from(const pmp_buffer_t *bufs, size_t nbufs, size_t first)
{
    for (size_t i = first; i < nbufs; i++)
        if (bufs[i].free_fn)
            bufs[i].free_fn((void *)bufs[i].data, bufs[i].hint);
}

int pmp_channel_send(pmp_channel_t *self, int type, uint64_t task_id, uint32_t flags,
                     const pmp_buffer_t *bufs, size_t nbufs, pmp_error_t *err)
{
    if (s_in_child(self))
        return pmp_fork_fail(err, "socket interface", self->owner);
    int ok_type =
        self->server ? type == PMP_MSG_TASK : (type == PMP_MSG_RESULT || type == PMP_MSG_ERROR);
    if (!ok_type) {
        pmp_error_set(err, "a %s does not send %s messages", self->server ? "server" : "client",
                      pmp_msg_type_name(type));
        errno = EINVAL;
        return -1;
    }
    if (task_id == 0 || (flags & ~PMP_FLAG_KNOWN_MASK) != 0) {
        pmp_error_set(err, "task id must be non-zero and flags known (got %llu, 0x%x)",
                      (unsigned long long)task_id, (unsigned)flags);
        errno = EINVAL;
        return -1;
    }
    if (!bufs || nbufs < 1 || nbufs > PMP_MAX_FRAMES) {
        pmp_error_set(err, "a message has 1 to %d frames after the header, not %zu", PMP_MAX_FRAMES,
                      nbufs);
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < nbufs; i++) {
        if (!bufs[i].data && bufs[i].size > 0) {
            pmp_error_set(err, "buffer %zu has no data but %zu bytes", i, bufs[i].size);
            errno = EINVAL;
            return -1;
        }
    }
    pmp_header_t hdr = {
        .type = (uint16_t)type, .task_id = task_id, .flags = flags, .nframes = (uint32_t)nbufs};
    unsigned char head[PMP_HEADER_SIZE];
    pmp_header_encode(&hdr, head);
    int rc;
    do
        rc = zmq_send(self->sock, head, sizeof head, ZMQ_SNDMORE);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int e = errno;
        pmp_error_set(err, "sending a message failed: %s", zmq_strerror(e));
        s_release_from(bufs, nbufs, 0);
        errno = e;
        return -1;
    }
    for (size_t i = 0; i < nbufs; i++) {
        zmq_msg_t m;
        int more = i + 1 < nbufs ? ZMQ_SNDMORE : 0;
        if (bufs[i].free_fn) {
            rc = zmq_msg_init_data(&m, (void *)bufs[i].data, bufs[i].size, bufs[i].free_fn,
                                   bufs[i].hint);
            if (rc < 0) { /* free_fn was not taken over */
                int e = errno;
                pmp_error_set(err, "out of memory sending a message");
                s_release_from(bufs, nbufs, i);
                errno = e;
                return -1;
            }
        } else {
            if (zmq_msg_init_size(&m, bufs[i].size) < 0) {
                pmp_error_set(err, "out of memory sending a message");
                s_release_from(bufs, nbufs, i + 1);
                errno = ENOMEM;
                return -1;
            }
            if (bufs[i].size)
                memcpy(zmq_msg_data(&m), bufs[i].data, bufs[i].size);
        }
        do
            rc = zmq_msg_send(&m, self->sock, more);
        while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            int e = errno;
            zmq_msg_close(&m); /* calls this buffer's free_fn */
            pmp_error_set(err, "sending a message failed: %s", zmq_strerror(e));
            s_release_from(bufs, nbufs, i + 1);
            errno = e;
            return -1;
        }
    }
    return 0;
}

/* ---- receiving ------------------------------------------------------------- */

void pmp_channel_msg_destroy(pmp_channel_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pmp_channel_msg_t *m = *self_p;
    for (size_t i = 0; i < m->nframes; i++)
        pmp_frame_destroy(&m->frames[i]);
    free(m->frames);
    free(m);
    *self_p = NULL;
}

/* Takes one whole message if one is there.  Returns it, or NULL with
 * errno = EAGAIN when nothing (valid) is pending, or another errno. */
static pmp_channel_msg_t *s_try_recv(pmp_channel_t *self, pmp_error_t *err)
{
    for (;;) {
        zmq_msg_t *parts = NULL;
        size_t n = 0, cap = 0, dropped = 0;
        int more = 1;
        while (more) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                zmq_msg_t *np = realloc(parts, ncap * sizeof *np);
                if (!np) {
                    for (size_t i = 0; i < n; i++)
                        zmq_msg_close(&parts[i]);
                    free(parts);
                    pmp_error_set(err, "out of memory receiving a message");
                    errno = ENOMEM;
                    return NULL;
                }
                parts = np;
                cap = ncap;
            }
            zmq_msg_init(&parts[n]);
            int rc;
            do
                rc = zmq_msg_recv(&parts[n], self->sock, n == 0 && !dropped ? ZMQ_DONTWAIT : 0);
            while (rc < 0 && errno == EINTR && (n > 0 || dropped));
            if (rc < 0) {
                int e = errno;
                zmq_msg_close(&parts[n]);
                for (size_t i = 0; i < n; i++)
                    zmq_msg_close(&parts[i]);
                free(parts);
                if (e == EINTR)
                    e = EAGAIN;
                if (e != EAGAIN)
                    pmp_error_set(err, "receiving a message failed: %s", zmq_strerror(e));
                errno = e;
                return NULL;
            }
            more = zmq_msg_more(&parts[n]);
            if (n > PMP_MAX_FRAMES) { /* too long: drain, keep nothing more */
                zmq_msg_close(&parts[n]);
                dropped++;
            } else {
                n++;
            }
        }
        pmp_error_t why;
        why.text[0] = '\0';
        pmp_header_t hdr;
        int valid =
            pmp_header_decode(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), &hdr, &why) == 0 &&
            pmp_header_check(&hdr, n - 1 + dropped, self->server, &why) == 0;
        if (valid) {
            int wanted = self->server ? (hdr.type == PMP_MSG_RESULT || hdr.type == PMP_MSG_ERROR)
                                      : hdr.type == PMP_MSG_TASK;
            if (!wanted) {
                pmp_error_set(&why, "unexpected %s message", pmp_msg_type_name(hdr.type));
                valid = 0;
            }
        }
        if (!valid) {
            pmp_log(PMP_LOG_WARNING, "socket interface: dropped a message: %s", why.text);
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            free(parts);
            continue;
        }
        pmp_channel_msg_t *m = calloc(1, sizeof *m);
        pmp_completion_t *holder = m ? pmp_completion_new(0, 0, 0, NULL, -1) : NULL;
        if (!holder || pmp_completion_take_msgs(holder, parts + 1, n - 1) < 0 ||
            (n > 1 && !(m->frames = pmp_completion_steal_frames(holder, &m->nframes)))) {
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            free(parts);
            free(m);
            pmp_completion_destroy(&holder);
            pmp_error_set(err, "out of memory receiving a message");
            errno = ENOMEM;
            return NULL;
        }
        /* The frames move from the completion to the message. */
        m->type = hdr.type;
        m->task_id = hdr.task_id;
        m->flags = hdr.flags;
        pmp_completion_destroy(&holder);
        zmq_msg_close(&parts[0]);
        free(parts);
        return m;
    }
}

pmp_channel_msg_t *pmp_channel_recv(pmp_channel_t *self, int timeout_ms, pmp_error_t *err)
{
    if (s_in_child(self)) {
        pmp_fork_fail(err, "socket interface", self->owner);
        return NULL;
    }
    if (self->server && !self->bound) {
        pmp_error_set(err, "the socket is not bound: call bind_to_random_port() first");
        errno = ENOTCONN;
        return NULL;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : s_now_ms() + timeout_ms;
    for (;;) {
        pmp_channel_msg_t *m = s_try_recv(self, err);
        if (m)
            return m;
        if (errno != EAGAIN)
            return NULL;
        int64_t now = s_now_ms();
        int64_t wait_ms = deadline < 0 ? -1 : deadline - now;
        int exited = pmp_channel_exited(self, NULL);
        if (exited) {
            if (self->exit_seen_ms == 0)
                self->exit_seen_ms = now;
            int64_t left = self->exit_seen_ms + S_EXIT_LINGER_MS - now;
            if (left <= 0) {
                s_fail_exited(self, err);
                return NULL;
            }
            if (wait_ms < 0 || left < wait_ms)
                wait_ms = left;
        }
        if (deadline >= 0 && wait_ms <= 0) {
            pmp_error_set(err, "no message arrived in time");
            errno = EAGAIN;
            return NULL;
        }
        if (s_wait(self, ZMQ_POLLIN, (int)wait_ms, !exited) < 0) {
            int e = errno;
            pmp_error_set(err, "waiting on the socket failed: %s", zmq_strerror(e));
            errno = e;
            return NULL;
        }
    }
}
