"""The user's stdout carries what the script and its tasks print, and no
launcher noise: the job's stdout comes through a pipe that the frontend
relays (frontend/pmp_relay.c) without MPICH's "BAD TERMINATION" banner
(frontend/pmp_banner.c), which a terminated Pool with a busy worker used to
print; after such a deliberate stop the job's stderr is not echoed either.
Task output still arrives at once, partial lines included."""

import fcntl
import os
import select
import subprocess
import sys
import textwrap
import time

import pytest

NOISE = ("BAD TERMINATION", "=====", "YOUR APPLICATION TERMINATED", "noticed that process")


def run_script(source, timeout=120, env=None):
    env = dict(os.environ, **(env or {}))
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_SCRIPTS = {
    # multiprocessing's contract: leaving the block terminates the pool
    "Pool": """
        import time
        from pympipool import Pool

        with Pool(2) as pool:
            print("script: submitting", flush=True)
            pending = pool.apply_async(time.sleep, (30,))
            time.sleep(1.0)  # the worker is busy now
            print("script: leaving the with block", flush=True)
        print("script: done", flush=True)
        """,
    # an exception leaves the block: the running call is interrupted (SIGINT
    # forwarded to its ranks), then the job is stopped
    "PoolExecutor": """
        import time
        from pympipool import PoolExecutor

        try:
            with PoolExecutor(max_workers=2) as exe:
                print("script: submitting", flush=True)
                exe.submit(time.sleep, 30)
                time.sleep(1.0)
                print("script: leaving the with block", flush=True)
                raise LookupError("leaving")
        except LookupError:
            pass
        print("script: done", flush=True)
        """,
}


#: A launcher that answers SIGTERM with hydra's banner on stdout and a line
#: on stderr, every time (hydra itself prints its banner only when it gets to
#: report the ranks' deaths before the signal ends it: most of the time).
_NOISY_LAUNCHER = """#!/bin/sh
r================================================================================
trap 'printf "\\n=%s\\n=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\\n=   EXIT CODE: 15\\n=%s\\n" $r $r; echo "launcher noise" >&2; exit 143' TERM
"$PMP_REAL_MPIEXEC" "$@" &
wait $!
"""


@pytest.mark.parametrize("launcher", ["mpiexec", "noisy"])
@pytest.mark.parametrize("kind", sorted(_SCRIPTS))
def test_ending_a_busy_pool_prints_no_launcher_noise(kind, launcher, tmp_path):
    from pympipool import _config

    env = {}
    if launcher == "noisy":
        path = tmp_path / "noisy-mpiexec"
        path.write_text(_NOISY_LAUNCHER)
        path.chmod(0o700)
        env = {"PYMPIPOOL_MPIEXEC": str(path), "PMP_REAL_MPIEXEC": _config.MPIEXEC}
    started = time.monotonic()
    proc = run_script(_SCRIPTS[kind], env=env)
    print(f"{kind} with {launcher}: {time.monotonic() - started:.2f} s")
    print("stdout:", repr(proc.stdout))
    print("stderr:", repr(proc.stderr))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "script: submitting\nscript: leaving the with block\nscript: done\n"
    )
    for noise in NOISE + ("launcher noise",):
        assert noise not in proc.stderr


def test_task_output_reaches_stdout():
    proc = run_script(
        """
        import time
        from pympipool import Executor

        def chatty(n):
            print("from the task", n, flush=True)
            print("and a partial line", end="", flush=True)
            return n

        with Executor(cores=1) as exe:
            assert exe.submit(chatty, 1).result(timeout=60) == 1
            time.sleep(1.0)  # the relay is asynchronous to the result
            print("\\nscript: done", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "from the task 1\nand a partial line\nscript: done\n", proc.stdout


def test_partial_line_arrives_before_the_task_ends():
    """A progress line without a newline is on the user's stdout while the
    task still runs (nothing waits for its newline)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    source = """
        import time
        from pympipool import Executor

        def progress():
            print("progress: 50%", end="", flush=True)
            time.sleep(8)
            print(" 100%", flush=True)

        with Executor(cores=1) as exe:
            exe.submit(progress).result(timeout=60)
        """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        fd = proc.stdout.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        got = b""
        started = time.monotonic()
        while b"progress: 50%" not in got and time.monotonic() - started < 7.0:
            select.select([fd], [], [], 0.1)
            try:
                got += os.read(fd, 4096)
            except BlockingIOError:
                pass
        seen_after = time.monotonic() - started
        assert b"progress: 50%" in got, got
        assert proc.poll() is None  # the task was still running
        print(f"the partial line was on stdout {seen_after:.2f} s after the start")
    finally:
        proc.kill()
        proc.wait()
