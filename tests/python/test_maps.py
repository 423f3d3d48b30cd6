"""Maps: the MAP / STARMAP chunks and the worker's fast path, and the lazy
maps' bounded read-ahead.

* The worker module (runtime/pmp_worker.py) in this process: a chunk of
  plain items runs as ``list(map(fn, items))`` when nothing needs filling,
  and through the general per-call path otherwise (a parameter named after
  an init-dict entry, a ``comm`` parameter, a time limit), with the same
  results and the same error.
* Real pools: results and order of every map, on both paths; an error in
  the middle of a chunk; ``imap`` / ``imap_unordered`` / ``Executor.map``
  read their input lazily (an endless generator, a generator that waits
  for the consumer), at most the read-ahead beyond what was taken, and a
  break out of a ``with`` block leaves the rest of the input unread and
  unrun; an exception raised by the input itself.
"""

from __future__ import annotations

import importlib.util
import itertools
import pickle
import queue
import threading
import time
from pathlib import Path

import cloudpickle
import pytest

import pympipool
from pympipool import Executor, Pool, PoolExecutor, RemoteTraceback, _core, _serialize

from conftest import started, wait_until

WORKER_SOURCE = Path(__file__).resolve().parents[2] / "runtime" / "pmp_worker.py"
AFTER_SHUTDOWN = "cannot schedule new futures after shutdown"


# ---- functions run on the workers (this module: pickled by value) ------------


def square(i):
    return i * i


def add(a, b=0):
    return a + b


def with_offset(i, offset=0):
    return i + offset


def fail_on_three(i, offset=0):
    if i == 3:
        raise KeyError(f"item {i}")
    return i + offset


def plus_group_size(i, comm):
    return i + comm.Get_size()


def sleep_and_return(seconds, value):
    time.sleep(seconds)
    return value


def init_offset():
    return {"offset": 100}


def make_recorder(path):
    """A function that appends its argument to path (one line per call that
    ran) and returns it."""

    def record(x):
        with open(path, "a") as f:
            f.write(f"{x}\n")
        return x

    return record


class Drawn:
    """An endless input that counts the items drawn from it."""

    def __init__(self):
        self.count = 0

    def __iter__(self):
        for i in itertools.count():
            self.count = i + 1
            yield i


def failing_input(n, error):
    yield from range(n)
    raise error


def lines(path):
    return len(path.read_text().splitlines()) if path.exists() else 0


# ---- the worker module, in this process ---------------------------------------


@pytest.fixture
def worker():
    """A fresh copy of the worker module."""
    if not WORKER_SOURCE.is_file():
        pytest.skip("the runtime's worker source is not next to the tests")
    spec = importlib.util.spec_from_file_location("pmp_worker_maps", WORKER_SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAP = _core.FLAG_CHUNK | _core.FLAG_MAP
STARMAP = _core.FLAG_CHUNK | _core.FLAG_STARMAP


def run_chunk(worker, fn, items, flags):
    """run_task of a chunk carrying fn's pickle and items, as a map sends
    it; returns (ok, value or error record)."""
    fn_bytes, _ = _serialize.dumps_function(fn)
    payload, buffers = _serialize.dumps_keyed(fn_bytes, items)
    ok, data, oob = worker.run_task(payload, buffers, flags)
    return ok, pickle.loads(data, buffers=oob)


@pytest.fixture
def general_calls(worker, monkeypatch):
    """Counts the calls that take the general per-call path."""
    calls = []
    real = worker._call_one
    monkeypatch.setattr(
        worker, "_call_one", lambda entry, args, kwargs: calls.append(args) or real(entry, args, kwargs)
    )
    return calls


def run_init(worker, init):
    worker.run_init(cloudpickle.dumps(init, protocol=5), [])


def test_the_workers_flags_are_the_protocols(worker):
    # pmp_protocol.h defines them; _core exports them, the worker repeats them
    assert (_core.FLAG_MAP, _core.FLAG_STARMAP) == (0x8, 0x10)
    for name in ("FLAG_ALL_RANKS", "FLAG_FN_KEY", "FLAG_CHUNK", "FLAG_MAP", "FLAG_STARMAP"):
        assert getattr(worker, name) == getattr(_core, name), name


def test_a_plain_chunk_runs_as_one_map(worker, general_calls):
    assert run_chunk(worker, square, list(range(6)), MAP) == (True, [0, 1, 4, 9, 16, 25])
    assert run_chunk(worker, add, [(1, 2), (3,), (4, 5)], STARMAP) == (True, [3, 3, 9])
    assert run_chunk(worker, square, range(3, 6), MAP) == (True, [9, 16, 25])
    # a tuple item of a map is one argument, not several
    assert run_chunk(worker, len, [(1, 2), ()], MAP) == (True, [2, 0])
    assert general_calls == []


def test_the_general_path_stops_at_the_first_error(worker, general_calls):
    run_init(worker, lambda: {"offset": 0})
    ok, error = run_chunk(worker, fail_on_three, list(range(6)), MAP)
    assert not ok and error[3] == "KeyError"
    assert general_calls == [(0,), (1,), (2,), (3,)]


def test_parameters_to_fill_take_the_general_path(worker, general_calls):
    assert worker._Callable(plus_group_size).plain is False  # comm
    assert worker._Callable(with_offset).plain is True
    run_init(worker, init_offset)
    assert worker._Callable(with_offset).plain is False
    assert run_chunk(worker, with_offset, [1, 2], MAP) == (True, [101, 102])
    assert run_chunk(worker, with_offset, [(1,), (2, 5)], STARMAP) == (True, [101, 7])
    assert general_calls == [(1,), (2,), (1,), (2, 5)]
    assert run_chunk(worker, square, [3], MAP) == (True, [9])  # no offset: plain
    assert len(general_calls) == 4


def test_an_init_dict_decides_again_for_cached_functions(worker, general_calls):
    assert run_chunk(worker, with_offset, [1], MAP) == (True, [1])
    worker.run_define(7, _serialize.dumps_function(with_offset)[0], [])
    run_init(worker, init_offset)  # after the function was cached and kept
    assert run_chunk(worker, with_offset, [1], MAP) == (True, [101])
    payload, _ = _serialize.dumps_keyed(7, [2])
    ok, data, _ = worker.run_task(payload, [], MAP | _core.FLAG_FN_KEY)
    assert ok and pickle.loads(data) == [102]
    assert len(general_calls) == 2


def test_a_chunks_error_is_its_first_failing_calls_on_both_paths(worker):
    fn_bytes, _ = _serialize.dumps_function(fail_on_three)
    ok, fast = run_chunk(worker, fail_on_three, list(range(6)), MAP)
    assert not ok and worker._function(fn_bytes).plain
    run_init(worker, lambda: {"offset": 0})  # the same calls, on the general path
    ok, general = run_chunk(worker, fail_on_three, list(range(6)), MAP)
    assert not ok and not worker._function(fn_bytes).plain
    # (tag, version, exc_bytes, type_name, message, traceback_text, ...)
    assert fast[3] == general[3] == "KeyError"
    assert fast[4] == general[4] == "'item 3'"
    assert fast[5] == general[5]
    assert fast[5].startswith("Traceback") and "in fail_on_three" in fast[5]
    assert "pmp_worker" not in fast[5]  # the user's function comes first
    assert isinstance(pickle.loads(fast[2]), KeyError)


def test_malformed_map_flags_are_refused(worker):
    ok, error = run_chunk(worker, square, [1], MAP | STARMAP)
    assert not ok and error[3] == "ValueError" and "PMP_FLAG_STARMAP" in error[4]
    payload, _ = _serialize.dumps_call(square, (1,), {})
    ok, data, _ = worker.run_task(payload, [], _core.FLAG_MAP)
    assert not ok and "need PMP_FLAG_CHUNK" in pickle.loads(data)[4]


def test_a_define_reuses_the_unpickled_function(worker):
    fn_bytes, _ = _serialize.dumps_function(square)
    worker.run_define(1, fn_bytes, [])
    worker.run_define(2, fn_bytes, [])
    assert worker._lookup(1) is worker._lookup(2)
    assert len(worker._fn_cache) == 1


# ---- real pools: both paths -----------------------------------------------------


@pytest.fixture(scope="module")
def executor():
    exe = started(PoolExecutor(max_workers=2), 2)
    yield exe
    exe.shutdown(wait=True)


def every_map(pool, executor, fn, items):
    """Every map over items, each in input order (unordered ones sorted)."""
    pairs = [(x, 1) for x in items]
    return {
        "map": pool.map(fn, items),
        "map/3": pool.map(fn, items, chunksize=3),
        "map/1": pool.map(fn, iter(items), chunksize=1),
        "starmap": pool.starmap(fn, pairs, chunksize=2),
        "imap": list(pool.imap(fn, items)),
        "imap/4": list(pool.imap(fn, iter(items), chunksize=4)),
        "imap_unordered": sorted(pool.imap_unordered(fn, items, chunksize=2)),
        "map_async": pool.map_async(fn, items).get(timeout=60),
        "executor.map": list(executor.map(fn, items)),
        "executor.map/3": list(executor.map(fn, iter(items), chunksize=3)),
        "executor.map/2 args": list(executor.map(fn, items, [1] * len(items), chunksize=2)),
    }


def test_every_map_on_the_fast_path(pool, executor):
    items = list(range(23))
    results = every_map(pool, executor, add, items)
    for name, values in results.items():
        expected = [x + 1 for x in items] if "starmap" in name or "args" in name else items
        assert values == expected, name
    assert pool.map(square, range(1000)) == [i * i for i in range(1000)]
    assert pool.map(square, (3, 4)) == [9, 16]
    assert pool.starmap(add, [[1, 2], iter([3])]) == [3, 3]


def test_every_map_with_init_parameters():
    with Pool(max_workers=2, init_function=init_offset) as p:
        with PoolExecutor(max_workers=2, init_function=init_offset) as exe:
            results = every_map(p, exe, with_offset, list(range(11)))
    for name, values in results.items():
        plus = 1 if "starmap" in name or "args" in name else 100
        assert values == [x + plus for x in range(11)], name


def test_every_map_with_a_comm_parameter(pool, executor):
    assert pool.map(plus_group_size, range(5), chunksize=2) == [1, 2, 3, 4, 5]
    assert list(pool.imap(plus_group_size, range(5), chunksize=3)) == [1, 2, 3, 4, 5]
    assert list(executor.map(plus_group_size, range(5))) == [1, 2, 3, 4, 5]
    with Executor(cores=2) as exe:  # every rank's value: single calls, no chunks
        assert list(exe.map(plus_group_size, range(3))) == [[2, 2], [3, 3], [4, 4]]


def test_run_time_max_limits_each_call_of_a_chunk():
    with Pool(max_workers=1, run_time_max=1) as p:
        # four calls of 0.4 s in one chunk: 1.6 s in all, each within the limit
        assert p.starmap(sleep_and_return, [(0.4, i) for i in range(4)], chunksize=4) == [
            0,
            1,
            2,
            3,
        ]
        with pytest.raises(TimeoutError, match="run_time_max"):
            p.starmap(sleep_and_return, [(0, 0), (5, 1), (0, 2)], chunksize=3)
        assert p.map(square, range(4), chunksize=4) == [0, 1, 4, 9]


def test_an_error_in_the_middle_of_a_chunk(pool, executor):
    with pytest.raises(KeyError, match="item 3") as fast:
        pool.map(fail_on_three, range(8), chunksize=8)
    it = pool.imap(fail_on_three, range(8), chunksize=3)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(KeyError, match="item 3"):
        next(it)  # the chunk [3, 4, 5] failed as a whole
    assert list(it) == [6, 7]
    results = executor.map(fail_on_three, range(8), chunksize=2)
    assert [next(results) for _ in range(2)] == [0, 1]
    with pytest.raises(KeyError, match="item 3"):
        next(results)
    # The general path (a time limit) gives the same error and traceback.
    with Pool(max_workers=1, run_time_max=60) as p:
        with pytest.raises(KeyError, match="item 3") as general:
            p.map(fail_on_three, range(8), chunksize=8)
    texts = [str(info.value.__cause__) for info in (fast, general)]
    assert all(isinstance(info.value.__cause__, RemoteTraceback) for info in (fast, general))
    # "Rank r of s on host:", then the worker's traceback text
    assert texts[0].split("\n", 1)[1] == texts[1].split("\n", 1)[1]
    assert "in fail_on_three" in texts[0]


def test_small_maps_carry_their_function_and_large_ones_define_it(pool, monkeypatch):
    state = pool._state
    defined = []
    original = state.define_key
    monkeypatch.setattr(state, "define_key", lambda k, *a: (defined.append(k), original(k, *a)))
    assert pool.map(square, range(10)) == [i * i for i in range(10)]
    it = pool.imap(square, [1, 2])
    assert not pool._state.feeds  # a small input in memory: sent at once, no feeder
    assert list(it) == [1, 4]
    assert sorted(pool.imap_unordered(square, (3, 4))) == [9, 16]
    assert defined == []
    assert pool.map(square, range(3000), chunksize=1)[-1] == 2999**2
    assert list(pool.imap(square, (i for i in range(3)))) == [0, 1, 4]  # length unknown
    assert len(defined) == 2


# ---- lazy maps: the bounded read-ahead ------------------------------------------


def test_imap_over_an_endless_input_returns_at_once(pool):
    drawn = Drawn()
    it = pool.imap(square, drawn)
    assert [next(it) for _ in range(5)] == [0, 1, 4, 9, 16]
    time.sleep(0.3)  # time to read further, if it did
    assert 5 <= drawn.count <= 5 + pool._read_ahead
    it.close()
    with pytest.raises(StopIteration):
        next(it)
    drawn = Drawn()
    unordered = pool.imap_unordered(square, drawn, chunksize=3)
    first = [next(unordered) for _ in range(6)]
    assert len(set(first)) == 6 and all(x in [i * i for i in range(drawn.count)] for x in first)
    del unordered  # dropping the iterator stops its input
    assert wait_until(lambda: not pool._state.feeds, 10)
    assert pool.map(square, range(3)) == [0, 1, 4]


@pytest.mark.parametrize("chunksize", [1, 4])
def test_a_break_leaves_the_rest_of_the_input_unread_and_unrun(tmp_path, chunksize):
    path = tmp_path / "calls"
    drawn = Drawn()
    with Pool(max_workers=2) as p:
        for taken, value in enumerate(p.imap(make_recorder(path), drawn, chunksize=chunksize), 1):
            assert value == taken - 1
            if taken == 10:
                break
        window = p._read_ahead
    # leaving the block returned: the endless input was not consumed
    bound = (-(-taken // chunksize) + window) * chunksize
    assert taken <= drawn.count <= bound
    assert taken <= lines(path) <= drawn.count


@pytest.mark.parametrize("interface", ["PoolExecutor", "Executor"])
def test_executor_map_after_a_break(tmp_path, interface):
    path = tmp_path / "calls"
    drawn = Drawn()
    make = {"PoolExecutor": lambda: PoolExecutor(max_workers=2), "Executor": Executor}
    with make[interface]() as exe:
        for value in exe.map(make_recorder(path), drawn):
            if value == 9:
                break
        window = exe._read_ahead
    assert 10 <= drawn.count <= 10 + window
    assert 10 <= lines(path) <= drawn.count  # the rest was never run
    with make[interface]() as exe:
        it = exe.map(square, Drawn())  # kept: shutdown stops it
        assert next(it) == 0
    rest = []
    with pytest.raises(RuntimeError, match=AFTER_SHUTDOWN):
        for value in it:
            rest.append(value)
    assert rest == [i * i for i in range(1, len(rest) + 1)]
    assert len(rest) <= window


def test_the_input_is_read_beside_the_consumer(pool, executor):
    # The input waits for what the consumer does with the results: it is
    # read in a thread of its own, not in the consumer's next().
    for make_map in (
        lambda source: pool.imap(square, source),
        lambda source: pool.imap_unordered(square, source),
        lambda source: executor.map(square, source),
    ):
        requests = queue.Queue()
        requests.put(1)

        def source():
            while True:
                item = requests.get(timeout=60)
                if item is None:
                    return
                yield item

        results = []
        for value in make_map(source()):
            results.append(value)
            requests.put(len(results) + 1 if len(results) < 5 else None)
        assert results == [1, 4, 9, 16, 25]


def test_an_exception_of_the_input_ends_the_map_in_its_place(pool, executor):
    for chunksize in (1, 2):
        it = pool.imap(square, failing_input(5, ValueError("bad input")), chunksize=chunksize)
        assert [next(it) for _ in range(5)] == [0, 1, 4, 9, 16]
        with pytest.raises(ValueError, match="bad input"):
            next(it)
        with pytest.raises(StopIteration):
            next(it)
    seen, errors = [], []
    it = pool.imap_unordered(square, failing_input(4, ValueError("bad input")))
    while True:
        try:
            seen.append(next(it))
        except ValueError as exc:
            errors.append(exc)
        except StopIteration:
            break
    assert sorted(seen) == [0, 1, 4, 9] and [str(e) for e in errors] == ["bad input"]
    results = executor.map(add, failing_input(3, ValueError("bad input")), itertools.count())
    assert [next(results) for _ in range(3)] == [0, 2, 4]
    with pytest.raises(ValueError, match="bad input"):
        next(results)
    assert list(results) == []
    # An eager map reads its input first: the error is the call's own.
    with pytest.raises(ValueError, match="bad input"):
        pool.map(square, failing_input(3, ValueError("bad input")))
    assert pool.map(square, [5]) == [25]


def test_an_unpicklable_item_fails_its_chunk_and_imap_goes_on(pool):
    it = pool.imap(square, [1, threading.Lock(), 3, 4], chunksize=2)
    with pytest.raises(TypeError, match="lock"):
        next(it)  # the chunk [1, lock] as a whole, as in multiprocessing
    assert list(it) == [9, 16]


def test_close_lets_imap_read_the_rest_of_its_input():
    p = Pool(max_workers=2)
    ordered = p.imap(square, range(100), chunksize=2)  # beyond the read-ahead
    unordered = p.imap_unordered(square, (i for i in range(50)))
    p.close()
    p.join()
    assert list(ordered) == [i * i for i in range(100)]
    assert sorted(unordered) == [i * i for i in range(50)]


def test_terminate_ends_a_lazy_map(tmp_path):
    path = tmp_path / "calls"
    p = Pool(max_workers=2)
    it = p.imap(make_recorder(path), Drawn())
    assert next(it) == 0
    p.terminate()
    p.join()
    with pytest.raises(pympipool.ExecutorBroken, match="terminated"):
        list(it)
    assert lines(path) <= 1 + p._read_ahead
