/*
 * pmp_runtime.c - main() of pympipool-runtime, the MPI side of pympipool.
 *
 * Every rank of "mpiexec -n N pympipool-runtime ..." runs this file:
 *
 *  1. Parse the arguments before MPI_Init (bad arguments: exit 2 with one
 *     message, printed by rank 0 only); --help and --version never touch
 *     MPI_Init.
 *  2. MPI_Init_thread, split MPI_COMM_WORLD into groups of K ranks, chdir,
 *     start the embedded interpreter (pmp_python) and, on each group
 *     leader, connect the DEALER socket (pmp_leader).
 *  3. Start-up agreement: every rank contributes "I failed" to an
 *     MPI_Iallreduce(MAX); if anyone failed, each failing rank prints
 *     "pympipool-runtime: rank R of N on HOST cannot start: <cause>" and all
 *     ranks exit with status 1 after MPI_Finalize.  No rank proceeds alone,
 *     none is left waiting.
 *  4. The loop: the leader receives a message and broadcasts it to its
 *     group; every rank runs it in Python; for a TASK the statuses of all
 *     ranks are gathered and the leader sends the reply (RESULT, RESULT +
 *     PER_RANK or the ERROR of the lowest failing rank); INIT, DEFINE and
 *     FORGET get no reply.  SHUTDOWN (or a frontend that has disappeared)
 *     ends the loop on every rank.
 *     User functions that take `comm` get the group's user communicator, a
 *     duplicate of the group communicator made once at start-up, so that
 *     nothing a user sends or receives can match the runtime's own traffic
 *     on the group communicator.
 *  5. Leader: GOODBYE, close the socket, terminate the context; then every
 *     rank: Py_FinalizeEx, MPI_Finalize, exit 0.
 *
 * Crashes name themselves: right after MPI_Init every rank installs a
 * handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT that writes
 * "pympipool-runtime: rank R of N on host H (pid P) was killed by signal
 * 11 (Segmentation fault)" to stderr (one write() of a line prepared in
 * advance) and then dies of the signal; the worker enables Python's
 * faulthandler on top of it, so the task's Python traceback comes first.
 * The HELLO names every rank of the group (world rank, pid, host), so the
 * frontend can say which process died (docs/architecture.md, "Faults").
 *
 * Anything the runtime cannot continue from is a PMP_ASSERT whose fatal
 * hook calls MPI_Abort, so that a broken rank takes the job down instead of
 * leaving the other ranks waiting on it.
 */
#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "pmp_args.h"
#include "pmp_error.h"
#include "pmp_group.h"
#include "pmp_leader.h"
#include "pmp_mpiwait.h"
#include "pmp_protocol.h"
#include "pmp_python.h"
#include "pmp_rtmsg.h"

#ifndef PMP_RUNTIME_VERSION
#define PMP_RUNTIME_VERSION "unknown"
#endif

#define S_PROG "pympipool-runtime"

/* ---- small helpers ---------------------------------------------------- */

static void s_fatal_hook(void)
{
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized)
        MPI_Abort(MPI_COMM_WORLD, 1);
}

/* First line of MPI_Get_library_version, runs of blanks collapsed. */
static void s_mpi_version(char *out, size_t size)
{
    char raw[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    if (MPI_Get_library_version(raw, &len) != MPI_SUCCESS)
        snprintf(raw, sizeof raw, "unknown");
    size_t o = 0;
    int blank = 0;
    for (const char *p = raw; *p && *p != '\n' && o + 1 < size; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r') {
            blank = o > 0;
            continue;
        }
        if (blank && o + 2 < size)
            out[o++] = ' ';
        blank = 0;
        out[o++] = *p;
    }
    out[o] = '\0';
}

/* The launcher's rank of this process before MPI_Init, or -1. */
static int s_env_rank(void)
{
    static const char *const vars[] = {"PMI_RANK",     "OMPI_COMM_WORLD_RANK", "PMIX_RANK",
                                       "SLURM_PROCID", "FLUX_TASK_RANK",       NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return atoi(v);
    }
    return -1;
}

/* ---- fatal signals ---------------------------------------------------- */

/* The line a rank writes to stderr when a fatal signal kills it, made
 * before anything can crash so that the handler only copies bytes. */
static char s_fatal_line[PMP_HELLO_TEXT_MAX + 160];
static size_t s_fatal_len;
static const int s_fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

static const char *s_signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "Segmentation fault";
    case SIGBUS:
        return "Bus error";
    case SIGFPE:
        return "Floating point exception";
    case SIGILL:
        return "Illegal instruction";
    case SIGABRT:
        return "Aborted";
    default:
        return "fatal signal";
    }
}

/* Async-signal-safe: write() of a prepared line, then the default action
 * (the rank dies of the signal, so mpiexec reports it as such). */
static void s_on_fatal_signal(int sig)
{
    char line[sizeof s_fatal_line + 64];
    size_t n = s_fatal_len;
    memcpy(line, s_fatal_line, n);
    char digits[12];
    int d = 0;
    unsigned v = (unsigned)sig;
    do
        digits[d++] = (char)('0' + v % 10);
    while ((v /= 10) && d < (int)sizeof digits);
    while (d > 0)
        line[n++] = digits[--d];
    const char *name = s_signal_name(sig);
    line[n++] = ' ';
    line[n++] = '(';
    for (; *name; name++)
        line[n++] = *name;
    line[n++] = ')';
    line[n++] = '\n';
    ssize_t rc = write(2, line, n);
    (void)rc;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

/* Installed after MPI_Init (so it replaces the MPI library's own crash
 * reporters) and before the interpreter starts (so that Python's
 * faulthandler, enabled by the worker, prints the Python traceback first
 * and then hands the signal on to this handler). */
static void s_install_fatal_handler(int wrank, int wsize, const char *host)
{
    int n = snprintf(s_fatal_line, sizeof s_fatal_line, PMP_CRASH_LINE_FORMAT, S_PROG, wrank, wsize,
                     host, (long)getpid());
    s_fatal_len = n < 0 ? 0 : (size_t)n < sizeof s_fatal_line ? (size_t)n : sizeof s_fatal_line - 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof s_fatal_signals / sizeof s_fatal_signals[0]; i++)
        sigaction(s_fatal_signals[i], &sa, NULL);
}

/* Every rank's (world rank, pid, host), gathered on the group's leader
 * (rank 0 of the group) for the hello; NULL on the other ranks. */
static pmp_hello_rank_t *s_gather_ranks(pmp_group_t *group, int wrank, const char *host)
{
    pmp_hello_rank_t mine;
    memset(&mine, 0, sizeof mine);
    mine.world_rank = wrank;
    mine.pid = (int64_t)getpid();
    snprintf(mine.host, sizeof mine.host, "%s", host);
    int size = pmp_group_size(group);
    pmp_hello_rank_t *all = NULL;
    if (pmp_group_rank(group) == 0) {
        all = calloc((size_t)size, sizeof *all);
        PMP_ASSERT(all != NULL);
    }
    MPI_Request req;
    PMP_ASSERT(MPI_Igather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, 0,
                           pmp_group_comm(group), &req) == MPI_SUCCESS);
    pmp_mpi_waitall(1, &req);
    return all;
}

/* ---- the loop --------------------------------------------------------- */

typedef struct {
    pmp_group_t *group;
    MPI_Comm user_comm;    /* `comm` of user functions: a dup of the group's */
    MPI_Comm meet, parent; /* dups of MPI_COMM_WORLD for per-call communicators */
    pmp_python_t *py;
    pmp_leader_t *leader; /* NULL on non-leaders */
} s_runtime_t;

/* Leader: adds the frames of res as zmq parts (zero-copy) at parts[*n]. */
static void s_add_result_parts(s_runtime_t *rt, pmp_result_t *res, zmq_msg_t *parts, size_t *n)
{
    for (uint32_t i = 0; i < res->nframes; i++) {
        zmq_msg_t *part = &parts[(*n)++];
        if (res->size[i] == 0) {
            zmq_msg_init(part);
            continue;
        }
        void *hint = pmp_python_result_handoff(rt->py, res, i);
        PMP_ASSERT(zmq_msg_init_data(part, res->data[i], res->size[i], pmp_python_zmq_free, hint) ==
                   0);
    }
}

/* Leader: sends the leader's own result (RESULT or ERROR). */
static void s_reply_own(s_runtime_t *rt, uint64_t task_id, pmp_result_t *res)
{
    size_t n = 0;
    zmq_msg_t *parts = malloc((res->nframes + 1) * sizeof *parts);
    PMP_ASSERT(parts != NULL);
    pmp_leader_header(&parts[n++], res->ok ? PMP_MSG_RESULT : PMP_MSG_ERROR, task_id,
                      res->ok ? res->flags : 0, res->nframes);
    s_add_result_parts(rt, res, parts, &n);
    pmp_leader_send(rt->leader, parts, n);
    free(parts);
}

/* After a task: every rank shares its status; the frames that the reply
 * needs travel to the leader; the leader replies. */
/* The leader: rank r's nf result frames into out, from its outcome block
 * when they came inline, else sent by rank r. */
static void s_rank_frames(s_runtime_t *rt, const pmp_group_outcomes_t *o, int r, uint32_t nf,
                          zmq_msg_t *out)
{
    if (pmp_group_outcome_inline(o, r))
        pmp_group_outcome_frames(o, r, out);
    else
        pmp_group_recv_frames(rt->group, r, nf, out);
}

static void s_finish_task(s_runtime_t *rt, const pmp_rtmsg_t *msg, pmp_result_t *res)
{
    int rank = pmp_group_rank(rt->group);
    int size = pmp_group_size(rt->group);
    if (size == 1) {
        s_reply_own(rt, msg->task_id, res);
        pmp_python_result_clear(rt->py, res);
        return;
    }
    pmp_group_outcomes_t *out =
        pmp_group_allgather_outcome(rt->group, res->ok, res->nframes, res->data, res->size);
    int failed = -1;
    for (int r = 0; r < size && failed < 0; r++)
        if (!pmp_group_outcome_ok(out, r))
            failed = r;
    int all = (msg->flags & PMP_FLAG_ALL_RANKS) != 0;

    if (rank != 0) {
        if ((failed == rank || (failed < 0 && all)) && !pmp_group_outcome_inline(out, rank))
            pmp_group_send_frames(rt->group, 0, res->nframes, res->data, res->size);
        pmp_python_result_clear(rt->py, res);
        pmp_group_outcomes_free(&out);
        return;
    }

    if (failed == 0 || (failed < 0 && !all)) {
        s_reply_own(rt, msg->task_id, res);
    } else if (failed > 0) {
        uint32_t nf = pmp_group_outcome_nframes(out, failed);
        zmq_msg_t *parts = malloc((nf + 1) * sizeof *parts);
        PMP_ASSERT(parts != NULL);
        pmp_leader_header(&parts[0], PMP_MSG_ERROR, msg->task_id, 0, nf);
        s_rank_frames(rt, out, failed, nf, &parts[1]);
        pmp_leader_send(rt->leader, parts, nf + 1);
        free(parts);
    } else {
        /* Every rank's result: rank table, then each rank's frames. */
        uint32_t *nbuffers = malloc((size_t)size * sizeof *nbuffers);
        PMP_ASSERT(nbuffers != NULL);
        uint64_t total = 1;
        for (int r = 0; r < size; r++) {
            uint32_t nf = pmp_group_outcome_nframes(out, r);
            PMP_ASSERT(nf >= 1);
            nbuffers[r] = nf - 1;
            total += nf;
        }
        zmq_msg_t *parts = malloc((size_t)(total + 1) * sizeof *parts);
        PMP_ASSERT(parts != NULL);
        size_t n = 0;
        pmp_leader_header(&parts[n++], PMP_MSG_RESULT, msg->task_id, PMP_FLAG_PER_RANK,
                          (uint32_t)total);
        size_t tsize = pmp_rank_table_size((uint32_t)size);
        PMP_ASSERT(zmq_msg_init_size(&parts[n], tsize) == 0);
        pmp_rank_table_encode((uint32_t)size, nbuffers, zmq_msg_data(&parts[n]));
        n++;
        s_add_result_parts(rt, res, parts, &n);
        for (int r = 1; r < size; r++) {
            uint32_t nf = pmp_group_outcome_nframes(out, r);
            s_rank_frames(rt, out, r, nf, &parts[n]);
            n += nf;
        }
        if (total > PMP_MAX_FRAMES)
            pmp_log(PMP_LOG_WARNING,
                    "task %llu: the result has %llu frames, more than the "
                    "frontend accepts (%d)",
                    (unsigned long long)msg->task_id, (unsigned long long)total, PMP_MAX_FRAMES);
        pmp_leader_send(rt->leader, parts, n);
        free(parts);
        free(nbuffers);
    }
    pmp_python_result_clear(rt->py, res);
    pmp_group_outcomes_free(&out);
}

static void s_loop(s_runtime_t *rt)
{
    int leader = rt->leader != NULL;
    int size = pmp_group_size(rt->group);
    for (;;) {
        pmp_rtmsg_t *msg;
        if (leader) {
            msg = pmp_leader_recv(rt->leader, rt->py);
            if (size > 1)
                pmp_group_bcast_send(rt->group, msg);
        } else {
            msg = pmp_group_bcast_recv(rt->group);
        }
        uint32_t type = msg->type;
        if (type == PMP_MSG_INIT) {
            pmp_python_run_init(rt->py, msg);
        } else if (type == PMP_MSG_DEFINE) {
            pmp_python_run_define(rt->py, msg);
        } else if (type == PMP_MSG_FORGET) {
            pmp_python_run_forget(rt->py, msg);
        } else if (type == PMP_MSG_TASK) {
            pmp_result_t res;
            pmp_python_run_task(rt->py, msg, &res);
            s_finish_task(rt, msg, &res);
        } else if (type != PMP_MSG_SHUTDOWN) {
            pmp_log(PMP_LOG_WARNING, "ignored a %s message", pmp_msg_type_name((int)type));
        }
        pmp_rtmsg_destroy(&msg);
        if (type == PMP_MSG_SHUTDOWN)
            break;
    }
}

/* ---- main ------------------------------------------------------------- */

static void s_print_version(void)
{
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    s_mpi_version(mpi, sizeof mpi);
    printf("%s %s (MPI: %s, Python %s)\n", S_PROG, PMP_RUNTIME_VERSION, mpi, pmp_python_version());
}

/* Frees the runtime's own communicators (those made so far). */
static void s_free_comms(s_runtime_t *rt)
{
    MPI_Comm *comms[] = {&rt->user_comm, &rt->meet, &rt->parent};
    for (size_t i = 0; i < sizeof comms / sizeof comms[0]; i++)
        if (*comms[i] != MPI_COMM_NULL)
            MPI_Comm_free(comms[i]);
}

int main(int argc, char **argv)
{
    pmp_args_t args;
    pmp_error_t err = {{0}};
    if (pmp_args_parse(&args, argc, argv, &err) != 0) {
        int r = s_env_rank();
        if (r <= 0) {
            fprintf(stderr, "%s: rank %d: bad arguments: %s\n", S_PROG, r < 0 ? 0 : r, err.text);
            pmp_args_usage_short(stderr);
        }
        return 2;
    }
    if (args.help) {
        pmp_args_usage(stdout);
        pmp_args_release(&args);
        return 0;
    }
    if (args.version) {
        s_print_version();
        pmp_args_release(&args);
        return 0;
    }
    if (args.log_level)
        setenv("PYMPIPOOL_LOG_LEVEL", args.log_level, 1);

    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "%s: MPI_Init_thread failed\n", S_PROG);
        return 1;
    }
    pmp_set_fatal_hook(s_fatal_hook);
    int wrank = 0, wsize = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
    MPI_Comm_size(MPI_COMM_WORLD, &wsize);
    char host[PMP_HELLO_TEXT_MAX] = "unknown";
    gethostname(host, sizeof host - 1);
    char prefix[PMP_HELLO_TEXT_MAX + 64];
    snprintf(prefix, sizeof prefix, "%s[rank %d/%d %s]", S_PROG, wrank, wsize, host);
    pmp_log_set_prefix(prefix);
    s_install_fatal_handler(wrank, wsize, host);
    pmp_log(PMP_LOG_DEBUG, "MPI thread level %d (requested %d)", provided, MPI_THREAD_MULTIPLE);

    s_runtime_t rt = {.user_comm = MPI_COMM_NULL, .meet = MPI_COMM_NULL, .parent = MPI_COMM_NULL};
    int failed = 0;     /* this rank cannot start */
    int print_mine = 1; /* print this rank's cause (0: same on all, rank 0 prints) */
    int k = args.ranks_per_group;
    if (wsize % k != 0) {
        failed = 1;
        print_mine = wrank == 0;
        pmp_error_set(&err,
                      "%d ranks cannot be split into groups of %d (--ranks-per-group must "
                      "divide the number of ranks)",
                      wsize, k);
    } else {
        rt.group = pmp_group_new(MPI_COMM_WORLD, k);
        PMP_ASSERT(rt.group != NULL);
        PMP_ASSERT(MPI_Comm_dup(pmp_group_comm(rt.group), &rt.user_comm) == MPI_SUCCESS);
        PMP_ASSERT(MPI_Comm_dup(MPI_COMM_WORLD, &rt.meet) == MPI_SUCCESS);
        PMP_ASSERT(MPI_Comm_dup(MPI_COMM_WORLD, &rt.parent) == MPI_SUCCESS);
        MPI_Comm_set_errhandler(rt.meet, MPI_ERRORS_RETURN);
        MPI_Comm_set_errhandler(rt.parent, MPI_ERRORS_RETURN);
    }
    if (!failed && args.cwd && chdir(args.cwd) != 0) {
        failed = 1;
        pmp_error_set(&err, "cannot change to the working directory '%s': %s", args.cwd,
                      strerror(errno));
    }
    if (!failed) {
        pmp_python_config_t pcfg = {
            .python_executable = args.python_executable,
            .sys_path = args.sys_path,
            .nsys_path = args.nsys_path,
            .rank = pmp_group_rank(rt.group),
            .size = pmp_group_size(rt.group),
            .world_rank = wrank,
            .host = host,
            .comm = rt.user_comm,
            .meet = rt.meet,
            .parent = rt.parent,
            .run_time_max = args.run_time_max,
            .shm_host = args.shm_host,
        };
        rt.py = pmp_python_new(&pcfg, &err);
        if (!rt.py)
            failed = 1;
    }
    if (!failed && pmp_group_rank(rt.group) == 0) {
        rt.leader = pmp_leader_new(args.endpoint, args.frontend_pid, args.frontend_host,
                                   args.credentials, &err);
        if (!rt.leader)
            failed = 1;
    }

    int any_failed = 0;
    MPI_Request req;
    PMP_ASSERT(MPI_Iallreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &req) ==
               MPI_SUCCESS);
    pmp_mpi_waitall(1, &req);
    if (any_failed) {
        if (failed && print_mine)
            fprintf(stderr, "%s: rank %d of %d on %s cannot start: %s\n", S_PROG, wrank, wsize,
                    host, err.text);
        fflush(stderr);
        pmp_leader_destroy(&rt.leader); /* no HELLO was sent, so no GOODBYE */
        pmp_python_destroy(&rt.py);
        s_free_comms(&rt);
        pmp_group_destroy(&rt.group);
        pmp_args_release(&args);
        MPI_Finalize();
        exit(1);
    }

    int bells = pmp_mpi_doorbell_open(pmp_group_comm(rt.group));
    pmp_hello_rank_t *ranks = s_gather_ranks(rt.group, wrank, host);
    if (rt.leader) {
        pmp_hello_t hello = {
            .group = pmp_group_index(rt.group),
            .ngroups = pmp_group_count(rt.group),
            .group_size = pmp_group_size(rt.group),
            .world_size = wsize,
            .world_rank = wrank,
            .pid = (int64_t)getpid(),
        };
        snprintf(hello.host, sizeof hello.host, "%s", host);
        snprintf(hello.python_version, sizeof hello.python_version, "%s", pmp_python_version());
        s_mpi_version(hello.mpi_version, sizeof hello.mpi_version);
        snprintf(hello.runtime_version, sizeof hello.runtime_version, "%s", PMP_RUNTIME_VERSION);
        hello.batch = PMP_BATCH_MAX; /* over ZeroMQ, tasks may come in batches */
        hello.pack = PMP_BATCH_MAX;  /* and small ones in packs (pmp_pack.h) */
        if (pmp_leader_send_hello(rt.leader, &hello, ranks, (size_t)pmp_group_size(rt.group)) != 0)
            pmp_log(PMP_LOG_ERROR, "cannot send hello: %s", strerror(errno));
    }
    free(ranks);
    pmp_log(PMP_LOG_INFO, "started: group %d of %d, rank %d of %d in the group%s",
            pmp_group_index(rt.group), pmp_group_count(rt.group), pmp_group_rank(rt.group),
            pmp_group_size(rt.group), bells ? ", doorbells to the ranks on this host" : "");

    s_loop(&rt);

    pmp_log(PMP_LOG_INFO, "shutting down");
    pmp_mpi_doorbell_close();
    pmp_leader_destroy(&rt.leader);
    pmp_python_destroy(&rt.py); /* no Python object uses user_comm after this */
    s_free_comms(&rt);
    pmp_group_destroy(&rt.group);
    pmp_args_release(&args);
    MPI_Finalize();
    return 0;
}
