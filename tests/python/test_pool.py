"""pympipool.Pool: the multiprocessing.pool.Pool interface, its result
objects and callbacks, chunks and keyed functions, lifetime, progress bar,
aliases and bad input."""

import multiprocessing
import sys
import threading
import time

import numpy as np
import pytest

import pympipool
from pympipool import AsyncResult, ExecutorBroken, MapResult, Pool, RemoteTraceback

from conftest import make_unimportable_function, wait_until

NOT_RUNNING = "Pool not running"


# ---- functions run on the workers -----------------------------------------------


def square(i):
    return i * i


def calc(i):
    return np.array(i**2)


def add(a, b=0, c=0):
    return a + b + c


def sleep_and_return(seconds, value):
    time.sleep(seconds)
    return value


def nap(seconds):
    time.sleep(seconds)
    return seconds


def fail_on_three(i):
    if i == 3:
        raise KeyError(f"item {i}")
    return i


class CustomError(Exception):
    pass


def raise_custom(i):
    raise CustomError(i)


def worker_pid(_=None):
    import os

    return os.getpid()


def init_offset():
    return {"offset": 100}


def with_offset(i, offset=0):
    return i + offset


PICKLES = []


class CountedFunction:
    """A callable that records, in this process, every time it is pickled."""

    def __call__(self, x):
        return x + 1

    def __getstate__(self):
        PICKLES.append(1)
        return {}

    def __setstate__(self, state):
        pass


# ---- the map family -------------------------------------------------------------


def test_documented_example():
    with Pool(cores=2) as p:
        result = p.map(func=calc, iterable=[1, 2, 3, 4])
    assert repr(result) == "[array(1), array(4), array(9), array(16)]"


def test_map_and_starmap(pool):
    assert pool.map(square, range(10)) == [i * i for i in range(10)]
    assert pool.map(square, range(10), chunksize=3) == [i * i for i in range(10)]
    assert pool.map(square, iter(range(5))) == [0, 1, 4, 9, 16]  # no len()
    assert pool.map(square, []) == []
    assert pool.starmap(add, [(1, 2), (3, 4, 5), [6]]) == [3, 12, 6]
    assert pool.starmap(add, [(i, i) for i in range(9)], chunksize=4) == [
        2 * i for i in range(9)
    ]


def test_both_workers_serve_a_map(pool):
    pids = pool.map(_sleep_then_pid, [0.3] * 4, chunksize=1)
    assert len(set(pids)) == 2


def test_default_chunksize_is_multiprocessings(pool):
    for n in [0, 1, 7, 8, 9, 100, 1001]:
        expected, extra = divmod(n, 2 * 4)
        expected += bool(extra)
        assert pool._chunksize(None, n) == max(expected, 1)


def test_map_pickles_the_function_once_and_forgets_it(pool, monkeypatch):
    # Tasks that would carry more of the function than this send it once
    # to every worker (DEFINE) instead: here, every map does.
    monkeypatch.setattr(pympipool._maps, "INLINE_FUNCTION_BYTES", 0)
    state = pool._state
    defined, forgotten = [], []
    original_define, original_forget = state.define_key, state.forget
    monkeypatch.setattr(
        state, "define_key", lambda k, *a: (defined.append(k), original_define(k, *a))
    )
    monkeypatch.setattr(state, "forget", lambda k: (forgotten.append(k), original_forget(k)))
    PICKLES.clear()
    assert pool.map(CountedFunction(), range(40), chunksize=3) == list(range(1, 41))
    assert len(PICKLES) == 1
    assert len(defined) == 1
    assert wait_until(lambda: forgotten == defined, 10)
    PICKLES.clear()
    assert list(pool.imap(CountedFunction(), range(10))) == list(range(1, 11))
    assert len(PICKLES) == 1


def test_map_raises_the_items_exception_and_the_pool_stays_usable(pool):
    with pytest.raises(KeyError, match="item 3") as info:
        pool.map(fail_on_three, range(8))
    assert isinstance(info.value.__cause__, RemoteTraceback)
    with pytest.raises(CustomError):
        pool.map(raise_custom, range(3), chunksize=1)
    with pytest.raises(KeyError):
        pool.starmap(fail_on_three, [(i,) for i in range(5)])
    assert pool.map(square, range(4)) == [0, 1, 4, 9]


def test_imap_in_order_and_unordered(pool):
    assert list(pool.imap(square, range(7))) == [i * i for i in range(7)]
    assert list(pool.imap(square, range(7), chunksize=3)) == [i * i for i in range(7)]
    assert list(pool.imap(square, (i for i in range(3)))) == [0, 1, 4]
    assert list(pool.imap(square, [])) == []
    # Unordered: the quick ones come before the slow one.
    items = [(2.0, "slow"), (0.1, "a"), (0.1, "b"), (0.1, "c")]
    order = list(pool.imap_unordered(_star_sleep, items))
    assert sorted(order) == ["a", "b", "c", "slow"]
    # (The slow one's worker may hold one more task behind it: depth 2.)
    assert order.index("slow") >= 2, order
    assert sorted(pool.imap_unordered(square, range(9), chunksize=2)) == sorted(
        i * i for i in range(9)
    )


def _star_sleep(item):
    return sleep_and_return(*item)


def test_imap_next_timeout_and_errors_in_place(pool):
    it = pool.imap(_star_sleep, [(1.0, "a"), (0,)])
    with pytest.raises(multiprocessing.TimeoutError):
        it.next(timeout=0.1)
    assert it.next(timeout=60) == "a"
    with pytest.raises(TypeError):  # sleep_and_return(0): a missing argument
        it.next(timeout=60)
    with pytest.raises(StopIteration):
        it.next(timeout=1)
    it = pool.imap(fail_on_three, range(6))
    assert [next(it), next(it), next(it)] == [0, 1, 2]
    with pytest.raises(KeyError):
        next(it)
    assert list(it) == [4, 5]  # iteration goes on after the failed item


def test_apply_and_apply_async(pool):
    assert pool.apply(add, (1, 2), {"c": 3}) == 6
    assert pool.apply(add, (5,)) == 5
    result = pool.apply_async(sleep_and_return, (0.5, "late"))
    assert isinstance(result, AsyncResult)
    assert not result.ready()
    with pytest.raises(ValueError, match="not ready"):
        result.successful()
    with pytest.raises(multiprocessing.TimeoutError):
        result.get(timeout=0.05)
    result.wait(60)
    assert result.ready() and result.successful()
    assert result.get(timeout=0) == "late"
    failed = pool.apply_async(raise_custom, (1,))
    failed.wait(60)
    assert failed.ready() and not failed.successful()
    with pytest.raises(CustomError):
        failed.get()
    with pytest.raises(TypeError, match="kwds"):
        pool.apply_async(add, (1,), [("b", 2)])


def test_callbacks_run_in_the_result_thread_before_get_returns(pool):
    seen = []

    def callback(value):
        seen.append(("ok", value, threading.current_thread().name))

    def error_callback(exc):
        seen.append(("error", exc, threading.current_thread().name))

    assert pool.apply_async(add, (2, 3), callback=callback).get(60) == 5
    assert seen == [("ok", 5, "pympipool-results")]
    seen.clear()
    result = pool.map_async(square, range(5), callback=callback, error_callback=error_callback)
    assert isinstance(result, MapResult)
    assert result.get(60) == [0, 1, 4, 9, 16]
    assert seen == [("ok", [0, 1, 4, 9, 16], "pympipool-results")]
    seen.clear()
    result = pool.starmap_async(add, [(1, 1), (2, 2)], callback=callback)
    assert result.get(60) == [2, 4]
    assert seen[0][:2] == ("ok", [2, 4])
    seen.clear()
    result = pool.map_async(
        fail_on_three, range(6), chunksize=1, callback=callback, error_callback=error_callback
    )
    with pytest.raises(KeyError):
        result.get(60)
    assert not result.successful()
    ((kind, exc, thread),) = seen
    assert kind == "error" and isinstance(exc, KeyError) and thread == "pympipool-results"
    seen.clear()
    with pytest.raises(CustomError):
        pool.apply_async(raise_custom, (1,), error_callback=error_callback).get(60)
    assert seen[0][0] == "error" and isinstance(seen[0][1], CustomError)
    with pytest.raises(TypeError, match="callback"):
        pool.apply_async(add, (1,), callback=3)


def test_a_failing_callback_does_not_stop_later_results(pool, capfd):
    def bad_callback(value):
        raise RuntimeError("callback failed on purpose")

    assert pool.apply_async(add, (1,), callback=bad_callback).get(60) == 1
    assert pool.map_async(square, [3], callback=bad_callback).get(60) == [9]
    assert pool.apply(add, (4,)) == 4
    assert "callback failed on purpose" in capfd.readouterr().err


def test_empty_map_async_is_ready_at_once(pool):
    result = pool.map_async(square, [])
    assert result.ready() and result.successful() and result.get(0) == []


def test_init_function_fills_parameters():
    with Pool(max_workers=2, init_function=init_offset) as p:
        assert p.map(with_offset, range(5)) == [100, 101, 102, 103, 104]


# ---- bad input -------------------------------------------------------------------


def test_map_over_a_non_iterable_sends_nothing(pool, monkeypatch):
    sent = []
    monkeypatch.setattr(pool._state, "define_key", lambda *a: sent.append(a))
    monkeypatch.setattr(pool._state, "submit", lambda *a: sent.append(a))
    for method in (pool.map, pool.map_async, pool.imap, pool.imap_unordered, pool.starmap):
        with pytest.raises(TypeError, match="not iterable"):
            method(square, 5)
    with pytest.raises(TypeError, match="not iterable"):
        pool.starmap(add, [(1, 2), 3])
    with pytest.raises(ValueError, match="Chunksize"):
        pool.map(square, [1], chunksize=0)
    with pytest.raises(ValueError, match="Chunksize"):
        pool.imap(square, [1], chunksize=-1)
    with pytest.raises(TypeError, match="chunksize"):
        pool.map(square, [1], chunksize="2")
    with pytest.raises(TypeError, match="not callable"):
        pool.map(None, [1])
    with pytest.raises(TypeError):
        pool.map(square, [threading.Lock()])
    assert sent == []


def test_pool_still_works_after_bad_input(pool):
    with pytest.raises(TypeError):
        pool.map(square, 5)
    assert pool.map(square, [2]) == [4]


@pytest.mark.parametrize(
    "value, error",
    [(0, ValueError), (-1, ValueError), (2.0, TypeError), (False, TypeError),
     ("1", TypeError)],
)
@pytest.mark.parametrize("name", ["max_workers", "cores"])
def test_bad_worker_counts(name, value, error, new_processes):
    with pytest.raises(error, match=name):
        Pool(**{name: value})
    assert new_processes() == {}


def test_alias_conflict_and_bad_flags(new_processes):
    with pytest.raises(TypeError, match="cores.*max_workers"):
        Pool(max_workers=2, cores=2)
    with pytest.raises(TypeError, match="show_progress"):
        Pool(show_progress="yes")
    assert new_processes() == {}


def test_unpicklable_function_on_the_worker(pool, tmp_path, monkeypatch):
    triple = make_unimportable_function(tmp_path, monkeypatch, "pmp_only_here_pool")
    with pytest.raises(ModuleNotFoundError, match="pmp_only_here_pool"):
        pool.map(triple, range(6))
    with pytest.raises(ModuleNotFoundError, match="pmp_only_here_pool"):
        pool.apply(triple, (1,))
    with pytest.raises(ModuleNotFoundError, match="pmp_only_here_pool"):
        list(pool.imap(triple, range(2)))
    assert pool.map(square, range(6)) == [0, 1, 4, 9, 16, 25]


# ---- lifetime ----------------------------------------------------------------------


def test_close_then_join(new_processes):
    p = Pool(max_workers=2)
    results = p.map_async(nap, [0.3] * 4)
    with pytest.raises(ValueError, match="still running"):
        p.join()
    p.close()
    for call in (
        lambda: p.map(square, [1]),
        lambda: p.apply(square, (1,)),
        lambda: p.apply_async(square, (1,)),
        lambda: p.imap(square, [1]),
        lambda: p.starmap_async(add, [(1,)]),
    ):
        with pytest.raises(ValueError, match=NOT_RUNNING):
            call()
    p.join()
    assert results.ready() and results.get(0) == [0.3] * 4
    assert new_processes() == {}
    p.close()  # idempotent
    p.join()


def test_terminate_stops_at_once_and_fails_pending_results(new_processes):
    p = Pool(max_workers=1)
    assert p.apply(square, (3,)) == 9
    pending = p.apply_async(sleep_and_return, (30, "never"))
    queued = p.map_async(square, range(10))
    time.sleep(0.3)
    start = time.monotonic()
    p.terminate()
    assert time.monotonic() - start < 10
    with pytest.raises(ValueError, match=NOT_RUNNING):
        p.map(square, [1])
    with pytest.raises(ExecutorBroken, match="terminated"):
        pending.get(timeout=30)
    queued.wait(30)
    assert queued.ready() and not queued.successful()
    p.join()
    assert new_processes() == {}
    p.terminate()  # idempotent


def test_context_manager_terminates_on_exit():
    with Pool(max_workers=2) as p:
        assert p.map(square, [1, 2]) == [1, 4]
        late = p.apply_async(sleep_and_return, (30, "late"))
    with pytest.raises(ValueError, match=NOT_RUNNING):
        p.map(square, [1])
    with pytest.raises(ValueError, match=NOT_RUNNING):
        with p:
            pass
    with pytest.raises(ExecutorBroken):
        late.get(30)
    p.join()


def test_shutdown_waits_for_submitted_work(new_processes):
    p = Pool(max_workers=2)
    result = p.map_async(nap, [0.5] * 3, chunksize=1)
    p.shutdown(wait=True)
    assert result.ready() and result.get(0) == [0.5] * 3
    with pytest.raises(ValueError, match=NOT_RUNNING):
        p.apply(square, (2,))
    assert new_processes() == {}


def test_shutdown_without_wait_keeps_results_coming():
    p = Pool(max_workers=1)
    result = p.apply_async(sleep_and_return, (0.5, "ok"))
    p.shutdown(wait=False)
    assert result.get(30) == "ok"
    p.join()


def test_garbage_collected_pool_leaves_nothing_behind(new_processes):
    import gc
    import weakref

    def handlers():
        return {t for t in threading.enumerate() if t.name == "pympipool-results"}

    before = handlers()
    p = Pool(max_workers=2)
    result = p.map_async(nap, [0.3, 0.3])
    ref = weakref.ref(p)
    del p
    gc.collect()
    assert ref() is None
    assert result.get(30) == [0.3, 0.3]
    assert wait_until(lambda: new_processes() == {}, 20), new_processes()
    assert wait_until(lambda: handlers() <= before, 20)


def test_pool_cannot_be_pickled(pool):
    import pickle

    with pytest.raises(NotImplementedError):
        pickle.dumps(pool)


def test_more_workers_than_cores():
    with Pool(max_workers=4, oversubscribe=True) as p:
        pids = p.map(_sleep_then_pid, [0.5] * 8, chunksize=1)
        assert len(set(pids)) == 4
        assert p.map(square, range(30)) == [i * i for i in range(30)]


def _sleep_then_pid(seconds):
    time.sleep(seconds)
    return worker_pid()


# ---- progress bar ----------------------------------------------------------------


def test_show_progress_draws_a_tqdm_bar(capsys):
    pytest.importorskip("tqdm")
    with Pool(max_workers=2, show_progress=True) as p:
        assert p.map(square, range(12), chunksize=3) == [i * i for i in range(12)]
        assert list(p.imap(square, range(5))) == [0, 1, 4, 9, 16]
    err = capsys.readouterr().err
    assert "12/12" in err
    assert "5/5" in err


def test_show_progress_without_tqdm_names_the_package(monkeypatch, new_processes):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm fails
    with pytest.raises(ImportError, match=r"tqdm \(Debian: python3-tqdm\)"):
        Pool(max_workers=1, show_progress=True)
    assert new_processes() == {}


def test_exported():
    assert pympipool.Pool is Pool
    assert pympipool.__all__.count("Pool") == 1
