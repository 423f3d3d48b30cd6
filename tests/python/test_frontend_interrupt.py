"""``_core.Executor.interrupt()``: SIGINT to every local rank of every group
that holds a task, and the number of ranks signalled.  The tasks here
install their own SIGINT handler (whatever the worker's own handling is),
so what is tested is that exactly the busy ranks receive the signal."""

import os
import time

from pympipool import Executor, PoolExecutor


def wait_for_sigint(seconds, ready=None):
    """Sleeps until SIGINT arrives (True) or seconds pass (False).  With
    ready (a directory), a file named after the process says that the
    handler is installed."""
    import os
    import signal
    import time

    got = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        if ready is not None:
            open(os.path.join(ready, str(os.getpid())), "w").close()
        end = time.monotonic() + seconds
        while not got and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
    return bool(got)


def interrupt_when_running(core, expected, ready, timeout=60.0):
    """Calls interrupt() once `expected` ranks said that their handler is
    installed (files in the directory ready); returns how many ranks it
    signalled, or 0 when they did not get ready in time."""
    end = time.monotonic() + timeout
    while len(os.listdir(ready)) < expected:
        if time.monotonic() > end:
            return 0
        time.sleep(0.05)
    return core.interrupt()


def test_nothing_running_nothing_signalled():
    with Executor(cores=2) as exe:
        assert exe.submit(abs, -1).result(timeout=60) == [1, 1]  # one per rank
        assert exe._state.core.interrupt() == 0


def test_every_rank_of_the_busy_group(tmp_path):
    with Executor(cores=2) as exe:
        future = exe.submit(wait_for_sigint, 30, str(tmp_path))
        assert interrupt_when_running(exe._state.core, 2, str(tmp_path)) == 2
        started = time.monotonic()
        assert future.result(timeout=30) == [True, True]  # both ranks got it
        assert time.monotonic() - started < 15
        assert exe._state.core.interrupt() == 0
        assert exe.submit(abs, -2).result(timeout=60) == [2, 2]  # the job lives on


def test_only_the_busy_worker(tmp_path):
    with PoolExecutor(max_workers=2) as exe:
        busy = exe.submit(wait_for_sigint, 30, str(tmp_path))
        assert interrupt_when_running(exe._state.core, 1, str(tmp_path)) == 1
        assert busy.result(timeout=30) is True
        # a call on the other worker meanwhile was not disturbed
        assert exe.submit(wait_for_sigint, 0.5).result(timeout=30) is False
