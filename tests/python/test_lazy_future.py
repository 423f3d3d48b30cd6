"""The futures of pympipool make their condition, waiters and done-callback
list only when somebody needs them (``_future._Future``): a queued call
costs a few hundred bytes instead of the 1.5 kB of a
``concurrent.futures.Future``.  These tests check that such a future still
behaves as a ``concurrent.futures.Future`` in every way a caller can see:
``result``/``exception`` with and without timeouts, ``wait``,
``as_completed``, ``add_done_callback``, ``cancel``, from any thread, in
any order, including a future that never had a condition until the moment
it is waited on or completed.  ``Pool.apply_async``'s ``AsyncResult`` is
light the same way (no Future, an Event only once a wait blocks)."""

import concurrent.futures
import logging
import multiprocessing
import os
import threading
import time

import pytest

import pympipool
from pympipool import Pool, PoolExecutor
from pympipool._futures import _Future, _Table

from conftest import wait_until


class FakeState:
    """What a _Future asks its executor's state: whether this is a forked
    child, and to take a task back (always possible here)."""

    forked = False

    def __init__(self, cancellable=True):
        self.cancellable = cancellable
        self.cancelled = []

    def cancel(self, task_id):
        self.cancelled.append(task_id)
        return self.cancellable


def fresh(cancellable=True):
    return _Future(FakeState(cancellable), 7)


def lazy(future):
    """Whether the future has made none of its lazy parts."""
    return (
        future._pmp_cond is None
        and future._pmp_waiters is None
        and future._pmp_callbacks is None
    )


# ---- without an executor ------------------------------------------------------


def test_a_pending_future_makes_nothing():
    f = fresh()
    assert isinstance(f, concurrent.futures.Future)
    assert not f.done() and not f.running() and not f.cancelled()
    assert "state=pending" in repr(f)
    assert lazy(f)


def test_completing_and_reading_a_future_nobody_waited_on_makes_nothing():
    f = fresh()
    assert f.set_running_or_notify_cancel()
    assert f.running()
    f.set_result(41)
    assert f.done() and f.result() == 41 and f.exception() is None
    assert "returned int" in repr(f)
    assert lazy(f)
    g = fresh()
    g.set_running_or_notify_cancel()
    g.set_exception(KeyError("k"))
    with pytest.raises(KeyError):
        g.result()
    assert isinstance(g.exception(), KeyError)
    assert "raised KeyError" in repr(g)
    assert lazy(g)


def test_set_twice_is_an_invalid_state():
    f = fresh()
    f.set_running_or_notify_cancel()
    f.set_result(1)
    with pytest.raises(concurrent.futures.InvalidStateError):
        f.set_result(2)
    with pytest.raises(concurrent.futures.InvalidStateError):
        f.set_exception(ValueError())
    with pytest.raises(RuntimeError):
        f.set_running_or_notify_cancel()
    assert f.result() == 1


def test_result_and_exception_time_out_and_then_see_the_value():
    f = fresh()
    with pytest.raises(concurrent.futures.TimeoutError):
        f.result(timeout=0.01)
    with pytest.raises(concurrent.futures.TimeoutError):
        f.exception(timeout=0)
    assert f._pmp_cond is not None  # made by the first wait
    f.set_running_or_notify_cancel()
    f.set_result("v")
    assert f.result(timeout=0) == "v"


@pytest.mark.parametrize("how", ["result", "exception"])
def test_a_waiter_that_makes_the_condition_is_woken(how):
    f = fresh()
    got = []
    waiter = threading.Thread(target=lambda: got.append(getattr(f, how)(timeout=30)))
    waiter.start()
    assert wait_until(lambda: f._pmp_cond is not None, timeout=10)
    time.sleep(0.05)  # the waiter sleeps in wait()
    f.set_running_or_notify_cancel()
    if how == "result":
        f.set_result(5)
    else:
        f.set_exception(ValueError("x"))
    waiter.join(10)
    assert not waiter.is_alive()
    assert got == [5] if how == "result" else isinstance(got[0], ValueError)


def test_wait_and_as_completed_on_futures_without_a_condition():
    futures = [fresh() for _ in range(6)]
    assert all(lazy(f) for f in futures)

    def complete():
        time.sleep(0.1)
        for i, f in enumerate(futures):
            f.set_running_or_notify_cancel()
            if i % 2:
                f.set_exception(ValueError(i))
            else:
                f.set_result(i)
            time.sleep(0.01)

    thread = threading.Thread(target=complete)
    thread.start()
    done, not_done = concurrent.futures.wait(futures[:3], timeout=30)
    assert len(done) == 3 and not not_done
    finished = list(concurrent.futures.as_completed(futures[3:], timeout=30))
    assert sorted(map(id, finished)) == sorted(map(id, futures[3:]))
    thread.join()
    first = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
    assert len(first.done) == 6


def test_add_done_callback_before_and_after_completion():
    calls = []
    f = fresh()
    f.add_done_callback(lambda g: calls.append(("a", g.result())))
    f.add_done_callback(lambda g: calls.append(("b", g.result())))
    assert f._pmp_cond is None  # a callback needs no condition
    f.set_running_or_notify_cancel()
    f.set_result(3)
    assert calls == [("a", 3), ("b", 3)]
    f.add_done_callback(lambda g: calls.append(("c", g.result())))
    assert calls[-1] == ("c", 3)
    assert f._pmp_cond is None


def test_a_failing_callback_is_logged_and_the_next_still_runs(caplog):
    calls = []
    f = fresh()

    def bad(_):
        raise SystemExit(3)

    f.add_done_callback(bad)
    f.add_done_callback(calls.append)
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        f.set_running_or_notify_cancel()
        f.set_result(1)
    assert calls == [f]
    assert "exception calling callback" in caplog.text


def test_cancel_a_future_that_never_had_a_condition():
    seen = []
    f = fresh()
    f.add_done_callback(lambda g: seen.append((g.cancelled(), g.done())))
    assert f.cancel()
    assert f._pmp_state.cancelled == [7]
    assert f.cancelled() and f.done() and not f.running()
    assert seen == [(True, True)]
    assert f.cancel()  # again: still cancelled
    assert f._pmp_state.cancelled == [7]
    with pytest.raises(concurrent.futures.CancelledError):
        f.result()
    with pytest.raises(concurrent.futures.CancelledError):
        f.exception()
    # wait / as_completed count it as finished (CANCELLED_AND_NOTIFIED)
    assert concurrent.futures.wait([f], timeout=5).done == {f}
    assert list(concurrent.futures.as_completed([f], timeout=5)) == [f]
    assert "state=cancelled" in repr(f)


def test_cancel_wakes_a_waiter_that_made_the_condition():
    f = fresh()
    errors = []

    def waiter():
        try:
            f.result(timeout=30)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert wait_until(lambda: f._pmp_cond is not None, timeout=10)
    done = []
    watcher = threading.Thread(
        target=lambda: done.append(concurrent.futures.wait([f], timeout=30))
    )
    watcher.start()
    time.sleep(0.05)
    assert f.cancel()
    thread.join(10)
    watcher.join(10)
    assert isinstance(errors[0], concurrent.futures.CancelledError)
    assert done[0].done == {f}


def test_cancel_is_refused_once_the_task_was_sent_or_finished():
    f = fresh(cancellable=False)
    assert not f.cancel() and not f.cancelled()
    f.set_running_or_notify_cancel()
    assert not f.cancel()  # running
    f.set_result(1)
    assert not f.cancel()  # finished
    assert f.result() == 1


def test_stdlib_cancel_then_completion_notifies_waiters():
    """Future.cancel itself (CANCELLED, not yet notified): the executor's
    set_running_or_notify_cancel moves it on and wakes wait()."""
    f = fresh()
    assert concurrent.futures.Future.cancel(f)
    done = []
    watcher = threading.Thread(
        target=lambda: done.append(concurrent.futures.wait([f], timeout=30))
    )
    watcher.start()
    assert wait_until(lambda: f._pmp_waiters, timeout=10)
    assert not f.set_running_or_notify_cancel()
    watcher.join(10)
    assert done[0].done == {f}


def test_no_lost_wake_up_when_waiting_races_completion():
    """Many futures completed by one thread while others start waiting on
    them at the same moment: each waiter makes the condition while the
    completer may be half-way; none may sleep through its completion."""
    rounds = 300
    futures = [fresh() for _ in range(rounds)]
    results = [None] * rounds
    start = threading.Barrier(3)

    def complete():
        start.wait()
        for i, f in enumerate(futures):
            f.set_running_or_notify_cancel()
            f.set_result(i)

    def wait_each(offset):
        start.wait()
        for i in range(offset, rounds, 2):
            results[i] = futures[i].result(timeout=30)

    threads = [threading.Thread(target=complete)] + [
        threading.Thread(target=wait_each, args=(k,)) for k in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == list(range(rounds))


def test_no_lost_wake_up_for_wait_racing_completion():
    rounds = 200
    for _ in range(rounds):
        f = fresh()
        go = threading.Event()

        def complete():
            go.wait()
            f.set_running_or_notify_cancel()
            f.set_result(1)

        t = threading.Thread(target=complete)
        t.start()
        go.set()
        done, _ = concurrent.futures.wait([f], timeout=30)
        assert done == {f}
        t.join()


# ---- with an executor ---------------------------------------------------------------


def block(flag):
    end = time.monotonic() + 60
    while not os.path.exists(flag) and time.monotonic() < end:
        time.sleep(0.01)
    return "unblocked"


def square(x):
    return x * x


def test_queued_futures_of_an_executor_stay_light_and_behave(tmp_path):
    flag = str(tmp_path / "go")
    with PoolExecutor(1) as pool:
        blocker = pool.submit(block, flag)
        queued = [pool.submit(square, i) for i in range(40)]
        assert all(lazy(f) for f in queued)
        calls = []
        queued[0].add_done_callback(lambda f: calls.append(f.result()))
        cancelled = queued[30:]
        assert all(f.cancel() for f in cancelled)
        assert all(f.cancelled() for f in cancelled)
        assert concurrent.futures.wait(cancelled, timeout=5).done == set(cancelled)
        waiter_results = []
        waiter = threading.Thread(
            target=lambda: waiter_results.append(queued[1].result(timeout=60))
        )
        waiter.start()
        open(flag, "w").close()
        assert blocker.result(timeout=60) == "unblocked"
        done, not_done = concurrent.futures.wait(queued[:10], timeout=60)
        assert not not_done
        got = {f.result() for f in concurrent.futures.as_completed(queued[10:30], timeout=60)}
        assert got == {i * i for i in range(10, 30)}
        waiter.join(60)
        assert waiter_results == [1]
        assert calls == [0]
        assert [f.result() for f in queued[:30]] == [i * i for i in range(30)]
        # completed while nobody waited: nothing was made
        late = [pool.submit(square, i) for i in range(5)]
        assert wait_until(lambda: all(f.done() for f in late), timeout=60)
        assert [f.result() for f in late] == [i * i for i in range(5)]
        assert all(lazy(f) for f in late)


def fail(x):
    raise KeyError(x)


def test_queued_apply_async_results_stay_light_and_behave(tmp_path):
    """Pool.apply_async's AsyncResult is the futures table's entry itself
    (no Future); its Event is made only by a wait that blocks."""
    flag = str(tmp_path / "go")
    pool = Pool(1)
    try:
        pool.apply_async(block, (flag,))
        queued = [pool.apply_async(square, (i,)) for i in range(20)]
        assert all(r._event is None for r in queued)
        assert not any(r.ready() for r in queued)
        with pytest.raises(ValueError):
            queued[0].successful()
        with pytest.raises(multiprocessing.TimeoutError):
            queued[0].get(timeout=0.01)
        assert queued[0]._event is not None
        got, errors = [], []
        with_callbacks = pool.apply_async(square, (7,), callback=got.append)
        failing = pool.apply_async(fail, (3,), error_callback=errors.append)
        waiter_results = []
        waiter = threading.Thread(target=lambda: waiter_results.append(queued[1].get(60)))
        waiter.start()
        open(flag, "w").close()
        assert [r.get(timeout=60) for r in queued[:10]] == [i * i for i in range(10)]
        assert with_callbacks.get(timeout=60) == 49 and got == [49]
        with pytest.raises(KeyError):
            failing.get(timeout=60)
        assert not failing.successful()
        assert isinstance(errors[0], KeyError)
        waiter.join(60)
        assert waiter_results == [1]
        assert wait_until(lambda: all(r.ready() for r in queued), timeout=60)
        assert all(r._event is None for r in queued[10:])  # nobody blocked on them
        assert [r.get() for r in queued[10:]] == [i * i for i in range(10, 20)]
        assert all(r.successful() for r in queued)
    finally:
        pool.terminate()
        pool.join()


def test_terminate_fails_queued_apply_async_results(tmp_path):
    flag = str(tmp_path / "go")
    pool = Pool(1)
    try:
        pool.apply_async(block, (flag,))
        errors = []
        queued = [pool.apply_async(square, (i,)) for i in range(5)]
        called = pool.apply_async(square, (9,), error_callback=errors.append)
        waiter_errors = []

        def waiter():
            try:
                queued[0].get(timeout=60)
            except BaseException as exc:
                waiter_errors.append(exc)

        thread = threading.Thread(target=waiter)
        thread.start()
        assert wait_until(lambda: queued[0]._event is not None, timeout=10)
        pool.terminate()
        thread.join(60)
        assert isinstance(waiter_errors[0], pympipool.ExecutorBroken)
        for r in queued + [called]:
            assert r.ready() and not r.successful()
            with pytest.raises(BaseException):
                r.get(timeout=0)
        pool.join()
        assert len(errors) == 1
    finally:
        open(flag, "w").close()
        pool.terminate()


# ---- the futures table ---------------------------------------------------------


def test_the_futures_table_against_a_dict():
    """_Table (a list of slots by task id, with a dict for entries that
    stay long) behaves as the dict it replaces, whatever the order in which
    entries leave."""
    import random

    for seed in range(60):
        rnd = random.Random(seed)
        table, ref = _Table(), {}
        next_id = 1
        for step in range(rnd.randint(10, 2000)):
            if rnd.random() < 0.5:
                next_id += rnd.choice([1, 1, 1, 2])  # an id taken but not entered (INIT)
                entry = object()
                table.add(next_id, entry)
                ref[next_id] = entry
            elif ref:
                if rnd.random() < 0.3:
                    key = min(ref)
                elif rnd.random() < 0.05:
                    key = rnd.randint(0, next_id + 3)  # unknown or gone
                else:
                    key = rnd.choice(list(ref))
                assert table.pop(key) is ref.pop(key, None)
            assert len(table) == len(ref) and bool(table) == bool(ref)
            if step % 50 == 0:
                assert dict(table.items()) == ref
                assert table.values() == [ref[k] for k in sorted(ref)]
                assert all(k in table and table.get(k) is ref[k] for k in ref)
        table.clear()
        assert len(table) == 0 and table.values() == [] and table.pop(next_id) is None


def test_the_futures_table_stays_small_around_a_long_entry():
    table = _Table()
    table.add(1, "runs for hours")
    for task_id in range(2, 100_000):
        table.add(task_id, "short")
        if task_id > 501:
            assert table.pop(task_id - 500) == "short"
        assert len(table.slots) <= 4 * table.live + 2 * _Table._MIN_SPAN + 2
    assert table.pop(1) == "runs for hours"
    assert len(table) == 500
    with pytest.raises(ValueError):
        table.add(5, "an id below the last one")
