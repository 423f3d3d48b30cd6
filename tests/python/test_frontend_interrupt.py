"""``_core.Executor.interrupt()``: SIGINT to every local rank of every group
that holds a task, and the number of ranks signalled.  The tasks here
install their own SIGINT handler (whatever the worker's own handling is),
so what is tested is that exactly the busy ranks receive the signal."""

import time

import pytest

from pympipool import Executor, PoolExecutor


def wait_for_sigint(seconds):
    """Sleeps until SIGINT arrives (True) or seconds pass (False)."""
    import signal
    import time

    got = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        end = time.monotonic() + seconds
        while not got and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
    return bool(got)


def interrupt_when_running(core, expected, timeout=20.0):
    """Calls interrupt() until it reaches `expected` ranks (the task must
    have been sent and have installed its handler first)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        time.sleep(0.5)  # the handler is installed by then
        n = core.interrupt()
        if n:
            return n
    return 0


def test_nothing_running_nothing_signalled():
    with Executor(cores=2) as exe:
        assert exe.submit(abs, -1).result(timeout=60) == [1, 1]  # one per rank
        assert exe._state.core.interrupt() == 0


def test_every_rank_of_the_busy_group():
    with Executor(cores=2) as exe:
        future = exe.submit(wait_for_sigint, 30)
        started = time.monotonic()
        assert interrupt_when_running(exe._state.core, 2) == 2
        assert future.result(timeout=30) == [True, True]  # both ranks got it
        assert time.monotonic() - started < 15
        assert exe._state.core.interrupt() == 0
        assert exe.submit(abs, -2).result(timeout=60) == [2, 2]  # the job lives on


def test_only_the_busy_worker():
    with PoolExecutor(max_workers=2) as exe:
        busy = exe.submit(wait_for_sigint, 30)
        assert interrupt_when_running(exe._state.core, 1) == 1
        assert busy.result(timeout=30) is True
        # a call on the other worker meanwhile was not disturbed
        assert exe.submit(wait_for_sigint, 0.5).result(timeout=30) is False
