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
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

STDLIB = ["/usr/lib/python3.11", "/usr/lib/python3.11/lib-dynload"]
PYTHON = "/usr/bin/python3"
TIMEOUT = 40


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


def _launcher_rank():
    """Run on the ranks (pickled by value): the rank from the environment."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def case_protocol(runtime, mpiexec):
    import pickle
    import struct

    import cloudpickle
    import zmq

    n = nranks(mpiexec)
    HELLO, TASK, RESULT, ERROR, SHUTDOWN, GOODBYE = 1, 2, 4, 5, 6, 7

    def header(t, tid=0, flags=0, nframes=1, version=1):
        return b"PMPX" + struct.pack("<HHQII", version, t, tid, flags, nframes)

    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    ep = endpoint()
    sock.bind(ep)
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
        version, t, tid, flags, count = struct.unpack("<HHQII", head[4:24])
        if head[:4] != b"PMPX" or count != len(frames):
            fail("malformed reply %r" % [head] + frames)
        return ident, t, tid, flags, frames

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
        task = cloudpickle.dumps((_launcher_rank, (), {}), protocol=5)
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
        sock.close(0)
        ctx.term()


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
