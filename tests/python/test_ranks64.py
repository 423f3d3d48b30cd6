"""Hundreds of ranks, scaled down to this machine: 64 ranks on 2 cores.

``PoolExecutor(max_workers=64)`` and ``MPISpawnPool(max_ranks=64,
ranks_per_task=2)`` run oversubscribed (``oversubscribe=True``, which Open
MPI needs and MPICH ignores).  The checks are those of issue 10's "hundreds
of ranks": every worker (for the spawn pool every rank of every group)
receives work, told apart by process id and MPI rank; the results are
correct; and shutdown leaves nothing behind, which the conftest's leftover
check asserts after each test.  The tasks sleep a little, so that a worker
that is idle is always there to take the next call and none of them can
take all of one round.  CTest gives this file an entry of its own
(``py.ranks64``, tests/CMakeLists.txt): 64 embedded interpreters starting on
two cores take a while.
"""

from __future__ import annotations

import os
import time

from conftest import started

from pympipool import MPISpawnPool, PoolExecutor

RANKS = 64


def world_rank() -> int:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return -1


def square_where(x):
    time.sleep(0.2)
    return x * x, os.getpid(), world_rank()


def group_where(x, comm):
    time.sleep(0.2)
    ranks = comm.allgather((os.getpid(), world_rank()))
    return x + comm.allreduce(1), comm.Get_size(), ranks


def test_pool_executor_64_workers_all_get_work():
    t0 = time.monotonic()
    with started(PoolExecutor(max_workers=RANKS, oversubscribe=True), RANKS, 100) as exe:
        up = time.monotonic() - t0
        seen = {}
        rounds = 0
        # Every group is up, so one round of 64 calls of 0.2 s reaches every
        # worker by load; a second round is allowed for a scheduler that
        # fills windows unevenly, not more.
        while len(seen) < RANKS and rounds < 2:
            xs = range(rounds * RANKS, (rounds + 1) * RANKS)
            out = list(exe.map(square_where, xs))
            assert [o[0] for o in out] == [x * x for x in xs]
            for _, pid, rank in out:
                seen.setdefault(rank, pid)
            rounds += 1
    total = time.monotonic() - t0
    print(f"64 workers: up in {up:.1f} s, {rounds} round(s), {total:.1f} s in all")
    assert sorted(seen) == list(range(RANKS)), sorted(seen)
    assert len(set(seen.values())) == RANKS  # 64 processes, not 64 names for fewer


def test_spawn_pool_64_ranks_in_pairs_all_get_work():
    t0 = time.monotonic()
    pool = started(MPISpawnPool(max_ranks=RANKS, ranks_per_task=2, oversubscribe=True),
                   RANKS // 2, 100)
    try:
        up = time.monotonic() - t0
        seen = {}
        rounds = 0
        while len(seen) < RANKS and rounds < 2:
            xs = range(rounds * RANKS // 2, (rounds + 1) * RANKS // 2)
            out = pool.map(group_where, xs)
            assert [o[0] for o in out] == [x + 2 for x in xs]
            assert all(o[1] == 2 for o in out)
            for _, _, ranks in out:
                (pid0, r0), (pid1, r1) = ranks
                assert r1 == r0 + 1 and r0 % 2 == 0, ranks  # the groups are pairs
                seen[r0], seen[r1] = pid0, pid1
            rounds += 1
    finally:
        pool.close()
        pool.join()
    total = time.monotonic() - t0
    print(f"64 ranks in 32 groups: up in {up:.1f} s, {rounds} round(s), {total:.1f} s in all")
    assert sorted(seen) == list(range(RANKS)), sorted(seen)
    assert len(set(seen.values())) == RANKS
