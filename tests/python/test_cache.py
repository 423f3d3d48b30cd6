"""The per-call fast path: the function's own pickle in the TASK payload,
the workers' cache of unpickled functions keyed by those bytes, the reused
picklers on both sides, and the futures' hand-off.

Two kinds of tests: the worker module (runtime/pmp_worker.py, the source the
runtime embeds) loaded into this process, where the cache can be inspected
exactly; and end-to-end tests on a real runtime, where the cache shows as
module state that lives on between calls on one worker.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import pympipool
from conftest import started
from pympipool import _payload, _serialize

WORKER_SOURCE = Path(__file__).resolve().parents[2] / "runtime" / "pmp_worker.py"


# ---- functions and classes of this module (pickled by value) ---------------

_calls = 0
SETTING = "first"


def count_calls():
    """Counts its calls in a global of its own module snapshot."""
    global _calls
    _calls += 1
    return _calls


def read_setting():
    return SETTING


def worker_cache_size():
    """How many functions this rank's worker keeps unpickled."""
    return len(sys.modules["_pympipool_worker"]._fn_cache)


def make_adder(n):
    def add(x):
        return x + n

    return add


class Point:
    """A class defined in a test module: pickled by value."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm2(self):
        return self.x * self.x + self.y * self.y


def make_point(x, y):
    return Point(x, y)


# ---- the worker module, in this process -------------------------------------


@pytest.fixture
def worker():
    """A fresh copy of the worker module (its own cache and picklers)."""
    if not WORKER_SOURCE.is_file():
        pytest.skip("the runtime's worker source is not next to the tests")
    spec = importlib.util.spec_from_file_location(
        "pmp_worker_under_test", WORKER_SOURCE
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(worker, fn, *args, **kwargs):
    """run_task on a payload made by the frontend's own encoder."""
    payload, buffers = _serialize.dumps_call(fn, args, kwargs)
    ok, data, oob = worker.run_task(payload, buffers, 0)
    value = pickle.loads(data, buffers=oob) if ok else None
    return ok, value, data


def test_payload_carries_the_functions_pickle_as_bytes():
    payload, buffers = _serialize.dumps_call(count_calls, (1,), {"k": 2})
    assert buffers == []
    fn_bytes, args, kwargs = pickle.loads(payload)
    assert isinstance(fn_bytes, bytes)
    assert fn_bytes == cloudpickle.dumps(count_calls, protocol=5)
    assert args == (1,) and kwargs == {"k": 2}
    # pickled again at every call: the same snapshot gives the same bytes
    again, _ = _serialize.dumps_call(count_calls, (1,), {"k": 2})
    assert again == payload


def uses_numpy_and_a_class(n):
    return Point(np.float64(n), n).norm2()


def test_the_callers_pickler_pickles_exactly_as_cloudpickle():
    big = np.arange(10_000, dtype=np.float64)
    values = [
        count_calls,
        make_adder(3),
        lambda x, *, y=2: (x, y),
        uses_numpy_and_a_class,
        Point,
        Point(1, 2),
        [make_adder(1), make_adder(2)],  # functions sharing their globals
        {"a": (1, 2.5, "x"), "b": None},
        os.getpid,
        big,
    ]
    _serialize._register_module_of(count_calls)  # this module: by value
    for value in values:
        for _ in range(2):  # a reused pickler must not remember the last dump
            data, buffers = _serialize._dumps(value)
            expected_buffers = []

            def keep(b):
                return _payload.keep_out_of_band(expected_buffers, b)

            expected = cloudpickle.dumps(value, protocol=5, buffer_callback=keep)
            assert data == expected
            assert [bytes(b) for b in buffers] == [bytes(b) for b in expected_buffers]


def test_a_changed_global_changes_the_bytes(monkeypatch):
    first, _ = _serialize.dumps_call(read_setting, (), {})
    monkeypatch.setitem(globals(), "SETTING", "second")
    second, _ = _serialize.dumps_call(read_setting, (), {})
    assert pickle.loads(first)[0] != pickle.loads(second)[0]


def test_a_function_with_large_buffers_is_a_snapshot():
    big = np.arange(20_000, dtype=np.float64)  # 160 kB: out of band as an argument

    def total():
        return float(big.sum())

    expected = float(big.sum())
    payload, buffers = _serialize.dumps_call(total, (), {})
    big[:] = 0  # changed after the submit: the call must not see it
    # the function's pickle is in band, so its bytes are the whole snapshot
    assert buffers == []
    fn_bytes, args, kwargs = pickle.loads(payload)
    assert isinstance(fn_bytes, bytes) and len(fn_bytes) > big.nbytes
    assert pickle.loads(fn_bytes)() == expected


def test_worker_unpickles_a_function_once(worker):
    ok, value, _ = run(worker, count_calls)
    assert ok and value == 1
    assert len(worker._fn_cache) == 1
    (entry,) = worker._fn_cache.values()
    ok, value, _ = run(worker, count_calls)
    assert ok and value == 2  # the same unpickled function, its own globals
    assert list(worker._fn_cache.values()) == [entry]
    assert _calls == 0  # this process's global never moved


def test_worker_caches_signatures_too(worker, monkeypatch):
    calls = []
    real = worker._signature
    monkeypatch.setattr(worker, "_signature", lambda fn: calls.append(fn) or real(fn))
    for _ in range(3):
        assert run(worker, os.getpid)[:2] == (True, os.getpid())
    assert len(calls) == 1  # by-reference functions are cached as well


def test_worker_sees_a_changed_global(worker, monkeypatch):
    assert run(worker, read_setting)[1] == "first"
    monkeypatch.setitem(globals(), "SETTING", "second")
    assert run(worker, read_setting)[1] == "second"
    monkeypatch.setitem(globals(), "SETTING", "first")
    assert run(worker, read_setting)[1] == "first"
    assert len(worker._fn_cache) == 2


def _slot(fn):
    """The function slot (fn's pickle) of a TASK payload for fn."""
    return pickle.loads(_serialize.dumps_call(fn, (), {})[0])[0]


def test_worker_cache_is_a_bounded_lru(worker):
    limit = worker.FN_CACHE_ENTRIES
    adders = [make_adder(n) for n in range(limit + 5)]
    for n, add in enumerate(adders):
        assert run(worker, add, 1)[1] == n + 1
    assert len(worker._fn_cache) == limit
    # the five oldest were evicted
    assert [_slot(a) in worker._fn_cache for a in adders[:6]] == [False] * 5 + [True]
    # a hit makes an entry the newest ...
    assert run(worker, adders[5], 0)[1] == 5
    assert next(reversed(worker._fn_cache)) == _slot(adders[5])
    # ... so the next insertion evicts adders[6], the oldest now
    assert run(worker, adders[0], 0)[1] == 0
    assert len(worker._fn_cache) == limit
    assert _slot(adders[0]) in worker._fn_cache
    assert _slot(adders[5]) in worker._fn_cache
    assert _slot(adders[6]) not in worker._fn_cache


def test_worker_cache_keeps_to_its_byte_budget(worker, monkeypatch):
    size = len(_slot(make_adder(0)))
    monkeypatch.setattr(worker, "FN_CACHE_TOTAL_BYTES", 3 * size + size // 2)
    adders = [make_adder(n) for n in range(10)]
    for add in adders:
        assert run(worker, add, 0)[0]
        assert sum(map(len, worker._fn_cache)) == worker._fn_cache_bytes[0]
        assert worker._fn_cache_bytes[0] <= worker.FN_CACHE_TOTAL_BYTES
    assert list(worker._fn_cache) == [_slot(a) for a in adders[-3:]]


def test_worker_does_not_cache_large_pickles(worker, monkeypatch):
    monkeypatch.setattr(worker, "FN_CACHE_MAX_BYTES", 64)
    assert run(worker, count_calls)[1] == 1
    assert run(worker, count_calls)[1] == 1  # unpickled afresh each time
    assert len(worker._fn_cache) == 0


def test_worker_refuses_a_function_object_in_the_slot(worker):
    # The slot always holds the function's pickle (bytes); anything else is
    # a malformed task, reported as the call's error, and the worker goes on.
    payload = cloudpickle.dumps((make_adder(2), (40,), {}), protocol=5)
    ok, data, oob = worker.run_task(payload, [], 0)
    assert not ok
    exc = _serialize.loads_error([data])
    assert isinstance(exc, TypeError) and "malformed task" in str(exc)
    assert len(worker._fn_cache) == 0
    assert run(worker, count_calls)[0]


def test_worker_does_not_cache_an_unpickling_error(worker, monkeypatch):
    # A function pickled by reference to a module the worker cannot import.
    module = types.ModuleType("pmp_cache_missing_mod")
    exec("def f(x):\n    return x\n", module.__dict__)
    module.f.__module__ = module.__name__
    monkeypatch.setitem(sys.modules, module.__name__, module)
    fn_bytes = pickle.dumps(module.f, protocol=5)
    monkeypatch.delitem(sys.modules, module.__name__)
    payload = pickle.dumps((fn_bytes, (1,), {}), protocol=5)
    for _ in range(2):
        ok, data, _ = worker.run_task(payload, [], 0)
        assert not ok
        exc = _serialize.loads_error([data])
        assert isinstance(exc, ModuleNotFoundError)
        assert "pmp_cache_missing_mod" in str(exc)
    assert len(worker._fn_cache) == 0
    # once the module exists, the same bytes work (nothing stale was kept)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    ok, data, _ = worker.run_task(payload, [], 0)
    assert ok and pickle.loads(data) == 1


def test_worker_result_pickle_equals_cloudpickle(worker):
    big = np.arange(10_000, dtype=np.float64)  # 80 kB: one out-of-band buffer
    values = [1, "text", {"a": [1, 2.5]}, Point(1, 2), make_adder(3), (big, big)]
    for value in values:
        data, oob = worker._dumps(value)
        expected_oob = []
        expected = cloudpickle.dumps(
            value,
            protocol=5,
            buffer_callback=lambda b: _payload.keep_out_of_band(expected_oob, b),
        )
        assert data == expected
        assert [bytes(b) for b in oob] == [bytes(b) for b in expected_oob]
    # the same buffer twice is one frame: the memo of one dump, not of the last
    data, oob = worker._dumps((big, big))
    assert len(oob) == 1


class _Nested:
    """Pickling this pickles again, on the same thread, while the outer dump
    is in progress: the reused pickler must not be re-entered."""

    def __init__(self, dumps):
        self.dumps = dumps

    def __reduce__(self):
        inner, _ = self.dumps(["inner", 1])
        return (pickle.loads, (inner,))


def test_reused_picklers_survive_reentrance(worker):
    for dumps in (worker._dumps, _serialize._dumps):
        data, _ = dumps(("outer", _Nested(dumps), 2))
        assert pickle.loads(data) == ("outer", ["inner", 1], 2)
        data, _ = dumps("after")
        assert pickle.loads(data) == "after"


def test_reused_pickler_recovers_after_a_failure():
    with pytest.raises(Exception):
        _serialize.dumps_call(len, (threading.Lock(),), {})
    payload, _ = _serialize.dumps_call(len, ((1, 2),), {})
    fn_bytes, args, _ = pickle.loads(payload)
    assert pickle.loads(fn_bytes) is len and args == ((1, 2),)


def test_picklers_are_per_thread():
    results, errors = [], []

    def pickle_many(tag):
        try:
            for i in range(300):
                payload, _ = _serialize.dumps_call(make_adder(i), (tag,), {})
                fn_bytes, args, _ = pickle.loads(payload)
                assert pickle.loads(fn_bytes)(0) == i and args == (tag,)
            results.append(tag)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=pickle_many, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(results) == [0, 1, 2, 3]


# ---- end to end ---------------------------------------------------------------


@pytest.fixture(scope="module")
def exe():
    with pympipool.Executor(cores=1) as executor:
        yield started(executor, 1)


def test_same_function_twice_is_unpickled_once_on_the_worker(exe):
    counts = [exe.submit(count_calls).result() for _ in range(3)]
    assert counts[1:] == [counts[0] + 1, counts[0] + 2]
    assert _calls == 0


def test_a_changed_global_is_seen_by_the_next_call(exe, monkeypatch):
    assert exe.submit(read_setting).result() == "first"
    monkeypatch.setitem(globals(), "SETTING", "second")
    assert exe.submit(read_setting).result() == "second"
    monkeypatch.setitem(globals(), "SETTING", "first")
    assert exe.submit(read_setting).result() == "first"


def test_the_worker_cache_stays_bounded(exe):
    futures = [exe.submit(make_adder(n), 1) for n in range(140)]
    assert [f.result() for f in futures] == [n + 1 for n in range(140)]
    assert exe.submit(worker_cache_size).result() == 128


def test_a_function_holding_a_large_array_still_works(exe):
    big = np.arange(50_000, dtype=np.float64)

    def total(scale):
        return float(big.sum()) * scale

    assert exe.submit(total, 2).result() == 2 * float(big.sum())
    assert exe.submit(total, 3).result() == 3 * float(big.sum())


def test_a_returned_instance_of_a_test_module_class_is_that_class(exe):
    point = exe.submit(make_point, 3, 4).result()
    assert type(point) is Point
    assert point.norm2() == 25


def test_a_returned_instance_of_a_main_class_is_that_class(tmp_path):
    """A class defined in __main__ cannot be pickled by reference on the
    worker (its __main__ is another module): the result must still arrive
    as an instance of the caller's own class."""
    script = tmp_path / "main_class.py"
    script.write_text(
        textwrap.dedent(
            """
            import pympipool

            class Local:
                def __init__(self, value):
                    self.value = value

            def make(value):
                return Local(value)

            if __name__ == "__main__":
                with pympipool.Executor(cores=1) as exe:
                    first = exe.submit(make, 41).result()
                    second = exe.submit(make, 42).result()
                assert type(first) is Local and type(second) is Local
                print("values", first.value, second.value)
            """
        )
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert "values 41 42" in done.stdout


def test_pool_executor_keeps_the_cache_per_worker():
    with pympipool.PoolExecutor(max_workers=1) as pool:
        counts = [pool.submit(count_calls).result() for _ in range(3)]
    assert counts == [counts[0], counts[0] + 1, counts[0] + 2]


def test_wait_and_as_completed_see_a_cancelled_future(exe):
    blocker = exe.submit(time.sleep, 1.0)
    held = exe.submit(time.sleep, 0)  # the group holds it behind the blocker
    queued = exe.submit(time.sleep, 0.01)
    assert queued.cancel()
    done, not_done = concurrent.futures.wait([queued], timeout=5)
    assert done == {queued} and not not_done
    assert list(concurrent.futures.as_completed([queued], timeout=5)) == [queued]
    assert queued.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        queued.result()
    assert blocker.result() is None
    assert held.result() is None


def test_shutdown_cancel_futures_notifies_waiters():
    exe = pympipool.Executor(cores=1)
    exe.submit(time.sleep, 0.5)
    queued = [exe.submit(time.sleep, 0.01) for _ in range(3)]
    exe.shutdown(wait=False, cancel_futures=True)
    done, not_done = concurrent.futures.wait(queued, timeout=10)
    assert not not_done and all(f.cancelled() for f in done)
    exe.shutdown(wait=True)


def fail(message):
    raise KeyError(message)


def test_pool_apply_async_without_callbacks_is_delivered_directly():
    with pympipool.Pool(max_workers=1) as pool:
        plain = pool.apply_async(make_point, (1, 2))
        failed = pool.apply_async(fail, ("no such key",))
        threads = []

        def note_thread(value):
            threads.append(threading.current_thread().name)

        with_callback = pool.apply_async(read_setting, callback=note_thread)
        assert plain.get(timeout=60).norm2() == 5 and plain.successful()
        with pytest.raises(KeyError, match="no such key"):
            failed.get(timeout=60)
        assert failed.ready() and not failed.successful()
        assert with_callback.get(timeout=60) == "first"
        assert threads == ["pympipool-results"]  # callbacks: the handler's thread
        assert pool.apply(count_calls) >= 1



class _MyInt(int):
    pass


def add(x, k=0):
    return x + k


PLAIN_ARGUMENTS = [
    (1, 2.5, -3j, True, None, "text", b"bytes", 2**100),
    (),
    ("a" * 100_000, b"b" * 100_000),  # large, still in band
]


@pytest.mark.parametrize("args", PLAIN_ARGUMENTS)
def test_plain_arguments_pickle_exactly_as_cloudpickle(args):
    """Calls whose arguments are numbers, strings, bytes or None take the
    C pickler; the payload is byte for byte cloudpickle's."""
    kwargs = {"k": 1, "s": "x"}
    payload, buffers = _serialize.dumps_call(add, args, kwargs)
    fn_bytes = cloudpickle.dumps(add, protocol=5)
    assert buffers == []
    assert payload == cloudpickle.dumps((fn_bytes, args, kwargs), protocol=5)


def test_other_arguments_still_go_through_cloudpickle():
    """A subclass of a plain type, a lambda or a list is not plain: the
    payload is still what cloudpickle makes, and a lambda arrives intact."""
    fn = lambda y: y + 1  # noqa: E731  pickled by value
    fn_bytes = cloudpickle.dumps(add, protocol=5)
    for args in ((_MyInt(3),), (fn,), ([1, 2],)):
        payload, _ = _serialize.dumps_call(add, args, {"k": [1]})
        assert payload == cloudpickle.dumps((fn_bytes, args, {"k": [1]}), protocol=5)
    _, (sent,), _ = pickle.loads(_serialize.dumps_call(add, (fn,), {})[0])
    assert sent(1) == 2


@pytest.mark.parametrize(
    "value",
    [7, 2.5, 1j, False, None, "text", b"raw", _MyInt(3), [1, "x"], [], [[1]], make_adder(2)],
)
def test_worker_results_pickle_exactly_as_cloudpickle(worker, value):
    data, oob = worker._dumps(value)
    assert oob == []
    assert data == cloudpickle.dumps(value, protocol=5)


def test_worker_fills_parameters_only_for_functions_that_take_them(worker):
    """A function without ``comm`` or an init-dict name is called with the
    arguments as they came; one with an init-dict parameter gets it."""
    assert run(worker, add, 1, k=2)[:2] == (True, 3)
    worker._state["init"] = {"k": 10}
    worker._fn_cache.clear()
    assert run(worker, add, 3)[:2] == (True, 13)
    assert run(worker, add, 3, k=2)[:2] == (True, 5)


@pytest.mark.parametrize(
    "calls",
    [[1, 2.5, "x", None], list(range(3000)), range(5, 500, 7), [], [[1], 2], [(1, 2)], [_MyInt(1)]],
)
def test_map_chunks_pickle_exactly_as_cloudpickle(calls):
    """A map's chunk of plain items (or a range) takes the C pickler; any
    other chunk cloudpickle; the bytes are the same either way."""
    for key in (7, b"function bytes"):
        payload, buffers = _serialize.dumps_keyed(key, calls)
        assert buffers == []
        assert payload == cloudpickle.dumps((key, calls), protocol=5)
    payload, _ = _serialize.dumps_keyed(3, (1, "a"), {"k": 2})
    assert payload == cloudpickle.dumps((3, (1, "a"), {"k": 2}), protocol=5)
