"""os.fork() while executors are alive: the child never hangs, the parent is
unaffected.

In a forked child the inherited executors are dead objects: submitting
raises ``ExecutorBroken`` at once, inherited pending futures fail with it,
``shutdown()`` / ``close()`` / ``join()`` return at once, and the child's
exit does not wait for the parent's jobs.  Each scenario runs in a fresh
interpreter (a script) that holds one of every interface -- ``Executor``,
``PoolExecutor``, ``Pool``, ``MPISpawnPool`` and a ``SocketInterface`` with
a booted program -- forks, lets the child do one thing, and checks in the
parent that every interface still works.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

CHILD_BOUND = 10.0  # seconds a child may take; a hang would take forever

PRELUDE = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from pympipool import (Executor, ExecutorBroken, MPISpawnPool, Pool, PoolExecutor,
                           SocketInterface)

    BACKEND = {backend!r}

    def square(x):
        return x * x

    def started(obj, groups):
        deadline = time.monotonic() + 60
        while len(obj._state.hellos) < groups:
            assert time.monotonic() < deadline, "not started"
            time.sleep(0.02)
        return obj

    exe = started(Executor(cores=1), 1)
    pexe = started(PoolExecutor(max_workers=1), 1)
    pool = started(Pool(1), 1)
    spool = started(MPISpawnPool(max_ranks=1), 1)
    sock = SocketInterface()
    port = sock.bind_to_random_port()
    sock.bootup([sys.executable, BACKEND, "--host", "127.0.0.1", "--port", str(port)])
    assert sock.send_and_receive_dict({{"fn": square, "args": (3,)}}) == 9

    def parent_still_works():
        assert exe.submit(square, 2).result(30) == 4
        assert pexe.submit(square, 3).result(30) == 9
        assert pool.map(square, [4]) == [16]
        assert spool.map(square, [5]) == [25]
        assert sock.send_and_receive_dict({{"fn": square, "args": (6,)}}) == 36

    def wait_child(pid, bound):
        start = time.monotonic()
        while time.monotonic() - start < bound:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), time.monotonic() - start
            time.sleep(0.01)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise SystemExit(f"the child hung for more than {{bound}} s")

    def fork_and_wait(child, bound=10):
        # Runs child() in a forked child, which then exits normally (atexit
        # hooks, finalizers, module teardown); the child must exit with 0
        # within bound seconds.  Prints how long it took.
        pid = os.fork()
        if pid == 0:
            child()
            sys.exit(0)
        code, took = wait_child(pid, bound)
        assert code == 0, code
        print("CHILD", took, flush=True)
    """
)

EPILOGUE = textwrap.dedent(
    """
    parent_still_works()
    for obj in (exe, pexe):
        obj.shutdown()
    pool.close(); pool.join(); spool.close(); spool.join()
    sock.shutdown()
    print("PARENT OK", flush=True)
    """
)


def script_env() -> dict:
    """This environment with an absolute PYTHONPATH (the scripts run
    elsewhere)."""
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def run_script(body: str, tmp_path) -> str:
    backend = os.path.join(
        os.path.dirname(__file__), "..", "..", "examples", "backends", "socket_backend.py"
    )
    script = tmp_path / "fork_script.py"
    script.write_text(PRELUDE.format(backend=os.path.abspath(backend)) + textwrap.dedent(body) + EPILOGUE)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=script_env(),
    )
    assert proc.returncode == 0, f"status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "PARENT OK" in proc.stdout, proc.stdout + proc.stderr
    assert time.monotonic() - start < 150
    return proc.stdout


def child_time(out: str) -> float:
    (line,) = [l for l in out.splitlines() if l.startswith("CHILD ")]
    return float(line.split()[1])


def test_forked_child_that_exits_does_not_wait(tmp_path):
    out = run_script(
        """
        fork_and_wait(lambda: None)
        """,
        tmp_path,
    )
    assert child_time(out) < CHILD_BOUND


def test_forked_child_that_submits_gets_an_error_at_once(tmp_path):
    out = run_script(
        """
        def child():
            failures = []
            for name, call in [
                ("Executor.submit", lambda: exe.submit(square, 1)),
                ("PoolExecutor.submit", lambda: pexe.submit(square, 1)),
                ("PoolExecutor.map", lambda: list(pexe.map(square, [1]))),
                ("Pool.map", lambda: pool.map(square, [1])),
                ("Pool.apply_async", lambda: pool.apply_async(square, (1,))),
                ("MPISpawnPool.map", lambda: spool.map(square, [1])),
            ]:
                try:
                    call()
                except ExecutorBroken as exc:
                    if "forked child" not in str(exc):
                        failures.append(f"{name}: {exc}")
                else:
                    failures.append(f"{name} did not raise")
            try:
                sock.send_dict({"fn": square, "args": (1,)})
            except RuntimeError as exc:
                if "forked child" not in str(exc):
                    failures.append(f"SocketInterface: {exc}")
            else:
                failures.append("SocketInterface.send_dict did not raise")
            if failures:
                print("\\n".join(failures), flush=True)
                os._exit(3)

        fork_and_wait(child)
        """,
        tmp_path,
    )
    assert child_time(out) < CHILD_BOUND


def test_forked_child_that_shuts_down_returns_at_once(tmp_path):
    out = run_script(
        """
        def child():
            start = time.monotonic()
            exe.shutdown(wait=True)
            pexe.shutdown(wait=True, cancel_futures=True)
            pool.close(); pool.join()
            pool.terminate()
            spool.shutdown(wait=True)
            sock.shutdown(wait=True)
            with Executor(cores=1) as fresh:  # the child may make its own
                assert fresh.submit(square, 7).result(30) == 49
            if time.monotonic() - start > 30:
                os._exit(4)

        fork_and_wait(child, 60)
        """,
        tmp_path,
    )
    assert child_time(out) < 60


def test_inherited_pending_future_fails_in_the_child(tmp_path):
    run_script(
        """
        slow = pexe.submit(time.sleep, 2)
        pid = os.fork()
        if pid == 0:
            start = time.monotonic()
            try:
                slow.result(timeout=20)
            except ExecutorBroken as exc:
                ok = "forked child" in str(exc) and time.monotonic() - start < 5
                os._exit(0 if ok else 5)
            os._exit(6)
        code, took = wait_child(pid, 30)
        assert code == 0, code
        assert slow.result(30) is None  # the parent's call ran
        """,
        tmp_path,
    )


def test_multiprocessing_fork_child(tmp_path):
    out = run_script(
        """
        def target(queue):
            try:
                pexe.submit(square, 2)
            except ExecutorBroken as exc:
                queue.put("broken: " + str(exc))
            else:
                queue.put("no error")

        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        start = time.monotonic()
        child = ctx.Process(target=target, args=(queue,))
        child.start()
        child.join(20)
        assert child.exitcode == 0, child.exitcode
        message = queue.get(timeout=5)
        assert message.startswith("broken: ") and "forked child" in message, message
        print("CHILD", time.monotonic() - start, flush=True)
        """,
        tmp_path,
    )
    assert child_time(out) < CHILD_BOUND
