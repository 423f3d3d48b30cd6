"""What a call sees of data the caller changes after ``submit``.

* A function's globals are a snapshot taken at ``submit``: even a large
  array it captured (which used to travel without a copy) is copied into
  the function's pickle, so a change made afterwards never reaches the
  call.
* Arguments: large buffers (numpy arrays of 64 KiB or more) travel without
  a copy and are read until the call's future is done.  The test proves it
  by changing an array while its call is still queued in the frontend (an
  ``Executor`` holds two calls, the running one and the next): the call
  sees the change.  With
  ``zero_copy=False`` the buffers are copied at ``submit`` and the call sees
  the array as it was.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import started, wait_until
from pympipool import Executor, Pool, PoolExecutor

TIMEOUT = 60
N = 100_000  # 800 kB: out of band

BIG = np.zeros(N)


def total_of_big():
    return float(BIG.sum())


def total(a):
    return float(a.sum())


@pytest.fixture(scope="module", params=[True, False], ids=["zero_copy", "copy"])
def executor(request):
    with Executor(cores=1, zero_copy=request.param) as exe:
        exe.zero_copy = request.param
        yield started(exe, 1)


def test_function_globals_are_a_snapshot(executor):
    BIG[:] = 1.0
    future = executor.submit(total_of_big)
    BIG[:] = 2.0  # after submit: must not be seen
    assert future.result(TIMEOUT) == float(N)
    # and the next submit takes a new snapshot
    assert executor.submit(total_of_big).result(TIMEOUT) == 2.0 * N


def test_map_function_globals_are_a_snapshot():
    with PoolExecutor(max_workers=1) as exe:
        BIG[:] = 3.0
        results = exe.map(lambda i: total_of_big() + i, [0, 1])
        BIG[:] = 4.0
        assert list(results) == [3.0 * N, 3.0 * N + 1]


def test_argument_buffers(executor):
    arg = np.ones(N)
    blocker = executor.submit(time.sleep, 0.5)  # the running call ...
    executor.submit(time.sleep, 0)  # ... and the one the group holds behind it
    future = executor.submit(total, arg)
    # the blockers are sent, the call is still queued in the frontend
    assert wait_until(lambda: len(executor) == 1, 0.4)
    arg[:] = 5.0
    assert not blocker.done()
    blocker.result(TIMEOUT)
    if executor.zero_copy:
        # read until the future is done: the queued call sees the change
        assert future.result(TIMEOUT) == 5.0 * N
    else:
        # copied at submit: the call sees the array as it was
        assert future.result(TIMEOUT) == float(N)


def test_zero_copy_must_be_a_bool():
    with pytest.raises(TypeError, match="zero_copy must be a bool"):
        PoolExecutor(max_workers=1, zero_copy=1)
    with pytest.raises(TypeError, match="zero_copy must be a bool"):
        Pool(1, zero_copy="no")


# ---- the pickle of a function is made once while it cannot differ ----------

SCALE = 2
COUNTS = [1]


def scaled(x):
    return x * SCALE


def counted(x):
    return x + COUNTS[0]


def helper(x):
    return x + 1


def calls_helper(x):
    return helper(x) * 10


def test_rebound_globals_are_seen(executor):
    global SCALE, helper
    SCALE = 2
    assert executor.submit(scaled, 5).result(TIMEOUT) == 10
    SCALE = 3  # rebinding: a new fingerprint, a new pickle
    assert executor.submit(scaled, 5).result(TIMEOUT) == 15
    original = helper
    try:
        assert executor.submit(calls_helper, 1).result(TIMEOUT) == 20

        def helper(x):  # noqa: F811  # redefined between two submits
            return x + 2

        assert executor.submit(calls_helper, 1).result(TIMEOUT) == 30
    finally:
        helper = original


def test_changed_in_place_is_seen(executor):
    COUNTS[0] = 1
    assert executor.submit(counted, 1).result(TIMEOUT) == 2
    COUNTS[0] = 5  # the list is mutable: never cached, pickled again
    assert executor.submit(counted, 1).result(TIMEOUT) == 6


def test_pickle_reused_only_while_it_cannot_differ():
    from pympipool import _snapshot

    dumps = []

    def dump(fn):
        dumps.append(fn)
        return b"pickle %d" % len(dumps)

    global SCALE
    SCALE = 2
    first = _snapshot.cached_pickle(scaled, dump)
    assert _snapshot.cached_pickle(scaled, dump) is first
    SCALE = 4
    assert _snapshot.cached_pickle(scaled, dump) == b"pickle 2"
    assert _snapshot.fingerprint(counted) is None  # depends on a list
    assert _snapshot.cached_pickle(counted, dump) == b"pickle 3"
    assert _snapshot.cached_pickle(counted, dump) == b"pickle 4"
    assert _snapshot.fingerprint(calls_helper) is not None
    assert _snapshot.fingerprint(lambda: np.zeros(1)) is not None  # a module
    assert _snapshot.fingerprint(lambda: BIG) is None  # an array
    assert _snapshot.fingerprint(lambda: Pool) is not None  # an importable class


def test_cache_lets_go_of_the_function():
    import gc
    import weakref

    from pympipool import _snapshot

    fn = eval("lambda x: x + 1")
    ref = weakref.ref(fn)
    _snapshot.cached_pickle(fn, lambda f: b"x")
    del fn
    gc.collect()
    assert ref() is None
