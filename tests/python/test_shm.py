"""The shared-memory path of large buffers (pylib/pympipool/_shm.py,
docs/protocol.md "Shared memory").

* A large array reaches the rank, and comes back, through shared segments
  (its base is a ShmView on both sides), intact and writable; the caller's
  own array is copied at submit, so changing it afterwards changes nothing.
* A result the caller keeps stays valid while later calls run: the
  leader's segment is not reused under it (the rank's owner shows it lent).
* An argument a rank keeps in a global stays valid on the rank across
  later calls: the caller's segment is not reused under it.
* A rank that dies leaves no segment behind: no memfd mapped or open in
  this process once the executor is gone, no name of ours in /dev/shm,
  and the private directory removed.
* ``Executor(cores=2)`` (every rank maps the argument; the rank table of
  results keeps frames) and a group whose other rank fails (the leader's
  unsent result segment is free again) work.
* Ranks on another host (simulated: this process believes it is elsewhere)
  get frames in both directions.
"""

from __future__ import annotations

import gc
import os
import signal
import time

import numpy as np
import pytest

import pympipool
from pympipool import Executor, ExecutorBroken, MPISpawnPool, _shm

from conftest import wait_until

N = (4 << 20) // 8  # 4 MiB of float64: above _shm.THRESHOLD


def _base_name(array):
    """The type name of the object at the end of an array's base chain."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return type(base).__name__


def where_and_double(a):
    """On the rank: where the argument's bytes are, whether writable; the
    array doubled in place (it must be writable)."""
    name = _base_name(a)
    writable = bool(a.flags.writeable)
    a *= 2
    return name, writable, a


def filled(value):
    return np.full(N, float(value))


def rank_owner_stats():
    import sys

    owner = sys.modules["_pympipool_worker"]._shm["owner"]
    return None if owner is None else owner.stats()


def keep(a):
    import builtins

    builtins.__dict__.setdefault("_pmp_kept", []).append(a)
    return _base_name(a)


def kept_values():
    import builtins

    return [(float(k[0]), float(k[-1]), bool(np.all(k == k[0]))) for k in builtins._pmp_kept]


def _ready(exe):
    """Waits until every group said hello (before that, frames are used)."""
    assert exe.submit(int, 1).result() in (1, [1, 1])
    assert wait_until(lambda: _shm.all_local(exe._state.hellos, _shm.local_host()), 30)


def test_round_trip_through_segments_writable():
    with Executor(cores=1) as exe:
        _ready(exe)
        a = np.arange(N, dtype=np.float64)
        future = exe.submit(where_and_double, a)
        a[:] = -1  # copied at submit: the call sees the original
        name, writable, back = future.result()
        assert name == "ShmView" and writable
        assert _base_name(back) == "ShmView"
        assert back.flags.writeable
        assert np.array_equal(back, np.arange(N, dtype=np.float64) * 2)
        back[:] = 7  # writable here too
        assert float(back.sum()) == 7 * N
        # A second round trip reuses the segments (nothing new per call).
        for _ in range(3):
            del back
            name, writable, back = exe.submit(where_and_double, np.ones(N)).result()
            assert name == "ShmView" and float(back.sum()) == 2 * N
        segments, lent = exe._shm_owner.stats()
        assert segments == 1 and lent == 0
        assert exe.submit(rank_owner_stats).result()[0] <= 2


def test_kept_result_stays_valid():
    with Executor(cores=1) as exe:
        _ready(exe)
        first = exe.submit(filled, 1).result()
        assert _base_name(first) == "ShmView"
        for value in range(2, 8):
            later = exe.submit(filled, value).result()
            assert float(later[0]) == value and float(later[-1]) == value
            del later
        assert np.all(first == 1.0)
        segments, lent = exe.submit(rank_owner_stats).result()
        assert lent == 1 and segments == 2  # the kept one, and one reused
        del first
        gc.collect()
        assert exe.submit(rank_owner_stats).result() == (2, 0)


def test_argument_kept_on_rank_stays_valid():
    with Executor(cores=1) as exe:
        _ready(exe)
        for value in range(1, 5):
            assert exe.submit(keep, np.full(N, float(value))).result() == "ShmView"
            # calls in between: their arguments must take other segments
            assert exe.submit(where_and_double, np.full(N, -1.0)).result()[0] == "ShmView"
        assert exe.submit(kept_values).result() == [(float(v), float(v), True) for v in range(1, 5)]
        segments, lent = exe._shm_owner.stats()
        assert lent == 4 and segments == 5


def _memfds():
    """This process's mappings and descriptors of shared segments."""
    with open("/proc/self/maps") as maps:
        mapped = [line for line in maps if "memfd:pympipool-shm" in line]
    opened = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "memfd:pympipool-shm" in os.readlink(f"/proc/self/fd/{fd}"):
                opened.append(fd)
        except OSError:
            pass
    return mapped, opened


def _ours_in_dev_shm():
    """pympipool's names in /dev/shm (the MPI libraries' own segments, such
    as Open MPI's vader segments of a killed rank, are theirs)."""
    return {name for name in os.listdir("/dev/shm") if "pympipool" in name}


def die(a):
    os.kill(os.getpid(), signal.SIGKILL)


def test_rank_death_leaves_no_segment():
    gc.collect()
    assert _memfds() == ([], [])
    shm_before = _ours_in_dev_shm()
    exe = Executor(cores=1)
    endpoint = exe._state.core.endpoint
    assert endpoint.startswith("ipc://")
    private = os.path.dirname(endpoint[len("ipc://") :])
    assert os.path.isdir(private)
    try:
        _ready(exe)
        kept = exe.submit(filled, 3).result()  # a rank's segment mapped here
        assert _base_name(kept) == "ShmView"
        future = exe.submit(die, np.ones(N))
        with pytest.raises(ExecutorBroken):
            future.result(timeout=60)
    finally:
        exe.shutdown(wait=True)
    # The dead rank's segment lives on only in the array that uses it.
    assert np.all(kept == 3.0)
    del kept, future
    gc.collect()
    assert wait_until(lambda: _memfds() == ([], []), 10), _memfds()
    assert _ours_in_dev_shm() - shm_before == set()
    assert wait_until(lambda: not os.path.exists(private), 10), os.listdir(private)


def sums_and_where(a):
    return float(a.sum()), _base_name(a), np.full(N, 5.0)


def test_cores_2_every_rank_maps_the_argument():
    with Executor(cores=2) as exe:
        _ready(exe)
        for _ in range(3):
            results = exe.submit(sums_and_where, np.ones(N)).result()
            assert len(results) == 2
            for total, name, array in results:
                assert total == N and name == "ShmView"
                assert float(array.sum()) == 5 * N  # a rank table's buffers: frames
        # both ranks let the argument go: one segment serves every call
        assert exe._shm_owner.stats() == (1, 0)


def big_on_leader_fail_elsewhere(comm):
    if comm.Get_rank() == 1:
        raise ValueError("rank 1 fails")
    return np.full(N, 9.0)


def big_on_leader(comm):
    return np.full(N, 4.0) if comm.Get_rank() == 0 else None


def test_unsent_leader_result_segment_is_free_again():
    with MPISpawnPool(max_ranks=2, ranks_per_task=2) as pool:
        pool.apply_async(int, (1,)).get()
        assert wait_until(lambda: _shm.all_local(pool._state.hellos, _shm.local_host()), 30)
        for _ in range(3):
            with pytest.raises(ValueError, match="rank 1 fails"):
                pool.apply_async(big_on_leader_fail_elsewhere).get()
        result = pool.apply_async(big_on_leader).get()
        assert _base_name(result) == "ShmView" and float(result[0]) == 4.0
        del result
        # one segment served every call: the unsent ones were given back
        assert pool.apply_async(rank_owner_stats).get() == (1, 0)


def test_other_host_falls_back_to_frames(monkeypatch):
    monkeypatch.setattr(_shm, "local_host", lambda: "elsewhere.invalid")
    with Executor(cores=1) as exe:
        assert exe.submit(int, 1).result() == 1
        time.sleep(0.1)
        name, writable, back = exe.submit(where_and_double, np.ones(N)).result()
        assert name == "Buffer" and writable  # the runtime's frame
        assert _base_name(back) == "Frame" and back.flags.writeable
        assert float(back.sum()) == 2 * N
        assert exe._shm_owner.stats() == (0, 0)
        assert exe.submit(rank_owner_stats).result() is None


def test_bad_segment_table_is_an_error_not_a_crash():
    from pympipool import _core

    with pytest.raises(ValueError, match="bad segment table: segment table has no entries"):
        _core.shm_refs(b"\0\0\0\0", 3)
    table = _core.shm_table([(1, 3, os.getpid(), 1, _core.SHM_DATA_OFFSET, 10)])
    assert _core.shm_refs(table, 3) == [(1, 3, os.getpid(), 1, _core.SHM_DATA_OFFSET, 10)]
    receiver = _shm.Receiver(_core, count_self=False)
    with pytest.raises(ValueError, match="not empty"):
        receiver.buffers([b"payload", b"x", table])
    with pytest.raises(OSError, match="cannot open the shared segment 1 of process"):
        bad = _core.shm_table([(1, 9999, os.getpid(), 1, _core.SHM_DATA_OFFSET, 10)])
        receiver.buffers([b"payload", b"", bad])
    assert pympipool is not None
