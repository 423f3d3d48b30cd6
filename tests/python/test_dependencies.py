"""Futures as arguments (pylib/pympipool/_dependencies.py): chains, diamonds,
a fan-in of 1,000 futures, failures and cancellations that propagate,
shutdown with dependents still waiting, futures of other executors and
plain ``concurrent.futures.Future``s, ``map`` with futures, and
``disable_dependencies``."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pympipool import Executor, PoolExecutor
from pympipool._dependencies import find_futures, resolve

from conftest import started, wait_until


# ---- functions run on the workers (defined here: pickled by value) ---------


def add(a, b=0):
    return a + b


def total(*values, extra=()):
    return sum(values) + sum(extra)


def deep_sum(obj):
    if isinstance(obj, dict):
        return sum(deep_sum(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(deep_sum(v) for v in obj)
    return obj


def fail(text):
    raise ValueError(text)


def slow(value, seconds):
    time.sleep(seconds)
    return value


def ident(value):
    return value


def touch(path, value):
    with open(path, "a") as out:
        out.write(f"{value}\n")
    return value


# ---- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def exe():
    """A PoolExecutor of 2 started workers shared by the tests of this module."""
    e = started(PoolExecutor(max_workers=2), 2)
    yield e
    e.shutdown(wait=True, cancel_futures=True)


# ---- the scan ---------------------------------------------------------------------


def test_find_and_resolve_nested():
    f = concurrent.futures.Future()
    g = concurrent.futures.Future()
    obj = (1, [2, {"a": f, "b": (g, [f])}], "x")
    assert find_futures(obj) == [f, g] or find_futures(obj) == [g, f]
    assert len(find_futures(obj)) == 2  # distinct futures only
    f.set_result(10)
    g.set_result(20)
    assert resolve(obj) == (1, [2, {"a": 10, "b": (20, [10])}], "x")
    plain = [1, 2, (3, "a")]
    assert resolve(plain) is plain  # nothing rebuilt without futures


def test_cyclic_container_is_scanned_once():
    f = concurrent.futures.Future()
    cycle = [1, f]
    cycle.append(cycle)
    assert find_futures(cycle) == [f]
    f.set_result(5)
    out = resolve(cycle)
    assert out[1] == 5 and out[2] is out


# ---- graphs ---------------------------------------------------------------------


def test_chain(exe):
    f = exe.submit(add, 1)
    for _ in range(20):
        f = exe.submit(add, f, 1)
    assert f.result(timeout=60) == 21


def test_diamond_nested_arguments(exe):
    top = exe.submit(add, 1, 1)
    left = exe.submit(add, top, 10)
    right = exe.submit(add, b=top, a=100)
    bottom = exe.submit(deep_sum, {"l": [left, (right,)], "t": top, "k": 1})
    assert bottom.result(timeout=60) == 12 + 102 + 2 + 1


def test_submit_returns_at_once(exe):
    gate = concurrent.futures.Future()
    start = time.monotonic()
    dependents = [exe.submit(add, gate, i) for i in range(100)]
    assert time.monotonic() - start < 5.0
    assert not any(d.done() for d in dependents)
    assert len(exe) >= 100  # waiting calls count as not yet sent
    gate.set_result(1)
    assert [d.result(timeout=60) for d in dependents] == [1 + i for i in range(100)]


def test_no_thread_per_waiting_call(exe):
    gate = concurrent.futures.Future()
    before = threading.active_count()
    dependents = [exe.submit(add, gate, i) for i in range(200)]
    assert threading.active_count() <= before + 1
    gate.set_result(0)
    assert sum(d.result(timeout=60) for d in dependents) == sum(range(200))


def test_fan_in_of_1000(exe):
    inputs = [exe.submit(add, i) for i in range(1000)]
    both = exe.submit(total, *inputs[:500], extra=inputs[500:])
    assert both.result(timeout=90) == sum(range(1000))


def test_failure_in_the_middle_of_a_chain(exe, tmp_path):
    marks = tmp_path / "ran"
    first = exe.submit(add, 1)
    broken = exe.submit(fail, first)  # ValueError(1)
    after = exe.submit(touch, str(marks), broken)
    last = exe.submit(add, [after][0], 1)
    with pytest.raises(ValueError) as info:
        last.result(timeout=60)
    assert info.value is broken.exception()  # the same exception object
    assert after.exception() is broken.exception()
    assert not marks.exists()  # the dependents never ran


def test_cancelled_input_cancels_dependents(exe):
    gate = concurrent.futures.Future()
    dependent = exe.submit(add, gate, 1)
    second = exe.submit(add, dependent, 1)
    assert gate.cancel()
    assert wait_until(lambda: dependent.cancelled() and second.cancelled(), 10)
    with pytest.raises(concurrent.futures.CancelledError):
        second.result(timeout=1)
    # concurrent.futures.wait sees them as done
    done, _ = concurrent.futures.wait([dependent, second], timeout=1)
    assert len(done) == 2


def test_cancel_a_waiting_dependent(exe, tmp_path):
    marks = tmp_path / "ran"
    gate = concurrent.futures.Future()
    dependent = exe.submit(touch, str(marks), gate)
    assert dependent.cancel()
    gate.set_result(1)
    time.sleep(0.3)
    assert dependent.cancelled() and not marks.exists()
    assert len(exe) == 0


def test_cancel_twice_and_from_a_callback(exe):
    gate = concurrent.futures.Future()
    dependent = exe.submit(add, gate, 1)
    seen = []
    dependent.add_done_callback(lambda f: seen.append(f.cancel()))  # cancels again, inside
    assert dependent.cancel()
    assert dependent.cancel()  # as Future.cancel: True for a cancelled future
    assert seen == [True]
    assert list(concurrent.futures.as_completed([dependent], timeout=1)) == [dependent]
    gate.set_result(0)


def test_cancel_a_dependent_already_sent():
    with PoolExecutor(max_workers=1) as one:
        blockers = [one.submit(slow, i, 1.0) for i in range(2)]  # running and held
        ready = concurrent.futures.Future()
        ready.set_result(1)
        queued = one.submit(add, ready, 1)  # sent at once, queued behind them
        assert queued.cancel()
        assert queued.cancelled()
        after = one.submit(add, blockers[1], 1)
        assert after.result(timeout=60) == 2
        assert not after.cancel()  # done: as any future


def test_as_completed_over_dependents(exe):
    gates = [concurrent.futures.Future() for _ in range(3)]
    dependents = [exe.submit(add, g, 1) for g in gates]
    for i, gate in enumerate(reversed(gates)):
        gate.set_result(i)
    done = {f.result() for f in concurrent.futures.as_completed(dependents, timeout=60)}
    assert done == {1, 2, 3}


def test_futures_of_another_executor():
    with Executor(cores=2) as two, PoolExecutor(max_workers=1) as one:
        ranks = two.submit(ident, 3)  # [3, 3]: one value per rank
        pid = one.submit(os.getpid)
        combined = one.submit(deep_sum, [ranks, {"pid": pid}])
        assert combined.result(timeout=60) == 6 + pid.result()
        back = two.submit(add, combined, 1)
        assert back.result(timeout=60) == [7 + pid.result()] * 2


def test_plain_future_set_later_from_a_thread(exe):
    plain = concurrent.futures.Future()
    dependent = exe.submit(add, plain, b=plain)
    threading.Timer(0.2, plain.set_result, (21,)).start()
    assert dependent.result(timeout=60) == 42


def test_done_future_runs_at_once(exe):
    ready = concurrent.futures.Future()
    ready.set_result(2)
    assert exe.submit(add, ready, ready).result(timeout=60) == 4


def test_map_with_futures(exe):
    firsts = [exe.submit(add, i) for i in range(5)]
    # a list holding futures: waited for by the map's reader thread
    assert list(exe.map(add, firsts, range(5), timeout=60)) == [2 * i for i in range(5)]
    # a generator of items, some of them futures
    mixed = (f if i % 2 else i for i, f in enumerate(firsts))
    assert list(exe.map(add, mixed, timeout=60)) == list(range(5))
    # a failed future: its item raises that exception, in its place
    broken = exe.submit(fail, "bad")
    results = exe.map(add, [1, broken, 3])
    assert next(results) == 1
    with pytest.raises(ValueError, match="bad"):
        next(results)


def test_map_returns_at_once_with_pending_futures(exe):
    gate = concurrent.futures.Future()
    start = time.monotonic()
    results = exe.map(add, [1, gate, 3], [10, 10, 10])  # small: no thread unless futures
    assert time.monotonic() - start < 2.0
    threading.Timer(0.3, gate.set_result, (2,)).start()
    assert list(results) == [11, 12, 13]


def test_map_of_many_items_with_futures_in_chunks(exe):
    firsts = [exe.submit(add, i) for i in range(50)]
    items = [firsts[i % 50] if i % 7 == 0 else i for i in range(2000)]
    expected = [i % 50 if i % 7 == 0 else i for i in range(2000)]
    assert list(exe.map(ident, items, chunksize=16, timeout=90)) == expected
    assert list(exe.map(ident, iter(items), chunksize=16, timeout=90)) == expected


def test_map_with_futures_on_executor():
    with Executor(cores=2) as two:
        first = two.submit(add, 1)
        assert list(two.map(ident, [first, 2])) == [[[1, 1]] * 2, [2, 2]]


def test_unpicklable_result_of_input_fails_the_dependent(exe):
    plain = concurrent.futures.Future()
    dependent = exe.submit(add, plain, 1)
    plain.set_result(threading.Lock())  # cannot be pickled to the worker
    with pytest.raises(TypeError):
        dependent.result(timeout=60)


class Box:
    def __init__(self, content):
        self.content = content


def test_future_inside_another_object_is_not_looked_for(exe):
    ready = concurrent.futures.Future()
    ready.set_result(1)
    with pytest.raises(TypeError, match="pickle") as info:
        exe.submit(ident, Box(ready))
    assert "dependencies" not in str(info.value)  # pickle's own error
    assert exe.submit(ident, [Box(2)]).result(timeout=60)[0].content == 2


# ---- shutdown ---------------------------------------------------------------------


def test_shutdown_wait_runs_waiting_dependents():
    exe = PoolExecutor(max_workers=1)
    first = exe.submit(slow, 5, 0.5)
    dependent = exe.submit(add, first, 1)
    plain = concurrent.futures.Future()
    late = exe.submit(add, plain, 2)
    threading.Timer(0.8, plain.set_result, (10,)).start()
    exe.shutdown(wait=True)
    assert dependent.result(timeout=0) == 6
    assert late.result(timeout=0) == 12
    with pytest.raises(RuntimeError, match="after shutdown"):
        exe.submit(add, 1)
    with pytest.raises(RuntimeError, match="after shutdown"):
        exe.submit(add, first)


def test_shutdown_without_wait_runs_them_later():
    exe = PoolExecutor(max_workers=1)
    plain = concurrent.futures.Future()
    dependent = exe.submit(add, plain, 2)
    exe.shutdown(wait=False)
    with pytest.raises(RuntimeError, match="after shutdown"):
        exe.submit(add, 1)
    plain.set_result(1)
    assert dependent.result(timeout=60) == 3
    assert wait_until(lambda: not exe._dispatcher.is_alive(), 30)


def test_shutdown_cancel_futures_cancels_waiting_dependents(tmp_path):
    marks = tmp_path / "ran"
    exe = PoolExecutor(max_workers=1)
    first = exe.submit(slow, 1, 0.3)
    plain = concurrent.futures.Future()
    dependents = [exe.submit(touch, str(marks), first), exe.submit(touch, str(marks), plain)]
    exe.shutdown(wait=True, cancel_futures=True)
    assert all(d.cancelled() for d in dependents)
    plain.set_result(1)
    assert not marks.exists()


def test_exception_in_with_block_cancels_waiting_dependents():
    plain = concurrent.futures.Future()
    with pytest.raises(KeyError):
        with PoolExecutor(max_workers=1) as exe:
            dependent = exe.submit(add, plain, 1)
            raise KeyError("leave")
    assert dependent.cancelled()


def test_shutdown_in_a_forked_child_returns_at_once(tmp_path):
    """A child forked while a dependent waits: its shutdown(wait=True) does
    not wait for the parent's dependents; the parent's still run."""
    script = tmp_path / "fork.py"
    script.write_text(
        textwrap.dedent(
            """
            import concurrent.futures, os, time
            from pympipool import PoolExecutor

            def add(a, b):
                return a + b

            exe = PoolExecutor(max_workers=1)
            gate = concurrent.futures.Future()
            dependent = exe.submit(add, gate, 1)
            pid = os.fork()
            if pid == 0:
                start = time.monotonic()
                exe.shutdown(wait=True)
                os._exit(0 if time.monotonic() - start < 5 else 3)
            start = time.monotonic()
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() - start > 20:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    raise SystemExit("the child hung")
                time.sleep(0.01)
            assert os.waitstatus_to_exitcode(status) == 0, status
            gate.set_result(1)
            assert dependent.result(timeout=60) == 2
            exe.shutdown()
            print("OK")
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("OK")


# ---- disabled --------------------------------------------------------------------


def test_disable_dependencies_raises_at_submit():
    with PoolExecutor(max_workers=1, disable_dependencies=True) as exe:
        done = exe.submit(add, 1)
        assert done.result(timeout=60) == 1
        with pytest.raises(TypeError, match="dependencies are disabled") as info:
            exe.submit(add, [done], 1)
        assert info.value.__cause__ is not None  # pickle's own error
        assert exe.submit(add, 2, 3).result(timeout=60) == 5  # still works
        with pytest.raises(TypeError, match="dependencies are disabled"):
            list(exe.map(add, [done]))


def test_disable_dependencies_must_be_bool():
    with pytest.raises(TypeError, match="disable_dependencies"):
        PoolExecutor(max_workers=1, disable_dependencies="yes")
