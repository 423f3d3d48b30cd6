"""Checks pympipool-runtime from the outside: exit status, stderr, CPU use.

Run by CTest (runtime/CMakeLists.txt) as

    /usr/bin/python3 check_runtime.py CASE RUNTIME [MPIEXEC ARGS...]

where MPIEXEC ARGS is the mpiexec command line for the wanted number of
ranks (from pmp_mpiexec_command).  Every case asserts real behaviour and
fails with a message; every child process is waited for or killed, so
nothing is left behind.

Cases:
  help, version, badargs       the runtime alone, without mpiexec
  nocloudpickle                sys.path without cloudpickle: every rank
                               reports it and the job exits non-zero
  badpython, badcwd            a missing interpreter / working directory
  badsplit                     3 ranks in groups of 2
  idle                         an idle job uses < 5% of a core per rank,
                               and exits by itself once the frontend
                               process is gone
  protocol                     a pyzmq stand-in for the frontend: HELLO,
                               malformed messages dropped with a warning,
                               per-rank results, the lowest failing rank's
                               error, SHUTDOWN -> GOODBYE and exit 0
  define                       DEFINE / FORGET, FN_KEY and CHUNK tasks, a
                               kept function that cannot be unpickled, the
                               first failing call of a chunk, unknown keys
  groups                       groups of 2 ranks (MPISpawnPool's layout):
                               one HELLO per group, the leader's result,
                               comm is the group
  mpi4py                       `from mpi4py import MPI` in a task, as the
                               build decided (PMP_EXPECT_MPI4PY), and a clean
                               exit afterwards
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

# tests/support, on PYTHONPATH (runtime/CMakeLists.txt)
from pmp_link_peer import Server
from pmp_wire import (
    DEFINE,
    ERROR,
    FORGET,
    GOODBYE,
    HELLO,
    RESULT,
    SHUTDOWN,
    TASK,
    header,
    parse_header,
)

STDLIB = ["/usr/lib/python3.11", "/usr/lib/python3.11/lib-dynload"]
PYTHON = "/usr/bin/python3"
TIMEOUT = 40


def fn_pickle(fn):
    """The function slot of a TASK: the function's own pickle (docs/protocol.md)."""
    import cloudpickle

    return cloudpickle.dumps(fn, protocol=5)


def fail(message, proc=None):
    print("FAIL:", message, file=sys.stderr)
    if proc is not None:
        print("exit status:", proc.returncode, file=sys.stderr)
        print("--- stdout ---\n" + proc.stdout, file=sys.stderr)
        print("--- stderr ---\n" + proc.stderr, file=sys.stderr)
    sys.exit(1)


def run(cmd, timeout=TIMEOUT):
    """Runs cmd in its own process group; kills the group on timeout."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        proc.stdout, proc.stderr = out, err
        fail("%s did not exit within %d s" % (cmd, timeout), proc)
    proc.stdout, proc.stderr = out, err
    return proc


_TMPDIR = tempfile.TemporaryDirectory(prefix="pmp-check-")


def endpoint():
    # Nobody binds it: the runtime connects lazily, which is all start-up needs.
    return "ipc://%s/frontend" % _TMPDIR.name


def runtime_args(runtime, k=1, python=PYTHON, sys_path=None, cwd=None, pid=None):
    args = [
        runtime,
        "--endpoint",
        endpoint(),
        "--ranks-per-group",
        str(k),
        "--frontend-pid",
        str(pid or os.getpid()),
        "--python-executable",
        python,
        "--cwd",
        cwd or os.getcwd(),
    ]
    for p in sys_path if sys_path is not None else [p for p in sys.path if p]:
        args += ["--sys-path", p]
    return args


def nranks(mpiexec):
    for flag in ("-n", "-np"):
        if flag in mpiexec:
            return int(mpiexec[mpiexec.index(flag) + 1])
    fail("cannot find the rank count in %s" % mpiexec)


def expect_startup_failure(proc, n, *needles, every_rank=True):
    if proc.returncode == 0:
        fail("the runtime exited with status 0", proc)
    host = socket.gethostname()
    if every_rank:
        for r in range(n):
            line = "pympipool-runtime: rank %d of %d on %s cannot start" % (r, n, host)
            if line not in proc.stderr:
                fail("stderr does not contain %r" % line, proc)
    elif "cannot start" not in proc.stderr:
        fail("stderr does not say 'cannot start'", proc)
    for needle in needles:
        if needle not in proc.stderr:
            fail("stderr does not mention %r" % needle, proc)


# ---- cases -------------------------------------------------------------------


def case_help(runtime, mpiexec):
    proc = run([runtime, "--help"])
    if proc.returncode != 0:
        fail("--help did not exit with 0", proc)
    for needle in ("usage: pympipool-runtime", "--endpoint", "--ranks-per-group", "--sys-path"):
        if needle not in proc.stdout:
            fail("--help does not mention %r" % needle, proc)


def case_version(runtime, mpiexec):
    proc = run([runtime, "--version"])
    if proc.returncode != 0:
        fail("--version did not exit with 0", proc)
    pattern = r"^pympipool-runtime \d+\.\d+\.\d+\S* \(MPI: .+, Python \d+\.\d+\.\d+\S*\)$"
    if not re.match(pattern, proc.stdout.strip()):
        fail("--version output does not match %r" % pattern, proc)
    want = "Python %d.%d.%d" % sys.version_info[:3]
    if want not in proc.stdout:
        fail("--version does not report %s" % want, proc)


def case_badargs(runtime, mpiexec):
    good = ["--endpoint", "ipc:///tmp/x", "--python-executable", PYTHON]
    cases = [
        ([], "missing --endpoint"),
        (["--endpoint", "ipc:///tmp/x"], "missing --python-executable"),
        (good + ["--ranks-per-group", "0"], "--ranks-per-group must be a positive integer"),
        (good + ["--ranks-per-group", "2x"], "--ranks-per-group must be a positive integer"),
        (good + ["--frontend-pid", "-5"], "--frontend-pid must be a positive process id"),
        (good + ["--bogus"], "unknown argument '--bogus'"),
        (good + ["--sys-path"], "option --sys-path needs a value"),
    ]
    for args, needle in cases:
        proc = run([runtime] + args)
        if proc.returncode != 2:
            fail("%s: expected exit status 2" % args, proc)
        if needle not in proc.stderr:
            fail("%s: stderr does not contain %r" % (args, needle), proc)
        if "rank 0" not in proc.stderr or "usage:" not in proc.stderr:
            fail("%s: stderr does not name the rank and show the usage" % args, proc)


def case_nocloudpickle(runtime, mpiexec):
    n = nranks(mpiexec)
    start = time.monotonic()
    proc = run(mpiexec + runtime_args(runtime, k=n, sys_path=STDLIB))
    expect_startup_failure(proc, n, "No module named 'cloudpickle'")
    print("exited with %d after %.1f s" % (proc.returncode, time.monotonic() - start))


def case_badpython(runtime, mpiexec):
    n = nranks(mpiexec)
    proc = run(mpiexec + runtime_args(runtime, python="/nonexistent/bin/python3"))
    expect_startup_failure(proc, n, "/nonexistent/bin/python3", "does not exist")


def case_badcwd(runtime, mpiexec):
    n = nranks(mpiexec)
    proc = run(mpiexec + runtime_args(runtime, cwd="/nonexistent/dir"))
    expect_startup_failure(proc, n, "/nonexistent/dir", "working directory")


def case_badsplit(runtime, mpiexec):
    n = nranks(mpiexec)
    proc = run(mpiexec + runtime_args(runtime, k=2))
    expect_startup_failure(
        proc, n, "%d ranks cannot be split into groups of 2" % n, every_rank=False
    )


def descendants(pid):
    """pids of every descendant of pid (from /proc/*/stat)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runtime_pids(root):
    pids = []
    for p in descendants(root):
        try:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                argv0 = f.read().split(b"\0")[0]
        except OSError:
            continue
        if argv0.endswith(b"pympipool-runtime"):
            pids.append(p)
    return pids


def case_idle(runtime, mpiexec):
    n = nranks(mpiexec)
    window = float(os.environ.get("PMP_IDLE_SECONDS", "5"))
    # A stand-in for the frontend process: when it is gone the runtime must
    # leave by itself (checked once a second by the leaders).
    frontend = subprocess.Popen(["sleep", "600"])
    # Something must listen where the leaders connect (nobody needs to
    # answer an idle runtime, or even accept it).
    listener = Server(endpoint()[len("ipc://") :])
    proc = subprocess.Popen(
        mpiexec + runtime_args(runtime, k=n, pid=frontend.pid),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        pids = []
        while time.monotonic() < deadline and len(pids) < n:
            time.sleep(0.2)
            pids = runtime_pids(proc.pid)
        if len(pids) != n:
            fail("found %d runtime processes, expected %d" % (len(pids), n))
        time.sleep(2)  # let start-up (imports) finish
        if proc.poll() is not None:
            out, err = proc.communicate()
            proc.stdout, proc.stderr = out, err
            fail("the runtime exited while idle", proc)
        before = {p: cpu_seconds(p) for p in pids}
        t0 = time.monotonic()
        time.sleep(window)
        after = {p: cpu_seconds(p) for p in pids}
        elapsed = time.monotonic() - t0
        shares = {p: (after[p] - before[p]) / elapsed for p in pids}
        for p, share in sorted(shares.items()):
            print("runtime pid %d: %.2f%% of a core while idle" % (p, 100 * share))
        worst = max(shares.values())
        if worst >= 0.05:
            fail("an idle rank used %.1f%% of a core (limit 5%%)" % (100 * worst))
        # The frontend goes away: the job must end on its own, cleanly.
        frontend.kill()
        frontend.wait()
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            fail("the runtime did not exit within 15 s after the frontend died")
        proc.stdout, proc.stderr = out, err
        if proc.returncode != 0:
            fail("the runtime exited with %d after the frontend died" % proc.returncode, proc)
        if "frontend" not in err or "gone" not in err:
            fail("the runtime did not log that the frontend is gone", proc)
    finally:
        if frontend.poll() is None:
            frontend.kill()
            frontend.wait()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        listener.close()


def _launcher_rank():
    """Run on the ranks (pickled by value): the rank from the environment."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def case_socketgone(runtime, mpiexec):
    """The frontend process lives on but closes the connection and removes
    its socket (the executor was destroyed while a queue-adapter job was
    starting): the job must end on its own, cleanly."""
    n = nranks(mpiexec)
    server = Server(endpoint()[len("ipc://") :])
    proc = subprocess.Popen(
        mpiexec + runtime_args(runtime, k=n),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        if not server.poll(30000):  # its hello
            fail("no hello from the runtime within 30 s")
        time.sleep(1)
        if proc.poll() is not None:
            out, err = proc.communicate()
            proc.stdout, proc.stderr = out, err
            fail("the runtime exited while its frontend's socket was there", proc)
        server.close()
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            fail("the runtime did not exit within 15 s after the socket was closed")
        proc.stdout, proc.stderr = out, err
        if proc.returncode != 0:
            fail("the runtime exited with %d after the socket was closed" % proc.returncode, proc)
        if "frontend closed the connection" not in err:
            fail("the runtime did not log that the frontend is gone", proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        server.close()


def case_protocol(runtime, mpiexec):
    import pickle
    import struct

    import cloudpickle

    n = nranks(mpiexec)

    ep = endpoint()
    sock = Server(ep[len("ipc://") :])
    args = runtime_args(runtime, k=n)
    args[args.index("--endpoint") + 1] = ep
    proc = subprocess.Popen(
        mpiexec + args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )

    def recv():
        if not sock.poll(30000):
            fail("no message from the runtime within 30 s")
        ident, head, *frames = sock.recv_multipart()
        return (ident,) + s_parse_reply(head, frames)

    try:
        ident, t, _, _, frames = recv()
        if t != HELLO:
            fail("first message is of type %d, not HELLO" % t)
        hello = dict(line.split("=", 1) for line in frames[0].decode().splitlines())
        if int(hello["group_size"]) != n or hello["host"] != socket.gethostname():
            fail("unexpected hello %r" % hello)
        # Malformed messages: each is dropped, the runtime keeps going.
        sock.send_multipart([ident, b"junk", b"x"])
        sock.send_multipart([ident, header(TASK, 1, version=9), b"x"])
        sock.send_multipart([ident, header(TASK, 1, nframes=5), b"x"])
        sock.send_multipart([ident, header(RESULT, 1), b"x"])
        # A task on every rank, every result back in rank order.
        task = cloudpickle.dumps((fn_pickle(_launcher_rank), (), {}), protocol=5)
        sock.send_multipart([ident, header(TASK, 2, flags=1), task])
        _, t, tid, flags, frames = recv()
        if (t, tid) != (RESULT, 2):
            fail("expected the RESULT of task 2, got type %d task %d" % (t, tid))
        if n > 1:
            if not flags & 1 or struct.unpack("<I", frames[0][:4])[0] != n:
                fail("expected a per-rank result of %d ranks" % n)
            values = [pickle.loads(f) for f in frames[1:]]
        else:
            values = [pickle.loads(frames[0])]
        if values != list(range(n)):
            fail("per-rank results %r, expected %r" % (values, list(range(n))))
        # A payload that is not a pickle comes back as an ERROR.
        sock.send_multipart([ident, header(TASK, 3, flags=1), b"not a pickle"])
        _, t, tid, _, frames = recv()
        error = pickle.loads(frames[0])
        if (t, tid) != (ERROR, 3) or error[0] != "pympipool-error" or error[6] != 0:
            fail("expected the ERROR of task 3 from rank 0, got %r" % (error,))
        sock.send_multipart([ident, header(SHUTDOWN), b""])
        _, t, _, _, _ = recv()
        if t != GOODBYE:
            fail("expected GOODBYE after SHUTDOWN, got type %d" % t)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            fail("the runtime did not exit after SHUTDOWN")
        proc.stdout, proc.stderr = out, err
        if proc.returncode != 0:
            fail("the runtime exited with %d after SHUTDOWN" % proc.returncode, proc)
        for needle in (
            "(truncated)",
            "protocol version 9",
            "announces 5 frames",
            "unexpected result message",
        ):
            if needle not in err:
                fail("stderr does not report the malformed message (%r)" % needle, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        sock.close()


# ---- a stand-in for the frontend ---------------------------------------------

ALL_RANKS, FN_KEY, CHUNK = 0x1, 0x2, 0x4


def s_parse_reply(head, frames):
    """(type, task id, flags, frames) of a message from the runtime; fails
    the check when its header is malformed or counts other frames."""
    try:
        _, t, tid, flags, count = parse_header(head)
    except ValueError:
        count = -1
    if count != len(frames):
        fail("malformed reply %r" % ([head] + frames))
    return t, tid, flags, frames


class Peer:
    """The socket the runtime connects to (a local link's listening end,
    tests/support/pmp_link_peer.py), and the launched job."""

    def __init__(self, runtime, mpiexec, k):
        ep = endpoint()
        self.sock = Server(ep[len("ipc://") :])
        args = runtime_args(runtime, k=k)
        args[args.index("--endpoint") + 1] = ep
        self.proc = subprocess.Popen(
            mpiexec + args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    header = staticmethod(header)

    def send(self, ident, t, tid=0, flags=0, frames=(b"",)):
        head = self.header(t, tid, flags, len(frames))
        self.sock.send_multipart([ident, head] + list(frames))

    def recv(self):
        if not self.sock.poll(60000):
            fail("no message from the runtime within 60 s")
        ident, head, *frames = self.sock.recv_multipart()
        return (ident,) + s_parse_reply(head, frames)

    def hellos(self, n):
        """{group: (identity, hello dict)} of n groups."""
        groups = {}
        for _ in range(n):
            ident, t, _, _, frames = self.recv()
            if t != HELLO:
                fail("expected HELLO, got type %d" % t)
            hello = dict(line.split("=", 1) for line in frames[0].decode().splitlines())
            groups[int(hello["group"])] = (ident, hello)
        return groups

    def call(self, ident, tid, payload, flags=0):
        """Sends a TASK and returns ("result" | "error", value)."""
        import pickle
        import struct

        self.send(ident, TASK, tid, flags, [payload])
        _, t, got, rflags, frames = self.recv()
        if got != tid:
            fail("reply for task %d, expected %d" % (got, tid))
        if t == ERROR:
            return "error", pickle.loads(frames[0])
        if t != RESULT:
            fail("reply of type %d for task %d" % (t, tid))
        if rflags & 1:
            n = struct.unpack("<I", frames[0][:4])[0]
            return "result", [pickle.loads(f) for f in frames[1 : 1 + n]]
        return "result", pickle.loads(frames[0])

    def finish(self, idents):
        """SHUTDOWN to every group; GOODBYEs; the job exits 0."""
        for ident in idents:
            self.send(ident, SHUTDOWN)
        for _ in idents:
            _, t, _, _, _ = self.recv()
            if t != GOODBYE:
                fail("expected GOODBYE after SHUTDOWN, got type %d" % t)
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            fail("the runtime did not exit after SHUTDOWN")
        self.proc.stdout, self.proc.stderr = out, err
        if self.proc.returncode != 0:
            status = self.proc.returncode
            fail("the runtime exited with %d after SHUTDOWN" % status, self.proc)
        return err

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()
        self.sock.close()


def expect(what, got, want):
    if got != want:
        fail("%s: got %r, expected %r" % (what, got, want))


def expect_error(what, got, type_name, *needles):
    kind, value = got
    if kind != "error" or value[0] != "pympipool-error" or value[3] != type_name:
        fail("%s: expected an ERROR of %s, got %r" % (what, type_name, got))
    for needle in needles:
        if needle not in value[4] and needle not in value[5]:
            fail("%s: the error does not mention %r: %r" % (what, needle, value))


def _scaled(x, factor=2):
    return x * factor, _launcher_rank()


def _fail_from_two(x):
    if x >= 2:
        raise ValueError("bad %d" % x)
    return x


def _group_info(comm):
    return _launcher_rank(), comm.Get_size(), comm.Get_rank(), comm.allreduce(1)


def case_define(runtime, mpiexec):
    """DEFINE / FORGET / FN_KEY / CHUNK on one group of all ranks."""
    import types

    import cloudpickle

    n = nranks(mpiexec)
    peer = Peer(runtime, mpiexec, k=n)
    try:
        ident, _ = peer.hellos(1)[0]
        dumps = lambda obj: cloudpickle.dumps(obj, protocol=5)
        peer.send(ident, DEFINE, 5, 0, [dumps(_scaled)])
        got = peer.call(ident, 1, dumps((5, (3,), {})), FN_KEY)
        expect("keyed call", got, ("result", (6, 0)))
        expect(
            "keyed call on every rank",
            peer.call(ident, 2, dumps((5, (3,), {"factor": 3})), FN_KEY | ALL_RANKS),
            ("result", [(9, r) for r in range(n)] if n > 1 else (9, 0)),
        )
        calls = [((1,), {}), ((2,), {"factor": 10})]
        expect(
            "chunk by value",
            peer.call(ident, 3, dumps((fn_pickle(_scaled), calls)), CHUNK),
            ("result", [(2, 0), (20, 0)]),
        )
        expect(
            "keyed chunk",
            peer.call(ident, 4, dumps((5, calls)), CHUNK | FN_KEY),
            ("result", [(2, 0), (20, 0)]),
        )
        got = peer.call(ident, 5, dumps((5, [])), CHUNK | FN_KEY)
        expect("empty chunk", got, ("result", []))
        calls = [((1,), {}), ((2,), {}), ((3,), {})]
        expect_error(
            "first failing call of a chunk",
            peer.call(ident, 6, dumps((fn_pickle(_fail_from_two), calls)), CHUNK),
            "ValueError",
            "bad 2",
        )
        expect_error(
            "chunk with ALL_RANKS",
            peer.call(ident, 7, dumps((fn_pickle(_scaled), calls)), CHUNK | ALL_RANKS),
            "ValueError",
            "not supported",
        )
        # A function whose module the ranks do not have: cloudpickle pickles
        # it by reference to an importable module that exists only here.
        missing = types.ModuleType("pmp_missing_module")
        exec("def f(x):\n    return x\n", missing.__dict__)
        sys.modules["pmp_missing_module"] = missing
        peer.send(ident, DEFINE, 8, 0, [dumps(missing.f)])
        for tid, flags, payload in (
            (9, FN_KEY, dumps((8, (1,), {}))),
            (10, FN_KEY | CHUNK, dumps((8, [((1,), {})]))),
            (11, FN_KEY | ALL_RANKS, dumps((8, (1,), {}))),
        ):
            expect_error(
                "a kept unpicklable function (task %d)" % tid,
                peer.call(ident, tid, payload, flags),
                "ModuleNotFoundError",
                "pmp_missing_module",
            )
        # FORGET with an empty frame and with no frame at all
        peer.send(ident, FORGET, 5, 0, [b""])
        peer.sock.send_multipart([ident, peer.header(FORGET, 8, 0, 0)])
        for tid, key in ((12, 5), (13, 8)):
            expect_error(
                "a forgotten key",
                peer.call(ident, tid, dumps((key, (1,), {})), FN_KEY),
                "KeyError",
                "key %d" % key,
            )
        got = peer.call(ident, 14, dumps((99, (), {})), FN_KEY)
        expect_error("a key never defined", got, "KeyError", "key 99")
        # Defined again after FORGET; a DEFINE of a kept key replaces it.
        peer.send(ident, DEFINE, 5, 0, [dumps(_fail_from_two)])
        peer.send(ident, DEFINE, 5, 0, [dumps(_scaled)])
        got = peer.call(ident, 15, dumps((5, (4,), {})), FN_KEY)
        expect("redefined", got, ("result", (8, 0)))
        # The communicator is filled in for keyed functions and chunks too.
        peer.send(ident, DEFINE, 6, 0, [dumps(_group_info)])
        expect(
            "keyed comm",
            peer.call(ident, 16, dumps((6, [((), {}), ((), {})])), FN_KEY | CHUNK),
            ("result", [(0, n, 0, n)] * 2),
        )
        peer.finish([ident])
    finally:
        peer.close()


def case_groups(runtime, mpiexec):
    """MPISpawnPool's layout: groups of 2 ranks, only the leader's result."""
    import cloudpickle

    n = nranks(mpiexec)
    k = 2
    peer = Peer(runtime, mpiexec, k=k)
    try:
        groups = peer.hellos(n // k)
        expect("groups", sorted(groups), list(range(n // k)))
        dumps = lambda obj: cloudpickle.dumps(obj, protocol=5)
        for g, (ident, hello) in groups.items():
            expect("group size", int(hello["group_size"]), k)
            expect("ngroups", int(hello["ngroups"]), n // k)
            expect("leader", int(hello["world_rank"]), g * k)
            peer.send(ident, DEFINE, 3, 0, [dumps(_group_info)])
        tid = 0
        for g, (ident, _) in groups.items():
            tid += 1
            expect(
                "leader's result of group %d" % g,
                peer.call(ident, tid, dumps((fn_pickle(_group_info), (), {}))),
                ("result", (g * k, k, 0, k)),
            )
            tid += 1
            expect(
                "every rank of group %d" % g,
                peer.call(ident, tid, dumps((3, (), {})), FN_KEY | ALL_RANKS),
                ("result", [(g * k + r, k, r, k) for r in range(k)]),
            )
        # both groups busy at once: tasks in flight on both, answers per group
        for g, (ident, _) in groups.items():
            peer.send(ident, TASK, 100 + g, FN_KEY, [dumps((3, (), {}))])
        seen = {}
        for _ in groups:
            ident, t, tid, _, frames = peer.recv()
            import pickle

            seen[tid] = pickle.loads(frames[0])
        expect("concurrent", seen, {100 + g: (g * k, k, 0, k) for g in groups})
        peer.finish([ident for ident, _ in groups.values()])
    finally:
        peer.close()


def _try_mpi4py(comm):
    try:
        import mpi4py
        from mpi4py import MPI
    except ImportError as exc:
        return "ImportError", str(exc), type(comm).__module__
    return (
        "imported",
        MPI.COMM_WORLD.Get_size(),
        MPI.Is_initialized(),
        MPI.Is_finalized(),
        type(comm).__module__,
        comm.allreduce(1),
        mpi4py.rc.initialize,
        mpi4py.rc.finalize,
    )


def case_mpi4py(runtime, mpiexec):
    """What `from mpi4py import MPI` does in a task, by the build's finding
    (PMP_EXPECT_MPI4PY), and that the job still shuts down cleanly."""
    import cloudpickle

    mode = os.environ.get("PMP_EXPECT_MPI4PY", "")
    if mode not in ("matching", "mismatched", "absent"):
        fail("PMP_EXPECT_MPI4PY must be matching, mismatched or absent, not %r" % mode)
    n = nranks(mpiexec)
    peer = Peer(runtime, mpiexec, k=n)
    try:
        ident, _ = peer.hellos(1)[0]
        task = cloudpickle.dumps((fn_pickle(_try_mpi4py), (), {}), protocol=5)
        kind, got = peer.call(ident, 1, task, ALL_RANKS)
        expect("task", kind, "result")
        got = got if n > 1 else [got]
        usable = ("imported", n, True, False, "mpi4py.MPI", n, False, False)
        for rank, value in enumerate(got):
            what = "rank %d" % rank
            if mode == "matching":
                expect(what, value, usable)
                continue
            if value[0] != "ImportError" or value[2] != "_pympipool_runtime":
                fail("%s: expected ImportError and our Comm, got %r" % (what, value))
            if mode == "mismatched":
                for needle in ("MPICH", "Open MPI", "built for", "`comm` argument"):
                    if needle not in value[1]:
                        fail("%s: the ImportError does not mention %r" % (what, needle))
        # MPI still works after the import, and the job ends with status 0
        kind, got = peer.call(ident, 2, cloudpickle.dumps((fn_pickle(_group_info), (), {})), 0)
        expect("after import", (kind, got[1:]), ("result", (n, 0, n)))
        err = peer.finish([ident])
        for bad in ("MPI_Finalize", "Traceback", "error"):
            if bad in err:
                fail("stderr mentions %r after a clean shutdown" % bad, peer.proc)
    finally:
        peer.close()


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    case, runtime, mpiexec = sys.argv[1], sys.argv[2], sys.argv[3:]
    func = globals().get("case_" + case)
    if func is None:
        fail("unknown case %r" % case)
    func(runtime, mpiexec)
    print("ok:", case)


if __name__ == "__main__":
    main()
