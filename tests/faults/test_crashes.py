"""Faults that break the executor: a rank calls os._exit(1), segfaults or is
killed with SIGKILL, or mpiexec itself is killed.  The running and the
queued futures fail with ExecutorBroken (a concurrent.futures.BrokenExecutor)
whose message names what died (rank, pid, host; status or signal) and
carries the tail of the job's stderr; a later submit fails at once with the
same class; no process of the job remains."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import time

import pytest

from conftest import HOST, KINDS, groups_of, job_pids, make, timed, wait_gone

from pympipool import ExecutorBroken

BOUND = 6.0  # seconds until the running future fails


def add(a, b=0):
    return a + b


def fault(how, comm):
    """Dies as asked on the last rank of the group; the other ranks (of
    Executor(cores=2)) wait in the task, as if busy."""
    import ctypes
    import os
    import signal
    import time

    if comm.Get_rank() != comm.Get_size() - 1:
        time.sleep(30)
        return None
    if how == "os._exit(1)":
        os._exit(1)
    if how == "segfault":
        ctypes.string_at(0)
    if how == "SIGKILL":
        os.kill(os.getpid(), signal.SIGKILL)
    raise ValueError(how)


def sleep(seconds):
    import time

    time.sleep(seconds)
    return seconds


@pytest.mark.parametrize("how", ["os._exit(1)", "segfault", "SIGKILL"])
@pytest.mark.parametrize("kind", KINDS)
def test_rank_dies(kind, how):
    ex = make(kind)
    try:
        assert ex.submit(add, 1).result(timeout=60) in (1, [1, 1])
        pids = job_pids(ex, groups_of(kind))
        start = time.monotonic()
        running = ex.submit(fault, how)
        others = [ex.submit(sleep, 30)] if kind == "pool2" else []  # the other worker
        queued = others + [ex.submit(add, i) for i in range(3)]
        with pytest.raises(ExecutorBroken) as info:
            running.result(timeout=30)
        elapsed = time.monotonic() - start
        timed(f"rank dies: {how}", kind, elapsed, BOUND)
        exc = info.value
        assert isinstance(exc, concurrent.futures.BrokenExecutor)
        text = str(exc)
        print(f"MESSAGE {kind} {how}: {text[:300]!r}")
        # what died: the rank, its pid and host
        size = 2 if kind != "exec1" else 1
        match = re.match(r"rank (\d+) of (\d+) \(pid (\d+) on host (\S+), group \d+\) ", text)
        assert match, text
        assert int(match.group(2)) == size and match.group(4) == HOST
        assert int(match.group(3)) in pids[1:]
        # how: the status or the signal
        if how == "segfault":
            assert "was killed by signal 11 (Segmentation fault)" in text
            # the tail of stderr: Python's traceback of the crash
            assert "its stderr ended with:" in text
            assert "Fatal Python error: Segmentation fault" in text
            assert "in fault" in text
        elif how == "os._exit(1)":
            # mpiexec's status is the rank's exit code; MPICH's hydra, once
            # it has killed the job's other busy rank ("CLEANING UP
            # REMAINING PROCESSES"), may report that rank's SIGKILL instead.
            # Which rank died is named above either way.
            status = "1" if size == 1 else "(1|9)"
            assert re.search(rf"exited with status {status}\b", text), text
        else:
            assert re.search(r"signal 9\b|exited with status (9|137)\b", text), text
        # queued futures fail with the same class, a later submit at once
        for future in queued:
            with pytest.raises(ExecutorBroken):
                future.result(timeout=5)
        start = time.monotonic()
        with pytest.raises(ExecutorBroken):
            ex.submit(add, 1)
        timed("submit after the job died", kind, time.monotonic() - start, 0.5)
        gone = wait_gone(pids, 10)
        print(f"all {len(pids)} processes gone {gone:.3f} s after the error")
    finally:
        ex.shutdown(wait=True)


@pytest.mark.parametrize("kind", KINDS)
def test_mpiexec_killed(kind):
    ex = make(kind)
    try:
        assert ex.submit(add, 1).result(timeout=60) in (1, [1, 1])
        pids = job_pids(ex, groups_of(kind))
        running = ex.submit(sleep, 30)
        others = [ex.submit(sleep, 30)] if kind == "pool2" else []  # the other worker
        queued = others + [ex.submit(add, i) for i in range(3)]
        time.sleep(0.3)
        start = time.monotonic()
        os.kill(ex._state.core.pid, signal.SIGKILL)
        with pytest.raises(ExecutorBroken) as info:
            running.result(timeout=30)
        timed("mpiexec killed", kind, time.monotonic() - start, BOUND)
        text = str(info.value)
        assert f"pid {pids[0]}) was killed by signal 9 (Killed)" in text, text
        for future in queued:
            with pytest.raises(ExecutorBroken):
                future.result(timeout=5)
        with pytest.raises(ExecutorBroken):
            ex.submit(add, 1)
        wait_gone(pids, 10)  # no rank outlives mpiexec
    finally:
        ex.shutdown(wait=True)
