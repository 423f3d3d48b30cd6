"""pympipool-runtime end to end, driven through pympipool.Executor.

What the runtime itself guarantees: per-rank results in rank order, one
process per rank on this host (the HELLO identity), large numpy arrays
travelling out of band and arriving writable on both sides, the error of a
non-leader rank reaching the caller, and an idle job that costs (almost) no
CPU.
"""

import os
import socket
import time

import numpy as np
import pytest

from pympipool import Executor, RemoteTraceback

from conftest import wait_until

# ---- functions run on the ranks ---------------------------------------------


def _rank():
    """This process's MPI_COMM_WORLD rank, from the launcher's environment
    (Executor runs one group, so it is also the rank in the group)."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def identity():
    return _rank(), os.getpid(), socket.gethostname()


def echo_writable(a):
    assert isinstance(a, np.ndarray)
    assert a.flags.writeable, "the array arrived read-only on the rank"
    a[0] = a[0]  # really writable, not just flagged so
    return a


def fail_on_last_rank(n):
    if _rank() == n - 1:
        raise ValueError(f"deliberate failure on rank {_rank()}")
    return _rank()


# ---- helpers ----------------------------------------------------------------


def _descendants(pid):
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _runtime_pids(mpiexec_pid):
    pids = []
    for pid in _descendants(mpiexec_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0")[0]
        except OSError:
            continue
        if argv0.endswith(b"pympipool-runtime"):
            pids.append(pid)
    return sorted(pids)


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- tests ------------------------------------------------------------------


@pytest.mark.parametrize("cores", [1, 2, 4])
def test_results_in_rank_order(cores):
    with Executor(cores=cores, oversubscribe=True) as exe:
        result = exe.submit(identity).result(timeout=60)
        hellos = list(exe._state.hellos)
    if cores == 1:
        assert isinstance(result, tuple)
        result = [result]
    assert [r[0] for r in result] == list(range(cores))
    pids = [r[1] for r in result]
    assert len(set(pids)) == cores, "every rank must be its own process"
    assert os.getpid() not in pids
    assert all(r[2] == socket.gethostname() for r in result)
    # The HELLO of the one group describes the leader (rank 0).
    assert len(hellos) == 1
    hello = hellos[0]
    assert int(hello["group"]) == 0 and int(hello["ngroups"]) == 1
    assert int(hello["group_size"]) == cores and int(hello["world_size"]) == cores
    assert int(hello["world_rank"]) == 0
    assert int(hello["pid"]) == pids[0]
    assert hello["host"] == socket.gethostname()
    assert hello["python"].split(".")[:2] == [str(v) for v in os.sys.version_info[:2]]
    assert hello["mpi"] and hello["runtime"]
    assert int(hello["batch"]) == 64  # it takes tasks several to a ZeroMQ message


def test_large_array_round_trip_writable():
    a = np.arange(16 * 1024 * 1024, dtype=np.float64)  # 128 MiB
    assert a.nbytes == 128 * 1024 * 1024
    with Executor(cores=2, oversubscribe=True) as exe:
        result = exe.submit(echo_writable, a).result(timeout=120)
    assert len(result) == 2
    for b in result:
        assert b.dtype == a.dtype and b.shape == a.shape
        assert np.array_equal(a, b)
        assert b.flags.writeable
        b[0] = -1.0
        assert a[0] == 0.0, "the result must not share memory with the argument"


def test_exception_on_one_non_leader_rank():
    cores = 2
    with Executor(cores=cores, oversubscribe=True) as exe:
        future = exe.submit(fail_on_last_rank, cores)
        with pytest.raises(ValueError, match="deliberate failure on rank 1"):
            future.result(timeout=60)
        cause = future.exception().__cause__
        assert isinstance(cause, RemoteTraceback)
        assert f"Rank 1 of {cores} on {socket.gethostname()}" in str(cause)
        assert "fail_on_last_rank" in str(cause)
        # The group keeps working after a failed task.
        assert exe.submit(identity).result(timeout=60)[1][0] == 1


def test_idle_runtime_uses_almost_no_cpu():
    window = 5.0
    with Executor(cores=2, oversubscribe=True) as exe:
        exe.submit(identity).result(timeout=60)  # the job is up
        mpiexec_pid = exe._state.core.pid
        pids = []
        assert wait_until(lambda: len(_runtime_pids(mpiexec_pid)) == 2, 10)
        pids = _runtime_pids(mpiexec_pid)
        time.sleep(1.5)  # past the runtime's short busy-wait phase
        before = {p: _cpu_seconds(p) for p in pids}
        t0 = time.monotonic()
        time.sleep(window)
        after = {p: _cpu_seconds(p) for p in pids}
        elapsed = time.monotonic() - t0
    shares = {p: (after[p] - before[p]) / elapsed for p in pids}
    print("idle CPU per rank:", {p: f"{100 * s:.2f}%" for p, s in shares.items()})
    assert max(shares.values()) < 0.05, f"an idle rank used too much CPU: {shares}"
