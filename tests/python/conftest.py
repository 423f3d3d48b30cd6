"""Fixtures shared by the Python tests of pympipool.

* Every test has a deadline, and no process that a test started may
  remain after it: the fixtures of ``tests/support/pmp_fixtures.py``,
  shared with the SLURM suite.
* ``started(pool, groups)``: module-scoped pools wait until every group said
  hello, so that their ranks exist before the leftover check's snapshot.
* ``make_unimportable_function``: a function this process can pickle by
  reference but the workers cannot import (the pools' unpickling errors).
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from pmp_fixtures import deadline, no_leftover_processes  # noqa: F401
from pmp_procs import our_processes, process_alive, wait_until  # noqa: F401

# Open MPI refuses to run as root without these (harmless for MPICH).
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")


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
