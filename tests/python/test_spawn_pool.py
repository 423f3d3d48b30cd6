"""pympipool.MPISpawnPool: groups of ranks_per_task ranks fed by load, the
group communicator, one (leader's) result per input in input order, the Pool
interface, aliases and bad input."""

import multiprocessing
import os
import time

import pytest

import pympipool
from pympipool import ExecutorBroken, MPISpawnPool

from conftest import started

NOT_RUNNING = "Pool not running"


# ---- functions run on the groups ----------------------------------------------------


def calc(i, comm):
    return i, comm.Get_size(), comm.Get_rank()


def group_sum(i, comm):
    # Every rank of the group takes part; the leader's value is returned.
    return comm.allreduce(i * (comm.Get_rank() + 1))


def world_rank():
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return -1


def leader_world_rank_after(seconds, comm):
    time.sleep(seconds)
    return comm.bcast(world_rank(), root=0), comm.Get_size()


def add(a, b=0):
    return a + b


def fail_on_two(i, comm):
    if i == 2:
        raise ZeroDivisionError(f"item {i} on rank {comm.Get_rank()}")
    return i


def no_comm(i):
    return i * 10


@pytest.fixture(scope="module")
def spawn_pool():
    p = started(MPISpawnPool(max_ranks=4, ranks_per_task=2, oversubscribe=True), 2)
    yield p
    p.terminate()
    p.join()


def test_documented_example():
    with MPISpawnPool(cores=4, cores_per_task=2, oversubscribe=True) as p:
        result = p.map(func=calc, iterable=[1, 2, 3, 4])
    assert result == [(1, 2, 0), (2, 2, 0), (3, 2, 0), (4, 2, 0)]


def test_one_leader_result_per_input_in_order(spawn_pool):
    assert spawn_pool.map(group_sum, range(8)) == [3 * i for i in range(8)]
    assert spawn_pool.map(group_sum, range(8), chunksize=3) == [3 * i for i in range(8)]
    assert spawn_pool.map(no_comm, [1, 2, 3]) == [10, 20, 30]
    assert spawn_pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7]


def test_both_groups_are_fed(spawn_pool):
    results = spawn_pool.map(leader_world_rank_after, [0.5] * 4, chunksize=1)
    assert {size for _, size in results} == {2}
    leaders = {rank for rank, _ in results}
    assert len(leaders) == 2, results


def test_pool_interface(spawn_pool):
    assert spawn_pool.apply(calc, (7,)) == (7, 2, 0)
    result = spawn_pool.apply_async(group_sum, (2,))
    assert result.get(60) == 6 and result.successful()
    assert spawn_pool.map_async(no_comm, [1, 2]).get(60) == [10, 20]
    assert spawn_pool.starmap_async(add, [(1, 1)]).get(60) == [2]
    assert list(spawn_pool.imap(calc, [1, 2, 3])) == [(1, 2, 0), (2, 2, 0), (3, 2, 0)]
    assert sorted(spawn_pool.imap_unordered(no_comm, range(4))) == [0, 10, 20, 30]
    with pytest.raises(multiprocessing.TimeoutError):
        spawn_pool.apply_async(leader_world_rank_after, (1.0,)).get(timeout=0.05)


def test_errors_keep_their_class_and_the_pool_works(spawn_pool):
    with pytest.raises(ZeroDivisionError, match="item 2 on rank 0"):
        spawn_pool.map(fail_on_two, range(4))
    assert spawn_pool.map(calc, [5]) == [(5, 2, 0)]


def test_map_over_a_non_iterable(spawn_pool):
    with pytest.raises(TypeError, match="not iterable"):
        spawn_pool.map(calc, 3)
    assert spawn_pool.map(calc, [1]) == [(1, 2, 0)]


def test_single_rank_groups_and_one_big_group():
    with MPISpawnPool(max_ranks=2) as p:
        assert p.map(calc, [1, 2, 3]) == [(1, 1, 0), (2, 1, 0), (3, 1, 0)]
    with MPISpawnPool(max_ranks=3, ranks_per_task=3, oversubscribe=True) as p:
        assert p.map(group_sum, [1, 2]) == [6, 12]


def test_close_join_and_terminate(new_processes):
    p = MPISpawnPool(max_ranks=2, ranks_per_task=2)
    result = p.map_async(group_sum, [1, 2])
    p.close()
    with pytest.raises(ValueError, match=NOT_RUNNING):
        p.map(calc, [1])
    p.join()
    assert result.get(0) == [3, 6]
    assert new_processes() == {}

    p = MPISpawnPool(cores=2, cores_per_task=2)
    late = p.apply_async(leader_world_rank_after, (30,))
    time.sleep(0.5)
    p.terminate()
    with pytest.raises(ExecutorBroken):
        late.get(30)
    p.join()

    p = MPISpawnPool(max_ranks=2, ranks_per_task=1)
    assert p.map(no_comm, [1]) == [10]
    p.shutdown(wait=True)
    with pytest.raises(ValueError, match=NOT_RUNNING):
        p.apply(no_comm, (1,))
    assert new_processes() == {}


# ---- bad input: all before launch ----------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(max_ranks=3, ranks_per_task=2), ValueError, "multiple"),
        (dict(cores=4, cores_per_task=3), ValueError, "cores.*multiple.*cores_per_task"),
        (dict(max_ranks=2, ranks_per_task=4), ValueError, "ranks_per_task.*exceed"),
        (dict(cores=1, cores_per_task=2), ValueError, "cores_per_task.*exceed"),
        (dict(max_ranks=0), ValueError, "max_ranks"),
        (dict(max_ranks=-4), ValueError, "max_ranks"),
        (dict(max_ranks=2.0), TypeError, "max_ranks"),
        (dict(max_ranks=True), TypeError, "max_ranks"),
        (dict(cores=0), ValueError, "cores"),
        (dict(cores="4"), TypeError, "cores"),
        (dict(ranks_per_task=0), ValueError, "ranks_per_task"),
        (dict(ranks_per_task=-1), ValueError, "ranks_per_task"),
        (dict(ranks_per_task=None), TypeError, "ranks_per_task"),
        (dict(ranks_per_task=False), TypeError, "ranks_per_task"),
        (dict(cores_per_task=0), ValueError, "cores_per_task"),
        (dict(cores_per_task=1.0), TypeError, "cores_per_task"),
        (dict(max_ranks=2, cores=2), TypeError, "cores.*max_ranks"),
        (dict(ranks_per_task=1, cores_per_task=1), TypeError, "cores_per_task.*ranks_per_task"),
        (dict(oversubscribe=1), TypeError, "oversubscribe"),
        (dict(cwd="/no/such/dir"), FileNotFoundError, "cwd"),
    ],
)
def test_bad_input_before_launch(kwargs, error, match, new_processes):
    with pytest.raises(error, match=match):
        MPISpawnPool(**kwargs)
    assert new_processes() == {}


def test_exported():
    assert pympipool.MPISpawnPool is MPISpawnPool
