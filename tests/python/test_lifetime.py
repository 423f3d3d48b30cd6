"""Lifetime: nothing at import, no process outlives a collected executor or
the interpreter, the dispatcher does not keep the executor alive."""

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest

from pympipool import Executor

from conftest import our_processes, process_alive, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


def add(a, b=0):
    return a + b


def sleep_and_return(seconds, value):
    time.sleep(seconds)
    return value


def dispatchers():
    return [t for t in threading.enumerate() if t.name == "pympipool-dispatcher"]


def run_script(source, timeout=60):
    """Runs source in a fresh interpreter; returns (process, its leftovers)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=HERE,
    )
    out, err = proc.communicate(timeout=timeout)
    return proc, out, err


def test_import_starts_no_thread_process_or_socket():
    proc, out, err = run_script(
        """
        import os, threading
        before = set(os.listdir("/proc/self/fd"))
        import pympipool
        after = set(os.listdir("/proc/self/fd"))

        def parent(pid):  # None for a process that exited meanwhile
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().rsplit(")", 1)[1].split()[1]
            except OSError:
                return None

        children = [p for p in os.listdir("/proc") if p.isdigit() and parent(p) == str(os.getpid())]
        print(threading.active_count(), len(after - before), children)
        """
    )
    assert proc.returncode == 0, err
    assert out.split() == ["1", "0", "[]"]


def test_dispatcher_does_not_keep_the_executor_alive():
    exe = Executor()
    assert exe.submit(add, 1).result(timeout=60) == 1
    pid = exe._state.core.pid
    ref = weakref.ref(exe)
    del exe
    gc.collect()
    assert ref() is None
    assert wait_until(lambda: not process_alive(pid), 20), "the job outlived it"
    assert wait_until(lambda: not dispatchers(), 20)


def test_collected_executor_still_completes_its_futures():
    future = Executor().submit(sleep_and_return, 0.5, "kept")
    gc.collect()
    assert future.result(timeout=60) == "kept"
    assert wait_until(lambda: not dispatchers(), 20)


def test_garbage_collection_leaves_no_process_even_with_several_ranks():
    exe = Executor(cores=3, oversubscribe=True)
    assert exe.submit(add, 2).result(timeout=60) == [2, 2, 2]
    assert our_processes() != {}
    del exe
    gc.collect()
    assert wait_until(lambda: our_processes() == {}, 20), our_processes()


def test_interpreter_exit_without_shutdown_leaves_no_process():
    proc, out, err = run_script(
        """
        import os, time
        from pympipool import Executor
        exe = Executor(cores=2)
        print(exe.submit(os.getpid).result(timeout=60)[0] > 0, flush=True)
        print(exe._state.core.pid, flush=True)
        # A task still running when the interpreter exits.
        exe.submit(time.sleep, 600)
        """,
        timeout=60,
    )
    assert proc.returncode == 0, err
    lines = out.split()
    assert lines[0] == "True"
    job = int(lines[1])
    assert wait_until(lambda: not process_alive(job), 10)
    left = our_processes(proc.pid)
    assert wait_until(lambda: our_processes(proc.pid) == {}, 10), left


def test_interpreter_exit_with_collected_executors_and_pending_work():
    started = time.monotonic()
    proc, out, err = run_script(
        """
        from pympipool import Executor
        executors = [Executor() for _ in range(2)]
        futures = [e.submit(sum, [1, 2]) for e in executors]
        print([f.result(timeout=60) for f in futures], flush=True)
        del executors
        """,
        timeout=60,
    )
    assert proc.returncode == 0, err
    assert out.strip() == "[3, 3]"
    assert time.monotonic() - started < 30
    assert our_processes(proc.pid) == {}


def test_shutdown_wait_false_then_exit_leaves_no_process():
    proc, out, err = run_script(
        """
        from pympipool import Executor
        exe = Executor()
        f = exe.submit(sum, [4, 5])
        exe.shutdown(wait=False)
        print(f.result(timeout=60), flush=True)
        """
    )
    assert proc.returncode == 0, err
    assert out.strip() == "9"
    assert our_processes(proc.pid) == {}


def test_wait_is_interruptible_by_signals_in_the_main_thread():
    """Ctrl-C (here SIGALRM raising) reaches a thread blocked on result()."""
    import signal

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted()

    with Executor() as exe:
        future = exe.submit(sleep_and_return, 2.0, "done")
        previous = signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        try:
            started = time.monotonic()
            with pytest.raises(Interrupted):
                future.result(timeout=60)
            assert time.monotonic() - started < 1.5
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert future.result(timeout=60) == "done"
