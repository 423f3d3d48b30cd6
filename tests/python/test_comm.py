"""The communicator a function gets as ``comm``, under the real runtime.

* Which communicator: where the build found mpi4py built for the runtime's
  MPI (``matching``: the Open MPI build on Debian), ``comm`` is an
  ``mpi4py.MPI.Intracomm`` and tasks may ``from mpi4py import MPI``;
  otherwise it is pympipool's own ``_pympipool_runtime.Comm`` and importing a
  mismatched ``mpi4py.MPI`` raises an ImportError naming both MPI libraries.
  The expectation comes from ``PMP_EXPECT_MPI4PY`` (set by CTest from the
  build's answer) or is worked out here the way the build does it.
* ``comm`` is only given to functions that have a ``comm`` parameter and
  did not get one from the caller.
* ``test_collectives`` runs tests/support/comm_collectives.py (every
  collective, point to point, Split/Dup/Free, error paths) on the group of
  ``Executor(cores=N)`` for each N in ``PMP_COMM_RANKS`` (CTest: mpi.comm.2
  and mpi.comm.4; nothing by default, to keep py.comm short).
"""

import os
import subprocess
import sys

import pytest

from pympipool import Executor
from pympipool import _config

COMM_RANKS = [int(n) for n in os.environ.get("PMP_COMM_RANKS", "").split(",") if n]
RESULT_TIMEOUT = 120


def _expected_mpi4py():
    """matching | mismatched | absent, as cmake/PympipoolMPI4py.cmake decides."""
    mode = os.environ.get("PMP_EXPECT_MPI4PY")
    if mode:
        return mode
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mpi4py; mpi4py.rc.initialize = False; mpi4py.rc.finalize = False; "
            "from mpi4py import MPI; print(MPI.Get_library_version())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        return "absent"
    if "Open MPI" in probe.stdout:
        flavour = "openmpi"
    elif "MPICH" in probe.stdout:
        flavour = "mpich"
    else:
        flavour = "other"
    return "matching" if flavour == _config.MPI_FLAVOUR else "mismatched"


MPI4PY = _expected_mpi4py()


# ---- functions run on the ranks ---------------------------------------------


def no_comm(x):
    return x


def with_comm(x, comm):
    return x, comm.Get_rank(), comm.Get_size(), type(comm).__module__


def keyword_comm(x, *, comm):
    return x, comm.Get_rank(), comm.allreduce(comm.Get_rank() + 1)


def var_keywords(x, **kwargs):
    return sorted(kwargs)


def comm_identity(comm):
    return comm


def free_then_sum(comm):
    """Freeing the injected communicator must not break the next task."""
    total = comm.allreduce(1)
    try:
        comm.Free()
    except Exception as exc:  # mpi4py may refuse; either way the next task works
        return total, type(exc).__name__
    return total, None


def import_mpi4py():
    import mpi4py  # the pure package always imports

    try:
        from mpi4py import MPI
    except ImportError as exc:
        return "ImportError", str(exc), mpi4py.__name__
    world = MPI.COMM_WORLD.Get_size()
    return "imported", world, MPI.Is_initialized(), MPI.Is_finalized()


# ---- tests ------------------------------------------------------------------


@pytest.fixture(scope="module")
def executor2():
    with Executor(cores=2, oversubscribe=True) as ex:
        # every rank is up before the tests count their processes
        assert ex.submit(no_comm, 0).result(RESULT_TIMEOUT) == [0, 0]
        yield ex


def test_comm_only_for_functions_that_take_it(executor2):
    assert executor2.submit(no_comm, 5).result(RESULT_TIMEOUT) == [5, 5]
    assert executor2.submit(var_keywords, 1).result(RESULT_TIMEOUT) == [[], []]
    got = executor2.submit(with_comm, 7).result(RESULT_TIMEOUT)
    module = "mpi4py.MPI" if MPI4PY == "matching" else "_pympipool_runtime"
    assert got == [(7, 0, 2, module), (7, 1, 2, module)]
    got = executor2.submit(keyword_comm, 3).result(RESULT_TIMEOUT)
    assert got == [(3, 0, 3), (3, 1, 3)]


def test_explicit_comm_is_kept(executor2):
    assert executor2.submit(comm_identity, comm="mine").result(RESULT_TIMEOUT) == [
        "mine",
        "mine",
    ]
    assert executor2.submit(comm_identity, "positional").result(RESULT_TIMEOUT) == [
        "positional",
        "positional",
    ]
    got = executor2.submit(with_comm, 1, None)
    with pytest.raises(AttributeError):
        got.result(RESULT_TIMEOUT)  # None was passed on, not replaced


@pytest.mark.skipif(MPI4PY == "matching", reason="mpi4py frees what it is told to")
def test_free_does_not_break_the_group(executor2):
    got = executor2.submit(free_then_sum).result(RESULT_TIMEOUT)
    assert got == [(2, None), (2, None)]
    assert executor2.submit(with_comm, 2).result(RESULT_TIMEOUT)[1][1:3] == (1, 2)


@pytest.mark.skipif(MPI4PY != "mismatched", reason="needs mpi4py for another MPI")
def test_mismatched_mpi4py_import_raises(executor2):
    got = executor2.submit(import_mpi4py).result(RESULT_TIMEOUT)
    for kind, message, package in got:
        assert kind == "ImportError" and package == "mpi4py"
        assert "MPICH" in message and "Open MPI" in message, message
        assert "`comm` argument" in message
        # and what to do: rebuild for mpi4py's MPI
        assert "-DPYMPIPOOL_MPI=openmpi" in message, message
        assert "PYMPIPOOL_MPI=openmpi pip install ." in message, message
    # the rank survived and its MPI still works
    got = executor2.submit(keyword_comm, 0).result(RESULT_TIMEOUT)
    assert got == [(0, 0, 3), (0, 1, 3)]


@pytest.mark.skipif(MPI4PY != "matching", reason="needs mpi4py for the runtime's MPI")
def test_matching_mpi4py_works_and_shuts_down_cleanly():
    with Executor(cores=2, oversubscribe=True) as ex:
        assert ex.submit(import_mpi4py).result(RESULT_TIMEOUT) == [
            ("imported", 2, True, False),
            ("imported", 2, True, False),
        ]
        got = ex.submit(with_comm, 1).result(RESULT_TIMEOUT)
        assert [g[3] for g in got] == ["mpi4py.MPI", "mpi4py.MPI"]
        # MPI stays usable after mpi4py was imported: not finalised by it
        got = ex.submit(keyword_comm, 2).result(RESULT_TIMEOUT)
        assert got == [(2, 0, 3), (2, 1, 3)]
    # leaving the with-block waited for the job; conftest checks that no
    # process is left (a rank stuck in a second MPI_Finalize would be)


# Only collected where CTest asks for it (mpi.comm.N), so that py.comm does
# not report an empty parametrisation as a skip.
@pytest.mark.parametrize("cores", COMM_RANKS)
def _collectives(cores):
    import comm_collectives  # tests/support

    with Executor(cores=cores, oversubscribe=True) as ex:
        got = ex.submit(comm_collectives.run).result(RESULT_TIMEOUT)
        kind = ex.submit(with_comm, 0).result(RESULT_TIMEOUT)[0][3]
    assert got == ["comm tests passed on rank %d" % r for r in range(cores)]
    assert kind == ("mpi4py.MPI" if MPI4PY == "matching" else "_pympipool_runtime")


if COMM_RANKS:
    test_collectives = _collectives
