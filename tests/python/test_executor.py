"""pympipool.Executor: results, order, map, shutdown, cancellation, errors."""

import concurrent.futures
import os
import pickle
import socket
import sys
import threading
import time

import numpy as np
import pytest

import pympipool
from pympipool import Executor, ExecutorBroken, RemoteTraceback
from pympipool import _serialize

from conftest import process_alive, wait_until

AFTER_SHUTDOWN = "cannot schedule new futures after shutdown"


# ---- functions run on the ranks (defined here: pickled by value) ----------


def calc(i, j, k):
    return np.array([i, j, k])


def init_k():
    return {"k": 3}


def mpi_rank():
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def add(a, b=0):
    return a + b


def stamp(seconds):
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic()


def sleep_and_return(seconds, value):
    time.sleep(seconds)
    return value


def get_cwd():
    return os.getcwd()


def double(array):
    return array * 2


def total(array):
    return float(array.sum())


def make_array(n):
    return np.arange(n, dtype=np.float64)


def raise_value_error(text):
    raise ValueError(text)


class UserDefinedError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def raise_user_error(code):
    raise UserDefinedError(code)


def fail_on_rank_one():
    if mpi_rank() == 1:
        raise KeyError("only rank 1")
    return "fine"


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm2(self):
        return self.x * self.x + self.y * self.y


def use_point(point):
    return point.norm2(), type(point).__name__


def returns_not_a_dict():
    return [1, 2, 3]


def init_raises():
    raise OSError("init exploded")


def use_k(k=None):
    return k


class Unpicklable:
    def __reduce__(self):
        raise TypeError("this object refuses to be pickled")


def return_unpicklable():
    return Unpicklable()


# ---- the example of the issue and the basic contract ----------------------


def test_issue_example_two_cores_with_init_function():
    with Executor(cores=2, init_function=init_k) as exe:
        future = exe.submit(calc, 2, j=4)
        result = future.result(timeout=60)
    assert isinstance(result, list) and len(result) == 2
    for value in result:
        assert isinstance(value, np.ndarray)
        assert value.tolist() == [2, 4, 3]


def test_one_core_returns_the_bare_value():
    with Executor(cores=1) as exe:
        assert exe.submit(add, 1, b=2).result(timeout=60) == 3
        assert exe.submit(sum, [1, 2, 3]).result(timeout=60) == 6
        assert exe.submit(calc, 1, 2, 3).result(timeout=60).tolist() == [1, 2, 3]


def test_several_cores_return_one_value_per_rank_in_rank_order():
    with Executor(cores=3, oversubscribe=True) as exe:
        assert exe.submit(mpi_rank).result(timeout=60) == [0, 1, 2]
        assert exe.submit(add, 5).result(timeout=60) == [5, 5, 5]


def test_init_function_fills_only_parameters_not_passed():
    with Executor(cores=1, init_function=init_k) as exe:
        assert exe.submit(use_k).result(timeout=60) == 3
        assert exe.submit(use_k, k=7).result(timeout=60) == 7
        assert exe.submit(use_k, 8).result(timeout=60) == 8
        assert exe.submit(add, 1, b=1).result(timeout=60) == 2


def test_submit_returns_futures_of_the_standard_kind():
    with Executor() as exe:
        future = exe.submit(add, 1, 1)
        assert isinstance(future, concurrent.futures.Future)
        done, _ = concurrent.futures.wait([future], timeout=60)
        assert future in done and future.result() == 2


def test_submit_passes_fn_as_positional_only_and_kwargs_through():
    def takes_fn(fn=None, **kwargs):
        return fn, sorted(kwargs)

    with Executor() as exe:
        assert exe.submit(takes_fn, fn=1, self=2).result(timeout=60) == (1, ["self"])


def test_submit_rejects_a_non_callable():
    with Executor() as exe:
        with pytest.raises(TypeError):
            exe.submit(42)


def test_first_in_first_out_one_at_a_time():
    order = []
    with Executor(cores=1) as exe:
        futures = []
        for i, seconds in enumerate([0.3, 0.2, 0.1, 0.0]):
            future = exe.submit(stamp, seconds)
            future.add_done_callback(lambda f, i=i: order.append(i))
            futures.append(future)
        spans = [f.result(timeout=60) for f in futures]
    for previous, following in zip(spans, spans[1:]):
        assert following[0] >= previous[1], "tasks overlapped"
    assert wait_until(lambda: len(order) == 4, 5)
    assert order == [0, 1, 2, 3]


def test_functions_and_classes_of_the_test_module_work():
    assert _serialize.should_pickle_by_value(__name__)
    with Executor() as exe:
        assert exe.submit(use_point, Point(3, 4)).result(timeout=60) == (25, "Point")
        assert exe.submit(lambda x: x + 1, 1).result(timeout=60) == 2


def test_large_arrays_travel_both_ways_and_results_are_writable():
    array = np.arange(1 << 20, dtype=np.float64)  # 8 MiB: out of band
    refs = sys.getrefcount(array)
    with Executor() as exe:
        result = exe.submit(double, array).result(timeout=60)
        assert result.shape == array.shape and result.dtype == array.dtype
        assert np.array_equal(result, array * 2)
        assert result.flags.writeable
        result[0] = -1.0  # the received frame is writable memory
        assert result[0] == -1.0
        made = exe.submit(make_array, 100_000).result(timeout=60)
        assert made.flags.writeable and made[-1] == 99_999
        # Small (copied) and large (zero-copy) arguments give the same answer.
        assert exe.submit(total, np.ones(10)).result(timeout=60) == 10.0
        assert exe.submit(total, np.ones(100_000)).result(timeout=60) == 100_000.0

        # The zero-copy reference to `array` is released once ZeroMQ is done
        # with the message (drained by the next submit or wait).
        def released():
            exe.submit(add, 0).result(timeout=60)
            return sys.getrefcount(array) == refs

        assert wait_until(released, 10)


def test_non_contiguous_arrays_are_pickled_in_band():
    array = np.arange(400_000, dtype=np.float64)[::2]
    assert not array.flags.c_contiguous
    with Executor() as exe:
        assert exe.submit(total, array).result(timeout=60) == float(array.sum())


# ---- map ---------------------------------------------------------------------


def test_map_returns_results_in_order():
    with Executor() as exe:
        assert list(exe.map(add, range(10))) == list(range(10))
        assert list(exe.map(add, [1, 2, 3], [10, 20, 30])) == [11, 22, 33]
        assert list(exe.map(add, [], [])) == []
        assert list(exe.map(add, range(5), chunksize=2)) == list(range(5))


def test_map_is_lazy_iterator_and_per_rank_for_several_cores():
    with Executor(cores=2) as exe:
        iterator = exe.map(add, [1, 2], [1, 1])
        assert iter(iterator) is iterator
        assert next(iterator) == [2, 2]
        assert next(iterator) == [3, 3]
        with pytest.raises(StopIteration):
            next(iterator)


def test_map_timeout_raises_timeout_error():
    with Executor() as exe:
        iterator = exe.map(sleep_and_return, [3.0, 0.0], ["slow", "fast"], timeout=0.5)
        started = time.monotonic()
        with pytest.raises(concurrent.futures.TimeoutError):
            next(iterator)
        assert time.monotonic() - started < 2.5


def test_map_propagates_the_task_error():
    with Executor() as exe:
        iterator = exe.map(raise_value_error, ["map says no"])
        with pytest.raises(ValueError, match="map says no"):
            list(iterator)


# ---- shutdown, cancellation, len -------------------------------------------------


def test_shutdown_wait_true_waits_for_queued_tasks_and_the_job():
    exe = Executor()
    futures = [exe.submit(sleep_and_return, 0.2, i) for i in range(3)]
    pid = exe._state.core.pid
    exe.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [0, 1, 2]
    assert not process_alive(pid)
    assert not exe._dispatcher.is_alive()


def test_shutdown_wait_false_returns_at_once_and_tasks_still_finish():
    exe = Executor()
    assert exe.submit(add, 1).result(timeout=60) == 1  # the job is up
    future = exe.submit(sleep_and_return, 1.0, "late")
    started = time.monotonic()
    exe.shutdown(wait=False)
    assert time.monotonic() - started < 0.5
    assert not future.done()
    assert future.result(timeout=60) == "late"
    assert wait_until(lambda: not exe._dispatcher.is_alive(), 20)


def test_shutdown_cancel_futures_cancels_what_was_not_sent():
    exe = Executor()
    running = exe.submit(sleep_and_return, 1.5, "running")
    held, *queued = [exe.submit(add, i) for i in range(4)]
    # the group holds the running call and the next one; the rest wait here
    assert wait_until(lambda: len(exe) == 3, 30), "the first tasks were never sent"
    exe.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=1) == "running"
    assert held.result(timeout=1) == 0
    assert all(f.cancelled() for f in queued)
    with pytest.raises(concurrent.futures.CancelledError):
        queued[0].result()


def test_shutdown_is_idempotent_and_context_manager_shuts_down():
    with Executor() as exe:
        assert exe.submit(add, 2).result(timeout=60) == 2
    exe.shutdown()
    exe.shutdown(wait=False)
    with pytest.raises(RuntimeError, match=AFTER_SHUTDOWN):
        exe.submit(add, 1)


def test_submit_after_shutdown_raises_runtime_error():
    exe = Executor()
    exe.shutdown(wait=False)
    with pytest.raises(RuntimeError, match=AFTER_SHUTDOWN):
        exe.submit(add, 1)
    exe.shutdown(wait=True)
    with pytest.raises(RuntimeError, match=AFTER_SHUTDOWN):
        exe.map(add, [1])


def test_len_counts_tasks_not_yet_sent():
    with Executor() as exe:
        assert len(exe) == 0
        first = exe.submit(sleep_and_return, 1.0, 0)
        rest = [exe.submit(add, i) for i in range(3)]
        assert wait_until(lambda: len(exe) == 2, 30)  # one more is held
        assert first.result(timeout=60) == 0
        assert [f.result(timeout=60) for f in rest] == [0, 1, 2]
        assert len(exe) == 0


def test_cancel_removes_a_queued_task_but_not_a_running_one():
    with Executor() as exe:
        running = exe.submit(sleep_and_return, 1.0, "ran")
        held = exe.submit(add, 0)  # sent behind the running call
        queued = exe.submit(add, 1)
        last = exe.submit(add, 2)
        assert wait_until(lambda: len(exe) == 2, 30)
        assert queued.cancel() is True
        assert queued.cancelled() and queued.done()
        assert running.cancel() is False
        assert held.cancel() is False
        assert running.result(timeout=60) == "ran"
        assert held.result(timeout=60) == 0
        assert last.result(timeout=60) == 2
        assert running.cancel() is False  # finished
        assert queued.cancel() is True  # already cancelled


# ---- errors ---------------------------------------------------------------


def test_builtin_exception_with_remote_traceback_and_executor_keeps_working():
    with Executor() as exe:
        future = exe.submit(raise_value_error, "bad value 17")
        with pytest.raises(ValueError, match="bad value 17") as info:
            future.result(timeout=60)
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        text = str(cause)
        assert text.startswith(f"Rank 0 of 1 on {socket.gethostname()}:")
        assert "raise_value_error" in text and "ValueError: bad value 17" in text
        assert exe.submit(add, 40, 2).result(timeout=60) == 42


def test_user_defined_exception_keeps_its_class_and_attributes():
    with Executor() as exe:
        with pytest.raises(UserDefinedError) as info:
            exe.submit(raise_user_error, 99).result(timeout=60)
        assert type(info.value) is UserDefinedError
        assert info.value.code == 99
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert "raise_user_error" in str(info.value.__cause__)
        assert exe.submit(add, 1).result(timeout=60) == 1


def test_error_names_the_failing_rank_of_several():
    with Executor(cores=2) as exe:
        with pytest.raises(KeyError, match="only rank 1") as info:
            exe.submit(fail_on_rank_one).result(timeout=60)
        header = f"Rank 1 of 2 on {socket.gethostname()}:"
        assert str(info.value.__cause__).startswith(header)
        assert exe.submit(add, 1).result(timeout=60) == [1, 1]


def test_unpicklable_argument_raises_at_submit_and_executor_keeps_working():
    with Executor() as exe:
        with pytest.raises(TypeError, match="lock"):
            exe.submit(add, threading.Lock())
        with pytest.raises(TypeError, match="refuses"):
            exe.submit(add, Unpicklable())
        assert len(exe) == 0
        assert exe.submit(add, 1, 2).result(timeout=60) == 3


def test_unpicklable_result_fails_the_future_only():
    with Executor() as exe:
        with pytest.raises(TypeError, match="refuses"):
            exe.submit(return_unpicklable).result(timeout=60)
        assert exe.submit(add, 5).result(timeout=60) == 5


def test_init_function_returning_a_non_dict_fails_every_task_clearly():
    with Executor(init_function=returns_not_a_dict) as exe:
        for _ in range(2):
            with pytest.raises(TypeError, match="dict"):
                exe.submit(add, 1).result(timeout=60)


def test_init_function_raising_fails_every_task_with_its_error():
    with Executor(init_function=init_raises) as exe:
        with pytest.raises(OSError, match="init exploded"):
            exe.submit(add, 1).result(timeout=60)


def test_worker_death_breaks_every_pending_future_and_later_submits():
    exe = Executor()
    try:
        dying = exe.submit(os._exit, 3)
        queued = exe.submit(add, 1)
        started = time.monotonic()
        with pytest.raises(ExecutorBroken) as info:
            dying.result(timeout=60)
        assert time.monotonic() - started < 20
        assert "status" in str(info.value) or "exit" in str(info.value)
        with pytest.raises(ExecutorBroken):
            queued.result(timeout=20)
        with pytest.raises(ExecutorBroken):
            exe.submit(add, 1)
        assert exe.broken
    finally:
        exe.shutdown(wait=True)


def test_exception_types_are_exported():
    assert issubclass(ExecutorBroken, concurrent.futures.BrokenExecutor)
    assert issubclass(RemoteTraceback, Exception)
    assert isinstance(pympipool.__version__, str) and pympipool.__version__
    assert pickle.loads(pickle.dumps(RemoteTraceback("x"))).text == "x"


def test_received_arrays_outlive_the_executor():
    with Executor() as exe:
        result = exe.submit(make_array, 200_000).result(timeout=60)
    del exe
    result[0] = 5.0
    assert result[0] == 5.0 and result[-1] == 199_999.0
    assert float(result[1:].sum()) == float(np.arange(1, 200_000).sum())
