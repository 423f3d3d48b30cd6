"""What the interpreter's exit does to calls still queued.

* ``shutdown(wait=False)`` (and ``Pool.close()`` without ``join()``, and an
  executor dropped while calls are queued) followed by the end of the
  program: the queued calls still run, then the job stops -- as
  ``ProcessPoolExecutor`` runs them.  Nothing is dropped silently.
* An executor still open at exit is stopped (its calls do not all run);
  the program ends within a few seconds and nothing is left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from pmp_procs import our_processes  # noqa: F401

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pympipool import Executor, Pool, PoolExecutor

    OUT = sys.argv[2]

    def mark(i):
        time.sleep(0.3)
        with open(os.path.join(OUT, f"done-{i}"), "w") as f:
            f.write(str(os.getpid()))
        return i

    kind = sys.argv[1]
    if kind == "pool_executor":
        exe = PoolExecutor(max_workers=1)
        futures = [exe.submit(mark, i) for i in range(5)]
        exe.shutdown(wait=False)
    elif kind == "executor2":
        exe = Executor(cores=2)
        futures = [exe.submit(mark, i) for i in range(5)]
        exe.shutdown(wait=False)
    elif kind == "pool_close":
        pool = Pool(1)
        results = [pool.apply_async(mark, (i,)) for i in range(5)]
        pool.close()
    elif kind == "dropped":
        exe = PoolExecutor(max_workers=1)
        futures = [exe.submit(mark, i) for i in range(5)]
        del exe, futures
    elif kind == "open":
        exe = PoolExecutor(max_workers=1)
        futures = [exe.submit(mark, i) for i in range(5)]
    print("END OF SCRIPT", flush=True)
    """
)


def run(kind, tmp_path):
    script = tmp_path / "exiting.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script), kind, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)),
    )
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "END OF SCRIPT" in proc.stdout
    done = sorted(int(p.split("-")[1]) for p in os.listdir(out))
    return done, took


@pytest.mark.parametrize("kind", ["pool_executor", "executor2", "pool_close", "dropped"])
def test_queued_calls_run_before_the_interpreter_exits(tmp_path, kind):
    done, took = run(kind, tmp_path)
    assert done == [0, 1, 2, 3, 4], f"{kind}: only {done} ran"
    print(f"\n{kind}: all 5 queued calls ran; the program took {took:.2f} s")


def test_an_open_executor_is_stopped_at_exit(tmp_path):
    done, took = run("open", tmp_path)
    assert len(done) < 5, "every call ran: the open executor was waited for"
    assert took < 10, took
