/*
 * fake_runtime.c - a stand-in for pympipool-runtime in the executor's unit
 * tests: no MPI and no Python, only the wire protocol.
 *
 * Started through a real mpiexec, each process reads its rank from
 * PMI_RANK (MPICH) or OMPI_COMM_WORLD_RANK (Open MPI), default 0, and the
 * job size from PMI_SIZE / OMPI_COMM_WORLD_SIZE.  Its group is
 * rank / ranks-per-group; only the first rank of a group connects (a local
 * link to an ipc:// --endpoint, pmp_link.h, else a DEALER), says HELLO and then echoes every TASK's
 * frames back as a RESULT with the same task id; the other ranks exit at once.  On SHUTDOWN it says
 * GOODBYE and exits 0; it also exits when the frontend process
 * (--frontend-pid) is gone.  Test options:
 *   --fake-crash-at-task N  write "fake: crashing" to stderr, exit 3 on task N
 *   --fake-kill-at-task N   write "fake: killing myself" to stderr and die of
 *                           SIGKILL on task N
 *   --fake-fail-start       write a message to stderr, exit 1 before hello
 *   --fake-error            answer every task with ERROR (payload echoed)
 *   --fake-delay-ms N       sleep N ms before each answer
 *   --fake-tag              append a frame "group=G init=<init payload|->"
 *   --fake-log              append a frame "log=<history>": every INIT,
 *                           DEFINE and FORGET received so far, in order, as
 *                           "I:<payload>", "D<key>:<payload>", "F<key>",
 *                           separated by commas ("log=" when none)
 *   --fake-late-ms N        groups other than group 0 connect N ms late
 *   --fake-sigint           catch SIGINT: a task sleeping in --fake-delay-ms
 *                           is cut short and answered with the one frame
 *                           "interrupted" (without it, SIGINT kills the rank)
 *   --fake-print TEXT       write TEXT to stdout (flushed) for every task
 *   --fake-ranks            name the leader in the hello's "ranks" line (so
 *                           that the frontend watches it and can signal it)
 *   --fake-print-bytes N    write N bytes ('y') to stdout for every task
 *   --fake-getenv A,B,...   append a frame "A=<value or ->,B=..." of this
 *                           process's environment to every RESULT
 * DEFINE and FORGET get no reply, as from the real runtime.  With
 * --credentials FILE it authenticates as the real runtime does (PLAIN or
 * CURVE, pmp_credentials.h); --fake-no-credentials ignores the file, to
 * test that the frontend refuses such a peer.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "pmp_credentials.h"
#include "pmp_link.h"
#include "pmp_protocol.h"

/* The connection to the frontend: a local link (ipc://) or a DEALER. */
static pmp_link_t *s_link;

static volatile sig_atomic_t s_interrupted;

static void s_on_sigint(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

static int s_env_int(const char *a, const char *b, int dflt)
{
    const char *v = getenv(a);
    if (!v)
        v = getenv(b);
    return v ? atoi(v) : dflt;
}

static void s_send(void *sock, int type, uint64_t id, uint32_t flags, zmq_msg_t *frames, size_t n)
{
    pmp_header_t hdr = {
        .type = (uint16_t)type, .task_id = id, .flags = flags, .nframes = (uint32_t)n};
    unsigned char buf[PMP_HEADER_SIZE];
    pmp_header_encode(&hdr, buf);
    if (s_link) {
        zmq_msg_t parts[65];
        zmq_msg_init_size(&parts[0], sizeof buf);
        memcpy(zmq_msg_data(&parts[0]), buf, sizeof buf);
        for (size_t i = 0; i < n && i < 64; i++) {
            zmq_msg_init(&parts[i + 1]);
            zmq_msg_move(&parts[i + 1], &frames[i]);
        }
        if (pmp_link_send(s_link, parts, n + 1) < 0 || pmp_link_flush_wait(s_link, -1) < 0)
            exit(10);
        return;
    }
    if (zmq_send(sock, buf, sizeof buf, n ? ZMQ_SNDMORE : 0) < 0)
        exit(10);
    for (size_t i = 0; i < n; i++)
        if (zmq_msg_send(&frames[i], sock, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
            exit(11);
}

int main(int argc, char **argv)
{
    const char *endpoint = NULL;
    int rpg = 1, crash_at = 0, kill_at = 0, fail_start = 0, error = 0, delay_ms = 0, tag = 0,
        log = 0;
    int late_ms = 0, no_credentials = 0, catch_sigint = 0, name_ranks = 0;
    const char *credentials = NULL, *print = NULL, *getenv_names = NULL;
    long print_bytes = 0;
    long frontend_pid = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--endpoint") && v)
            endpoint = argv[++i];
        else if (!strcmp(a, "--ranks-per-group") && v)
            rpg = atoi(argv[++i]);
        else if (!strcmp(a, "--frontend-pid") && v)
            frontend_pid = atol(argv[++i]);
        else if (!strcmp(a, "--fake-crash-at-task") && v)
            crash_at = atoi(argv[++i]);
        else if (!strcmp(a, "--fake-kill-at-task") && v)
            kill_at = atoi(argv[++i]);
        else if (!strcmp(a, "--fake-delay-ms") && v)
            delay_ms = atoi(argv[++i]);
        else if (!strcmp(a, "--fake-fail-start"))
            fail_start = 1;
        else if (!strcmp(a, "--fake-error"))
            error = 1;
        else if (!strcmp(a, "--fake-tag"))
            tag = 1;
        else if (!strcmp(a, "--fake-log"))
            log = 1;
        else if (!strcmp(a, "--fake-late-ms") && v)
            late_ms = atoi(argv[++i]);
        else if (!strcmp(a, "--credentials") && v)
            credentials = argv[++i];
        else if (!strcmp(a, "--fake-no-credentials"))
            no_credentials = 1;
        else if (!strcmp(a, "--fake-sigint"))
            catch_sigint = 1;
        else if (!strcmp(a, "--fake-ranks"))
            name_ranks = 1;
        else if (!strcmp(a, "--fake-print-bytes") && v)
            print_bytes = atol(argv[++i]);
        else if (!strcmp(a, "--fake-getenv") && v)
            getenv_names = argv[++i];
        else if (!strcmp(a, "--fake-print") && v)
            print = argv[++i];
    }
    if (catch_sigint) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = s_on_sigint; /* no SA_RESTART: a sleep ends early */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
    int rank = s_env_int("PMI_RANK", "OMPI_COMM_WORLD_RANK", 0);
    int size = s_env_int("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", 1);
    if (fail_start) {
        fprintf(stderr, "fake: cannot start on rank %d (asked to fail)\n", rank);
        /* Open MPI's mpiexec forwards a rank's stderr asynchronously and,
         * on a busy machine, can end the job before it forwarded what a
         * rank wrote just before it exited: give it the time a real
         * runtime's start takes anyway. */
        usleep(200 * 1000);
        return 1;
    }
    if (!endpoint || rpg < 1) {
        fprintf(stderr, "fake: usage: fake_runtime --endpoint E --ranks-per-group K\n");
        return 2;
    }
    if (rank % rpg != 0)
        return 0;
    if (late_ms > 0 && rank / rpg > 0) {
        struct timespec ts = {late_ms / 1000, (long)(late_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }

    if (strncmp(endpoint, "ipc://", 6) == 0) {
        char password[PMP_CREDENTIALS_KEY_TEXT] = "";
        if (credentials && !no_credentials) {
            pmp_credentials_t c;
            pmp_error_t err;
            if (pmp_credentials_read(credentials, &c, &err) < 0) {
                fprintf(stderr, "fake: %s\n", err.text);
                return 5;
            }
            snprintf(password, sizeof password, "%s", c.password);
            pmp_credentials_wipe(&c);
        }
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", endpoint + 6);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        zmq_msg_t greeting;
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            fprintf(stderr, "fake: cannot connect to %s: %s\n", endpoint, strerror(errno));
            return 4;
        }
        s_link = pmp_link_new(fd, PMP_LINK_MAX_FRAME);
        if (!s_link || pmp_link_greeting(&greeting, password) < 0 ||
            pmp_link_send(s_link, &greeting, 1) < 0)
            return 4;
    }
    void *ctx = s_link ? NULL : zmq_ctx_new();
    void *sock = s_link ? NULL : zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    if (sock)
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (sock && credentials && !no_credentials) {
        pmp_credentials_t c;
        pmp_error_t err;
        if (pmp_credentials_read(credentials, &c, &err) < 0) {
            fprintf(stderr, "fake: %s\n", err.text);
            return 5;
        }
        if (c.mechanism == PMP_CREDENTIALS_PLAIN) {
            zmq_setsockopt(sock, ZMQ_PLAIN_USERNAME, PMP_CREDENTIALS_USER,
                           strlen(PMP_CREDENTIALS_USER));
            zmq_setsockopt(sock, ZMQ_PLAIN_PASSWORD, c.password, strlen(c.password));
        } else {
            zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c.server_public, 40);
            zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c.client_public, 40);
            zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c.client_secret, 40);
        }
        pmp_credentials_wipe(&c);
    }
    if (sock && zmq_connect(sock, endpoint) < 0) {
        fprintf(stderr, "fake: cannot connect to %s: %s\n", endpoint, zmq_strerror(errno));
        return 4;
    }
    pmp_hello_t hello;
    memset(&hello, 0, sizeof hello);
    hello.group = rank / rpg;
    hello.ngroups = size / rpg;
    hello.group_size = rpg;
    hello.world_size = size;
    hello.world_rank = rank;
    hello.pid = getpid();
    gethostname(hello.host, sizeof hello.host - 1);
    snprintf(hello.python_version, sizeof hello.python_version, "none");
    snprintf(hello.mpi_version, sizeof hello.mpi_version, "fake");
    snprintf(hello.runtime_version, sizeof hello.runtime_version, "fake");
    char text[4096];
    int len = pmp_hello_encode(&hello, text, sizeof text);
    if (len < 0)
        return 5;
    if (name_ranks) {
        pmp_hello_rank_t me = {.world_rank = rank, .pid = getpid()};
        snprintf(me.host, sizeof me.host, "%s", hello.host);
        int m = pmp_hello_ranks_encode(&me, 1, text + len, sizeof text - (size_t)len);
        if (m < 0)
            return 5;
        len += m;
    }
    zmq_msg_t hm;
    zmq_msg_init_size(&hm, (size_t)len);
    memcpy(zmq_msg_data(&hm), text, (size_t)len);
    s_send(sock, PMP_MSG_HELLO, 0, 0, &hm, 1);

    char init[256] = "-";
    char history[2048] = "";
    int ntasks = 0;
    for (;;) {
        zmq_msg_t parts[64];
        size_t n = 0;
        int more = 1, ready = 1;
        if (s_link) {
            zmq_msg_t *got;
            size_t ngot;
            int rc = pmp_link_recv(s_link, &got, &ngot);
            if (rc < 0)
                return 7;
            if (rc == 1) {
                for (; n < ngot && n < 63; n++) {
                    zmq_msg_init(&parts[n]);
                    zmq_msg_move(&parts[n], &got[n]);
                }
                more = 0;
            } else {
                struct pollfd p = {.fd = pmp_link_fd(s_link), .events = POLLIN};
                ready = poll(&p, 1, 500);
                if (ready != 0)
                    continue;
            }
        } else {
            zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
            ready = zmq_poll(&item, 1, 500);
            if (ready < 0 && errno == EINTR)
                continue;
        }
        if (ready == 0) {
            if (frontend_pid > 0 && kill((pid_t)frontend_pid, 0) < 0 && errno == ESRCH)
                return 6;
            continue;
        }
        while (more) {
            zmq_msg_init(&parts[n]);
            if (zmq_msg_recv(&parts[n], sock, 0) < 0)
                return 7;
            more = zmq_msg_more(&parts[n]);
            if (n < 63)
                n++;
            else
                zmq_msg_close(&parts[n]);
        }
        pmp_header_t hdr;
        pmp_error_t err;
        if (n < 1 ||
            pmp_header_decode(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), &hdr, &err) < 0 ||
            pmp_header_check(&hdr, n - 1, 0, &err) < 0) {
            fprintf(stderr, "fake: bad message: %s\n", err.text);
            return 8;
        }
        if (hdr.type == PMP_MSG_SHUTDOWN) {
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            zmq_msg_t empty;
            zmq_msg_init(&empty);
            s_send(sock, PMP_MSG_GOODBYE, 0, 0, &empty, 1);
            if (s_link) {
                pmp_link_destroy(&s_link);
                return 0;
            }
            int linger = 2000; /* let the goodbye leave before the socket closes */
            zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
            zmq_close(sock);
            zmq_ctx_term(ctx);
            return 0;
        }
        if (hdr.type == PMP_MSG_INIT || hdr.type == PMP_MSG_DEFINE || hdr.type == PMP_MSG_FORGET) {
            char payload[256] = "";
            if (n > 1) {
                size_t l = zmq_msg_size(&parts[1]);
                l = l < sizeof payload - 1 ? l : sizeof payload - 1;
                memcpy(payload, zmq_msg_data(&parts[1]), l);
                payload[l] = '\0';
            }
            if (hdr.type == PMP_MSG_INIT)
                snprintf(init, sizeof init, "%s", payload);
            size_t used = strlen(history);
            char token[300];
            if (hdr.type == PMP_MSG_INIT)
                snprintf(token, sizeof token, "I:%s", payload);
            else if (hdr.type == PMP_MSG_DEFINE)
                snprintf(token, sizeof token, "D%llu:%s", (unsigned long long)hdr.task_id, payload);
            else
                snprintf(token, sizeof token, "F%llu", (unsigned long long)hdr.task_id);
            snprintf(history + used, sizeof history - used, "%s%s", used ? "," : "", token);
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            continue;
        }
        ntasks++;
        if (crash_at && ntasks == crash_at) {
            fprintf(stderr, "fake: crashing\n");
            exit(3);
        }
        if (kill_at && ntasks == kill_at) {
            fprintf(stderr, "fake: killing myself\n");
            kill(getpid(), SIGKILL);
        }
        if (print) {
            fputs(print, stdout);
            fflush(stdout);
        }
        for (long b = 0; b < print_bytes; b++)
            putchar('y');
        fflush(stdout);
        s_interrupted = 0;
        if (delay_ms > 0) {
            struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !s_interrupted)
                ;
        }
        if (s_interrupted) {
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            zmq_msg_t m;
            zmq_msg_init_size(&m, 11);
            memcpy(zmq_msg_data(&m), "interrupted", 11);
            s_send(sock, PMP_MSG_RESULT, hdr.task_id, 0, &m, 1);
            continue;
        }
        size_t nout = n - 1;
        if (tag && nout < 63) {
            char t[400];
            int tl = snprintf(t, sizeof t, "group=%d init=%s", rank / rpg, init);
            zmq_msg_init_size(&parts[n], (size_t)tl);
            memcpy(zmq_msg_data(&parts[n]), t, (size_t)tl);
            nout++;
        }
        if (getenv_names && nout < 63) {
            char t[2048] = "", names[512];
            snprintf(names, sizeof names, "%s", getenv_names);
            for (char *save = NULL, *name = strtok_r(names, ",", &save); name;
                 name = strtok_r(NULL, ",", &save)) {
                const char *value = getenv(name);
                size_t used = strlen(t);
                snprintf(t + used, sizeof t - used, "%s%s=%s", used ? "," : "", name,
                         value ? value : "-");
            }
            zmq_msg_init_size(&parts[1 + nout], strlen(t));
            memcpy(zmq_msg_data(&parts[1 + nout]), t, strlen(t));
            nout++;
        }
        if (log && nout < 63) {
            char t[2100];
            int tl = snprintf(t, sizeof t, "log=%s", history);
            zmq_msg_init_size(&parts[1 + nout], (size_t)tl);
            memcpy(zmq_msg_data(&parts[1 + nout]), t, (size_t)tl);
            nout++;
        }
        s_send(sock, error ? PMP_MSG_ERROR : PMP_MSG_RESULT, hdr.task_id, 0, parts + 1, nout);
        zmq_msg_close(&parts[0]);
    }
}
