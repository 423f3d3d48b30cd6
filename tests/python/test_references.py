"""Nothing of pympipool's keeps a call's arguments or results alive.

As with ``concurrent.futures``: once a call was sent and has completed,
nothing of ours refers to its arguments; a result that a map iterator
yielded, or that ``result()`` returned, is freed as soon as the caller drops
it (and the future).  Checked with ``weakref`` on numpy arrays (large ones
travel without a copy, out of band, in both directions), for ``submit`` and
every map flavour: ``PoolExecutor.map`` (one call per task and chunks),
``Executor.map``, ``Pool.imap`` and ``Pool.imap_unordered``.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from conftest import started, wait_until
from pympipool import Executor, Pool, PoolExecutor

TIMEOUT = 60
N = 200_000  # 1.6 MB of float64: out of band


def make(i, n=N):
    return np.full(n, float(i))


def total(a):
    return float(a.sum())


def dead(ref) -> bool:
    gc.collect()
    return ref() is None


@pytest.fixture(scope="module")
def pool_executor():
    with PoolExecutor(max_workers=2) as exe:
        yield started(exe, 2)


@pytest.fixture(scope="module")
def executor2():
    with Executor(cores=2) as exe:
        yield started(exe, 1)


@pytest.fixture(scope="module")
def pool():
    with Pool(2) as p:
        yield started(p, 2)


def test_submit_pool_executor(pool_executor):
    check_submit(pool_executor, "pool_executor")


def test_submit_executor2(executor2):
    check_submit(executor2, "executor2")


def check_submit(exe, which):
    arg = np.ones(N)
    arg_ref = weakref.ref(arg)
    future = exe.submit(total, arg)
    del arg
    value = future.result(TIMEOUT)
    assert value == (float(N) if which == "pool_executor" else [float(N)] * 2)
    # the argument was sent and the call completed: nothing of ours holds it
    assert dead(arg_ref)

    future = exe.submit(make, 3)
    result = future.result(TIMEOUT)
    arrays = result if which == "executor2" else [result]
    refs = [weakref.ref(a) for a in arrays]
    del future, result, arrays
    assert all(dead(r) for r in refs)


def _drain_and_check(iterator, ordered=True):
    """Consumes iterator; every yielded result must be freed as soon as
    this loop drops it (before the iterator is exhausted)."""
    seen = []
    refs = []
    for value in iterator:
        seen.append(float(value[0]))
        refs.append(weakref.ref(value))
        del value
        assert dead(refs[-1]), f"result {seen[-1]} is still referenced after it was dropped"
    return seen


@pytest.mark.parametrize("chunksize", [1, 3])
def test_pool_executor_map_frees_each_result(pool_executor, chunksize):
    it = pool_executor.map(make, range(8), chunksize=chunksize)
    assert _drain_and_check(it) == [float(i) for i in range(8)]


def test_executor_map_frees_each_result(executor2):
    # Executor(cores=2) returns one array per rank: drop both
    seen = []
    for values in executor2.map(make, range(4)):
        refs = [weakref.ref(v) for v in values]
        seen.append(float(values[0][0]))
        del values
        assert all(dead(r) for r in refs)
    assert seen == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("chunksize", [1, 2])
def test_pool_imap_frees_each_result(pool, ordered, chunksize):
    method = pool.imap if ordered else pool.imap_unordered
    seen = _drain_and_check(method(make, range(6), chunksize=chunksize))
    if ordered:
        assert seen == [float(i) for i in range(6)]
    else:
        assert sorted(seen) == [float(i) for i in range(6)]


def test_pool_executor_map_keeps_no_argument(pool_executor):
    check_map_arguments(pool_executor, "pool_executor")


def test_pool_imap_keeps_no_argument(pool):
    check_map_arguments(pool, "pool")


def check_map_arguments(target, which):
    args = [np.full(N, float(i)) for i in range(6)]
    refs = [weakref.ref(a) for a in args]
    if which == "pool":
        it = target.imap(total, args, chunksize=2)
    else:
        it = target.map(total, args)
    del args
    assert list(it) == [float(i) * N for i in range(6)]
    del it
    assert wait_until(lambda: all(dead(r) for r in refs), 5.0)
