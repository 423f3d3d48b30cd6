"""Ctrl-C (or any exception) inside a ``with`` block ends the program within
a few seconds.

The ranks run in their own process group, so the terminal's SIGINT never
reaches them; ``__exit__`` with an exception cancels the queued calls,
forwards SIGINT to the ranks of the running ones (a ``KeyboardInterrupt`` in
the call; the worker survives) and stops the job if they have not finished
2 s later.  Each case runs a script in a child process, sends it SIGINT
the way a terminal does once its call is running, and measures how long
the child takes to end; no process may be left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import wait_until
from pmp_procs import our_processes

BOUND = 6.0  # seconds from SIGINT to the child's exit (ProcessPoolExecutor: ~2 s)

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pympipool import Executor, PoolExecutor

    MARK = sys.argv[2]

    def long_call(mark):
        open(mark, "w").close()  # the call is running now
        time.sleep(60)
        return "finished"

    def make():
        kind = sys.argv[1]
        if kind == "pool_executor":
            return PoolExecutor(max_workers=2)
        return Executor(cores=2 if kind == "executor2" else 1)

    try:
        with make() as exe:
            running = exe.submit(long_call, MARK)
            queued = [exe.submit(time.sleep, 60) for _ in range(4)]
            if sys.argv[3] == "raise":
                while not os.path.exists(MARK):
                    time.sleep(0.01)
                raise ValueError("leaving the block")
            running.result()
    except BaseException as exc:
        print("LEFT", type(exc).__name__, flush=True)
        print("RUNNING", type(running.exception(10)).__name__, flush=True)
        # none of the queued calls ran to its end: cancelled, or (those a
        # worker already held in its pipeline) failed with the job
        failed = sum(f.cancelled() or f.exception(10) is not None for f in queued)
        print("QUEUED", sum(f.cancelled() for f in queued), failed, len(queued), flush=True)
        raise
    """
)


def script_env() -> dict:
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


@pytest.mark.parametrize("kind", ["pool_executor", "executor1", "executor2"])
@pytest.mark.parametrize("how", ["sigint", "raise"])
def test_leaving_the_with_block_ends_running_calls(tmp_path, kind, how):
    script = tmp_path / "interrupted.py"
    script.write_text(SCRIPT)
    mark = tmp_path / "running"
    child = subprocess.Popen(
        [sys.executable, str(script), kind, str(mark), how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=script_env(),
    )
    try:
        assert wait_until(mark.exists, 60), "the call never started"
        start = time.monotonic()
        if how == "sigint":
            child.send_signal(signal.SIGINT)  # what Ctrl-C at a terminal does
        out, err = child.communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    print(f"\n{kind} {how}: the program ended {took:.2f} s after the {how}")
    expected = "KeyboardInterrupt" if how == "sigint" else "ValueError"
    assert f"LEFT {expected}" in out, out + err
    # the running call was interrupted on its ranks: the worker raised
    # KeyboardInterrupt inside it (SIGINT was forwarded)
    running = [l.split()[1] for l in out.splitlines() if l.startswith("RUNNING ")]
    assert running == ["KeyboardInterrupt"], out + err
    (queued,) = [l.split()[1:] for l in out.splitlines() if l.startswith("QUEUED ")]
    cancelled, failed, total = map(int, queued)
    assert failed == total == 4, out
    # a group holds two calls (its pipeline): an Executor's one group the
    # running call and the next, so three of the four queued ones were never
    # sent; a PoolExecutor's two workers four, so at least one of the five
    # was never sent (more when the second worker had not said hello yet)
    if kind == "pool_executor":
        assert 1 <= cancelled <= 3, out
    else:
        assert cancelled == 3, out
    assert took < BOUND, f"{took:.1f} s\n{out}\n{err}"
    if how == "sigint":
        assert child.returncode in (-signal.SIGINT, 130, 1), child.returncode
    else:
        assert child.returncode == 1
    # nothing of the child's job is left
    assert wait_until(lambda: not our_processes(child.pid), 10), our_processes(child.pid)
