"""Fork safety of the binding (pympipool._core): in a child made by
``os.fork()`` an inherited ``Executor`` or ``Channel`` is dead.  Its methods
raise ``RuntimeError`` naming both processes, ``destroy()`` returns at once
(although the parent's dispatcher thread was inside ``wait()`` at the
fork), and the child exits promptly; the parent is unaffected."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from pympipool import Executor, _core


def add(a, b):
    return a + b


def _in_child(check):
    """Runs check() in a forked child; returns (its exit status, seconds
    from the fork to its exit).  The child reports failures on stderr."""
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal_alarm = getattr(__import__("signal"), "alarm")
            signal_alarm(20)
            check()
            code = 0
        except BaseException as exc:  # report everything, then leave hard
            print(f"child: {exc!r}", file=sys.stderr, flush=True)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), time.monotonic() - started


def test_inherited_executor_is_dead_in_the_child():
    exe = Executor(cores=1)
    try:
        assert exe.submit(add, 1, 2).result(timeout=60) == 3
        core = exe._state.core
        parent = os.getpid()
        assert core.forked is False

        def check():
            me = os.getpid()
            assert core.forked is True
            calls = [
                lambda: core.submit(99, _core.MSG_TASK, 0, b"x", []),
                lambda: core.broadcast(_core.MSG_DEFINE, 7, b"x"),
                lambda: core.wait(0),
                lambda: core.wait(None),
                lambda: core.cancel(1),
                lambda: core.cancel_all(),
                lambda: core.pending(),
                lambda: core.close(),
                lambda: core.interrupt(),
                lambda: core.restarts,
            ]
            for call in calls:
                with pytest.raises(RuntimeError) as info:
                    call()
                text = str(info.value)
                assert f"belongs to process {parent}" in text, text
                assert f"forked child (pid {me})" in text, text
            assert core.endpoint.startswith("ipc://")  # plain reads still work
            t0 = time.monotonic()
            core.destroy()  # the parent's dispatcher is inside wait(): no waiting for it
            core.destroy()
            assert time.monotonic() - t0 < 0.5
            assert core.destroyed and core.forked

        code, seconds = _in_child(check)
        print(f"forked child checked and exited in {seconds:.3f} s")
        assert code == 0
        # the parent: untouched
        assert core.forked is False and not core.destroyed
        assert exe.submit(add, 2, 3).result(timeout=60) == 5
    finally:
        exe.shutdown(wait=True)


def test_inherited_channel_is_dead_in_the_child():
    ch = _core.Channel()
    try:
        ch.bind_random_port()

        def check():
            assert ch.forked is True
            for call in (
                lambda: ch.send(_core.MSG_TASK, 1, 0, b"x", [], timeout=0),
                lambda: ch.recv(timeout=0),
                lambda: ch.bind_random_port(),
                lambda: ch.bootup(["true"]),
            ):
                with pytest.raises(RuntimeError, match="forked child"):
                    call()
            assert ch.exit_status is None
            t0 = time.monotonic()
            ch.destroy()
            assert time.monotonic() - t0 < 0.5

        code, _ = _in_child(check)
        assert code == 0
        assert ch.forked is False and not ch.closed
    finally:
        ch.destroy()


def test_child_with_a_live_executor_exits_promptly():
    """The original hang: a child that simply ends (atexit, garbage
    collection of the inherited executor) while the parent's executor is
    busy.  The child must be gone within a second or two, and the parent's
    call must still complete."""
    script = textwrap.dedent(
        """
        import os, sys, time
        from pympipool import Executor

        def slow(x):
            import time
            time.sleep(1.5)
            return x

        exe = Executor(cores=1)
        assert exe.submit(abs, -1).result(timeout=60) == 1
        running = exe.submit(slow, 7)
        time.sleep(0.3)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # interpreter exit: atexit hooks, then deallocation
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status), round(time.monotonic() - started, 3))
        print("parent", running.result(timeout=60), exe.submit(abs, -5).result(timeout=60))
        exe.shutdown(wait=True)
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=90
    )
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    code, seconds = lines["child"].split()
    assert int(code) == 0
    assert float(seconds) < 5.0  # measured well under 0.1 s; generous for a busy host
    assert lines["parent"] == "7 5"
