"""Fixtures shared by the Python tests of pympipool.

* Every test has a deadline (``PMP_TEST_TIMEOUT`` seconds, default 120):
  SIGALRM raises in the main thread, so a hang fails the test instead of
  blocking the run (pytest-timeout is not installed).
* After every test, no process that the test started may remain: neither a
  descendant of this process nor any process started with
  ``--frontend-pid <our pid>`` (mpiexec and every runtime rank carry it).
  The check waits a little, because executors shut down with ``wait=False``
  or garbage-collected ones leave asynchronously.
* ``started(pool, groups)``: module-scoped pools wait until every group said
  hello, so that their ranks exist before the leftover check's snapshot.
* ``make_unimportable_function``: a function this process can pickle by
  reference but the workers cannot import (the pools' unpickling errors).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import time
from typing import Dict

import pytest

from pmp_procs import our_processes, process_alive, wait_until  # noqa: F401

TEST_TIMEOUT = int(os.environ.get("PMP_TEST_TIMEOUT", "120"))
LEFTOVER_WAIT = 20.0

# Open MPI refuses to run as root without these (harmless for MPICH).
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def deadline():
    """Fails a test that runs longer than TEST_TIMEOUT seconds."""

    def on_alarm(signum, frame):
        raise DeadlineExceeded(f"test exceeded {TEST_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def no_leftover_processes(deadline):
    """Fails a test that leaves an MPI job or any other child process behind."""
    before = set(our_processes())
    yield
    left: Dict[int, str] = {}

    def none_left() -> bool:
        nonlocal left
        left = {p: c for p, c in our_processes().items() if p not in before}
        return not left

    if not wait_until(none_left, LEFTOVER_WAIT, 0.1):
        pytest.fail(f"processes left behind: {left}")


@pytest.fixture
def new_processes():
    """A function returning the processes of ours started since the test
    began (a module-scoped pool's ranks are not counted)."""
    before = set(our_processes())
    return lambda: {p: c for p, c in our_processes().items() if p not in before}


@pytest.fixture
def bad_runtime(tmp_path):
    """A 'runtime' that writes to stderr and exits 1.  It waits a moment
    first: a process that exits while mpiexec.hydra is still launching it
    can make hydra itself die of SIGPIPE before it forwards the stderr."""
    script = tmp_path / "bad-runtime.sh"
    script.write_text(
        "#!/bin/sh\n"
        "echo 'pmp-test: the runtime cannot start (marker 4711)' >&2\n"
        "sleep 0.3\n"
        "exit 1\n"
    )
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def python_exe():
    return sys.executable


def make_unimportable_function(tmp_path, monkeypatch, name):
    """A function of module ``name`` that this process imports from a
    directory the workers never had on sys.path.  The directory is named
    site-packages, so pympipool pickles the function by reference (as it does
    for installed packages), and the workers fail to import the module."""
    directory = tmp_path / "site-packages"
    directory.mkdir()
    directory.joinpath(f"{name}.py").write_text("def triple(x):\n    return 3 * x\n")
    path = directory / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Imported here only (cloudpickle pickles by reference what it finds in
    # sys.modules); monkeypatch removes it after the test.
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    path.unlink()  # gone before any worker could look for it
    return module.triple


def started(pool, groups: int, timeout: float = 60.0):
    """Returns pool once all its groups have said hello: a module-scoped pool
    must have every rank running before the first test looks for leftovers."""
    if not wait_until(lambda: len(pool._state.hellos) >= groups, timeout):
        raise RuntimeError(f"only {len(pool._state.hellos)} of {groups} groups started")
    return pool


@pytest.fixture(scope="module")
def pool():
    """A Pool of 2 started workers shared by the tests of one module."""
    from pympipool import Pool

    p = started(Pool(max_workers=2), 2)
    yield p
    p.terminate()
    p.join()
