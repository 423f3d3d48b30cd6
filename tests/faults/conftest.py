"""Shared pieces of the fault-injection suite (tests/faults/).

Every fault of docs/architecture.md ("Faults: what died, and how the error
says so") is a test here, for
``Executor(cores=1)``, ``Executor(cores=2)`` and ``PoolExecutor(max_workers=2)``
where it applies.  Each test measures how long the error took to reach the
caller and asserts a bound; ``timed(row, kind, seconds)`` records it and the
table of every measurement is printed at the end of the run (visible with
``pytest -s`` and ``ctest -V``).

* Every test has a deadline (SIGALRM, ``PMP_TEST_TIMEOUT`` seconds, default
  120), so a hang fails instead of blocking the run.
* After every test no process may remain that carries ``--frontend-pid``
  of this process (mpiexec and every rank do) or descends from it.
* ``job_pids(executor)``: mpiexec's pid and every rank's pid (from the
  hellos' ``ranks`` line), to prove they are all gone.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Dict, List

import pytest

# the deadline and the process helpers shared by the suites (tests/support/)
from pmp_fixtures import deadline  # noqa: F401
from pmp_procs import our_processes, process_alive, wait_until

os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

HOST = socket.gethostname()
KINDS = ["exec1", "exec2", "pool2"]
_TIMES: List[tuple] = []


def make(kind: str, **kwargs):
    """The executor of one kind of the table."""
    import pympipool

    if kind == "exec1":
        return pympipool.Executor(cores=1, **kwargs)
    if kind == "exec2":
        return pympipool.Executor(cores=2, **kwargs)
    if kind == "pool2":
        return pympipool.PoolExecutor(max_workers=2, **kwargs)
    raise ValueError(kind)


def timed(row: str, kind: str, seconds: float, bound: float) -> None:
    """Records a measurement, prints it and asserts its bound."""
    _TIMES.append((row, kind, seconds))
    print(f"FAULT-TIME {row:<34} {kind:<6} {seconds:7.3f} s (bound {bound} s)")
    assert seconds < bound, f"{row} ({kind}) took {seconds:.3f} s, more than {bound} s"


def wait_gone(pids, timeout: float) -> float:
    """Seconds until none of pids is alive; fails after timeout."""
    start = time.monotonic()
    while True:
        left = [p for p in pids if process_alive(p)]
        if not left:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"processes {left} still alive after {timeout} s")
        time.sleep(0.02)


def hellos_ranks(hellos: List[Dict[str, Any]]) -> List[int]:
    """Every rank pid named by the hellos' ``ranks`` lines (decoded:
    (world rank, pid, host) tuples)."""
    pids = []
    for hello in hellos:
        ranks = hello.get("ranks")
        assert ranks, f"the hello names no ranks: {hello}"
        pids += [pid for _rank, pid, _host in ranks]
    return pids


def job_pids(executor, groups: int, timeout: float = 30.0) -> List[int]:
    """[mpiexec pid] + every rank's pid, once every group said hello."""
    state = executor._state
    end = time.monotonic() + timeout
    while len(state.hellos) < groups:
        assert time.monotonic() < end, "not every group said hello"
        time.sleep(0.01)
    return [state.core.pid] + hellos_ranks(state.hellos)


def groups_of(kind: str) -> int:
    return 2 if kind == "pool2" else 1


@pytest.fixture(autouse=True)
def leftovers(request, deadline):  # noqa: F811 (the fixture, by name)
    """After the test (and its deadline, pmp_fixtures.deadline), no process
    of ours may remain, except the executor a ``shared_executor`` test
    leaves for the next test of its module."""
    yield
    if request.node.get_closest_marker("shared_executor"):
        return  # its executor lives on for the next test of the module
    wait_until(lambda: not our_processes(), 15)
    assert our_processes() == {}, "processes left behind"


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_executor: uses a module-scoped executor")


def pytest_terminal_summary(terminalreporter):
    if not _TIMES:
        return
    mpi = "?"
    try:
        from pympipool import _config

        mpi = _config.MPI_FLAVOUR
    except Exception:
        pass
    terminalreporter.write_line("")
    terminalreporter.write_line(f"time for the error to reach the caller ({mpi}):")
    for row, kind, seconds in _TIMES:
        terminalreporter.write_line(f"  {row:<34} {kind:<6} {seconds:7.3f} s")
