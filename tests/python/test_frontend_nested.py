"""An executor created inside a task: the frontend then runs in an MPI rank,
whose environment names the enclosing job (OMPI_*, PMIX_*, PMI_*, ...); the
nested launch gets a launcher environment without those (frontend/
pmp_environ.c) and works on MPICH and Open MPI alike.  And a launch that
fails says why: the launcher's stderr, or that it wrote nothing."""

import os
import stat
import time

import pytest

from pympipool import Executor, ExecutorBroken, PoolExecutor


def double(x):
    return 2 * x


def nested_executor(x):
    from pympipool import Executor

    started = time.monotonic()
    with Executor(cores=1) as inner:
        value = inner.submit(double, x).result(timeout=60)
    return value, time.monotonic() - started


def nested_pool(values):
    from pympipool import PoolExecutor

    started = time.monotonic()
    with PoolExecutor(max_workers=1) as inner:
        result = list(inner.map(double, values))
    return result, time.monotonic() - started


def rank_environment():
    """The enclosing job's marks, as the task's rank sees them."""
    names = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_FD", "HYDI_CONTROL_FD")
    return {n: os.environ[n] for n in names if n in os.environ}


def test_task_is_a_rank():
    """The premise: a task runs with the launcher's variables in its
    environment (so the nested case below is really nested)."""
    with Executor(cores=1) as exe:
        assert exe.submit(rank_environment).result(timeout=60)


def test_executor_inside_a_task():
    with Executor(cores=1) as exe:
        value, seconds = exe.submit(nested_executor, 21).result(timeout=120)
    print(f"nested Executor(cores=1): created, used and shut down in {seconds:.2f} s")
    assert value == 42


def test_pool_executor_inside_a_task():
    with Executor(cores=1) as exe:
        value, seconds = exe.submit(nested_pool, [1, 2, 3]).result(timeout=120)
    print(f"nested PoolExecutor(max_workers=1): {seconds:.2f} s")
    assert value == [2, 4, 6]


def test_two_levels_in_a_row():
    """The same outer worker creates nested executors again and again."""
    with Executor(cores=1) as exe:
        for x in (1, 2):
            value, _ = exe.submit(nested_executor, x).result(timeout=120)
            assert value == 2 * x


def _launcher(tmp_path, body):
    path = tmp_path / "fake-mpiexec"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(stat.S_IRWXU)
    return str(path)


def _launch_error(tmp_path, monkeypatch, script):
    """The ExecutorBroken text of an Executor whose mpiexec is script."""
    monkeypatch.setenv("PYMPIPOOL_MPIEXEC", _launcher(tmp_path, script))
    exe = Executor(cores=1)
    try:
        with pytest.raises(ExecutorBroken) as info:
            exe.submit(double, 1).result(timeout=60)
    finally:
        exe.shutdown(wait=True)
    return str(info.value)


def test_failed_launch_carries_the_launchers_stderr(tmp_path, monkeypatch):
    text = _launch_error(
        tmp_path, monkeypatch, "echo 'fake-mpiexec: cannot do that (marker 5150)' >&2\nexit 1\n"
    )
    assert "exited with status 1" in text
    assert "its stderr ended with:" in text
    assert "marker 5150" in text


def test_failed_launch_that_says_nothing_says_so(tmp_path, monkeypatch):
    text = _launch_error(tmp_path, monkeypatch, "exit 1\n")
    assert "exited with status 1; it wrote nothing to stderr" in text
