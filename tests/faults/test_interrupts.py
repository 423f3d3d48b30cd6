"""Faults of the caller: Ctrl-C (SIGINT) while blocked in result(), map()
or shutdown(); an executor dropped without shutdown(); the interpreter
exiting; the user's process killed with SIGKILL.  Each runs in a child
interpreter that prints the pids of its job ("PIDS mpiexec rank..."), so
that this process can prove every one of them is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import KINDS, process_alive, timed, wait_gone, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))

PRELUDE = """
import os, sys, time
sys.path.insert(0, {here!r})
from conftest import make, job_pids, groups_of

def sleep(seconds, mark=None):
    import time
    if mark:
        open(mark, "a").close()  # the call has begun on its rank
    time.sleep(seconds)
    return seconds

MARK = {mark!r}
kind = {kind!r}
ex = make(kind)
ex.submit(sleep, 0).result(timeout=60)
pids = job_pids(ex, groups_of(kind))
"""


def start_child(kind, body, mark=None):
    source = textwrap.dedent(PRELUDE).format(here=HERE, kind=kind, mark=mark) + textwrap.dedent(
        body
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.Popen(
        [sys.executable, "-u", "-c", source],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=HERE,
    )


def read_line(proc, prefix, timeout=60):
    """The next stdout line starting with prefix (others are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the child ended before printing {prefix!r}")
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    raise AssertionError(f"no {prefix!r} line within {timeout} s")


# Each blocks on calls of TASK seconds, the first of which creates MARK on its
# rank once it runs: the caller is in the blocking call by then (submit()
# has returned long before a rank starts the call), and SIGINT follows
# SETTLE seconds later, well before that call can end.
TASK = 2
SETTLE = 0.2
BLOCKERS = {
    "result()": f"ex.submit(sleep, {TASK}, MARK).result()",
    "map()": f"list(ex.map(sleep, [{TASK}] * 3, [MARK] * 3))",
    "shutdown()": f"ex.submit(sleep, {TASK}, MARK); ex.shutdown(wait=True)",
}


@pytest.mark.parametrize("where", list(BLOCKERS))
@pytest.mark.parametrize("kind", KINDS)
def test_ctrl_c(kind, where, tmp_path):
    mark = str(tmp_path / "started")
    proc = start_child(
        kind,
        f"""
        print("PIDS", *pids, flush=True)
        try:
            {BLOCKERS[where]}
            print("NOT INTERRUPTED", flush=True)
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
        start = time.monotonic()
        ex.shutdown(wait=True, cancel_futures=True)
        print("SHUTDOWN %.3f" % (time.monotonic() - start), flush=True)
        """,
        mark,
    )
    try:
        pids = [int(p) for p in read_line(proc, "PIDS").split()]
        assert wait_until(lambda: os.path.exists(mark), 30), "the call never began"
        time.sleep(SETTLE)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "INTERRUPTED"
        timed(f"Ctrl-C in {where}", kind, time.monotonic() - start, 1.0)
        shutdown = float(read_line(proc, "SHUTDOWN"))
        print(f"the following shutdown() took {shutdown:.3f} s")
        assert proc.wait(timeout=30) == 0
        wait_gone(pids, 10)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("how", ["dropped", "interpreter exits"])
@pytest.mark.parametrize("kind", KINDS)
def test_no_shutdown(kind, how):
    body = {
        # the executor is garbage-collected; a call is still running
        "dropped": """
            ex.submit(sleep, 0.5)
            print("PIDS", *pids, flush=True)
            del ex
            import gc; gc.collect()
            time.sleep(30)
            """,
        # the interpreter ends with the executor alive and a call running
        "interpreter exits": """
            ex.submit(sleep, 30)
            print("PIDS", *pids, flush=True)
            """,
    }[how]
    proc = start_child(kind, body)
    try:
        pids = [int(p) for p in read_line(proc, "PIDS").split()]
        start = time.monotonic()
        wait_gone(pids, 15)
        timed(f"no shutdown: {how}", kind, time.monotonic() - start, 10.0)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("busy", ["idle", "busy"])
@pytest.mark.parametrize("kind", KINDS)
def test_user_process_sigkilled(kind, busy):
    proc = start_child(
        kind,
        f"""
        if {busy == "busy"}:
            futures = [ex.submit(sleep, 60) for _ in range(3)]
            time.sleep(0.3)
        print("PIDS", *pids, flush=True)
        time.sleep(60)
        """,
    )
    try:
        pids = [int(p) for p in read_line(proc, "PIDS").split()]
        assert all(process_alive(p) for p in pids)
        start = time.monotonic()
        proc.kill()
        proc.wait()
        wait_gone(pids, 15)
        timed(f"user process SIGKILLed ({busy})", kind, time.monotonic() - start, 5.0)
    finally:
        proc.kill()
        proc.wait()
