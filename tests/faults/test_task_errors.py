"""Faults the executor survives: the task raises, calls sys.exit(), returns
something unpicklable, gets an unpicklable argument, or names a function
the worker cannot unpickle; init_function raises; one rank of an
MPI-parallel task raises.  One executor per kind serves every test of this
module (it must keep working after each fault); it is shut down at the end
and every one of its processes must be gone."""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time

import pytest

from conftest import KINDS, groups_of, job_pids, make, timed, wait_gone

from pympipool import RemoteTraceback, TaskExitError

pytestmark = pytest.mark.shared_executor
BOUND = 5.0  # seconds for an error to reach the caller


class UserError(Exception):
    """A user-defined exception (pickled by value with this module)."""

    def __init__(self, message, code):
        super().__init__(message, code)
        self.code = code


def add(a, b=0):
    return a + b


def raise_builtin():
    raise ValueError("builtin marker 17")


def raise_user():
    raise UserError("user marker 23", 23)


def call_sys_exit():
    sys.exit(3)


def raise_system_exit():
    raise SystemExit(4)


def return_lock():
    return threading.Lock()


def rank_one_raises(comm):
    if comm.Get_rank() == 1:
        raise KeyError("rank 1 marker 31")
    return comm.Get_rank()


def init_fails():
    raise ArithmeticError("init marker 41")


class _ModuleRef:
    """Unpickles as ``importlib.import_module(name)``: on the worker, where
    the module does not exist, unpickling fails."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return (importlib.import_module, (self.name,))


class CallerOnlyFunction:
    """A function of a module that exists only on the caller's side, sent by
    reference (module name + attribute), as cloudpickle sends functions of
    importable modules."""

    def __init__(self, module, name):
        self.module = module
        self.name = name

    def __call__(self, *args):
        return getattr(importlib.import_module(self.module), self.name)(*args)

    def __reduce__(self):
        return (getattr, (_ModuleRef(self.module), self.name))


@pytest.fixture(scope="module", params=KINDS)
def ex(request):
    executor = make(request.param)
    executor.kind = request.param
    assert executor.submit(add, 1, 2).result(timeout=60) in (3, [3, 3])
    pids = job_pids(executor, groups_of(request.param))
    yield executor
    executor.shutdown(wait=True)
    wait_gone(pids, 10)


def expect_ok(ex, value=5):
    """The executor still works (every kind, every rank)."""
    futures = [ex.submit(add, value, i) for i in range(4)]
    got = [f.result(timeout=30) for f in futures]
    if ex.kind == "exec2":
        assert got == [[value + i] * 2 for i in range(4)]
    else:
        assert got == [value + i for i in range(4)]


def fail_time(future):
    """(exception, seconds) of a future that must fail."""
    start = time.monotonic()
    with pytest.raises(BaseException) as info:
        future.result(timeout=30)
    return info.value, time.monotonic() - start


@pytest.mark.parametrize("which", ["builtin", "user"])
def test_task_raises(ex, which):
    start = time.monotonic()
    future = ex.submit(raise_builtin if which == "builtin" else raise_user)
    with pytest.raises(ValueError if which == "builtin" else UserError) as info:
        future.result(timeout=30)
    timed(f"task raises ({which})", ex.kind, time.monotonic() - start, BOUND)
    assert "marker" in str(info.value)
    if which == "user":
        assert info.value.code == 23
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert cause.text.startswith("Rank 0 of ")
    assert "raise_" in cause.text and "marker" in cause.text
    expect_ok(ex)


@pytest.mark.parametrize("how", ["sys.exit(3)", "raise SystemExit(4)"])
def test_task_calls_sys_exit(ex, how):
    code = 3 if how == "sys.exit(3)" else 4
    start = time.monotonic()
    future = ex.submit(call_sys_exit if code == 3 else raise_system_exit)
    exc, _ = fail_time(future)
    timed(f"task {how}", ex.kind, time.monotonic() - start, BOUND)
    # SystemExit with the task's code, as ProcessPoolExecutor raises it;
    # the subclass also says where
    assert isinstance(exc, SystemExit) and isinstance(exc, TaskExitError)
    assert not isinstance(exc, Exception)
    assert exc.code == code and exc.rank == 0
    assert str(exc) == f"the task called sys.exit({code}) on rank 0 (host {exc.host})"
    assert exc.host
    assert isinstance(exc.__cause__, RemoteTraceback)
    assert "SystemExit" in exc.__cause__.text
    # the worker survived: same job, it still answers
    expect_ok(ex)
    assert not ex.broken


def test_result_cannot_be_pickled(ex):
    start = time.monotonic()
    exc, _ = fail_time(ex.submit(return_lock))
    timed("result cannot be pickled", ex.kind, time.monotonic() - start, BOUND)
    # the pickler's own exception, the result's type in a note
    assert type(exc) is TypeError
    assert "cannot pickle '_thread.lock' object" in str(exc)
    notes = getattr(exc, "__notes__", [])
    assert any("result of type _thread.lock could not be pickled on rank 0" in n for n in notes)
    expect_ok(ex)


def test_argument_cannot_be_pickled(ex):
    state = ex._state
    ids_before = repr(state.ids)  # itertools.count: the next task id
    futures_before = dict(state.futures.items())
    start = time.monotonic()
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock' object"):
        ex.submit(add, threading.Lock())
    timed("argument cannot be pickled", ex.kind, time.monotonic() - start, 1.0)
    # nothing was sent: no task id was taken (only _State.submit, the one
    # way to the frontend, takes one), no future registered, none pending
    assert repr(state.ids) == ids_before
    assert dict(state.futures.items()) == futures_before
    assert len(ex) == 0 and state.pending() == 0
    expect_ok(ex)


def test_function_cannot_be_unpickled(ex, tmp_path):
    name = f"pmp_caller_only_{os.getpid()}_{ex.kind}"
    (tmp_path / f"{name}.py").write_text("def triple(x):\n    return 3 * x\n")
    sys.path.insert(0, str(tmp_path))  # after the executor started: workers lack it
    try:
        fn = CallerOnlyFunction(name, "triple")
        assert fn(2) == 6  # it works here
        start = time.monotonic()
        exc, _ = fail_time(ex.submit(fn, 2))
        timed("function cannot be unpickled", ex.kind, time.monotonic() - start, BOUND)
        assert isinstance(exc, ModuleNotFoundError)
        assert f"No module named '{name}'" in str(exc)
        if ex.kind == "pool2":  # map sends the function once, by key
            start = time.monotonic()
            with pytest.raises(ModuleNotFoundError, match=name):
                list(ex.map(fn, [1, 2, 3], timeout=30))
            timed("function cannot be unpickled (map)", ex.kind, time.monotonic() - start,
                  BOUND)
    finally:
        sys.path.remove(str(tmp_path))
    expect_ok(ex)


def test_rank_of_parallel_task_raises(ex):
    if ex.kind != "exec2":
        pytest.skip("needs an MPI-parallel task (Executor(cores=2))")
    start = time.monotonic()
    exc, _ = fail_time(ex.submit(rank_one_raises))
    timed("one rank raises, others return", ex.kind, time.monotonic() - start, BOUND)
    assert isinstance(exc, KeyError) and "rank 1 marker 31" in str(exc)
    assert exc.__cause__.text.startswith("Rank 1 of 2 on ")
    expect_ok(ex)  # no deadlock: the group answers the next task


@pytest.mark.parametrize("kind", KINDS)
def test_init_function_raises(kind):
    """Every future of the executor fails with init_function's exception."""
    ex = make(kind, init_function=init_fails)
    try:
        start = time.monotonic()
        futures = [ex.submit(add, i, 1) for i in range(5)]
        for future in futures:
            with pytest.raises(ArithmeticError, match="init marker 41"):
                future.result(timeout=60)
        timed("init_function raises", kind, time.monotonic() - start, 10.0)
        cause = futures[0].exception().__cause__
        assert isinstance(cause, RemoteTraceback) and "init_fails" in cause.text
        # and so does every later one
        with pytest.raises(ArithmeticError):
            ex.submit(add, 1).result(timeout=30)
        pids = job_pids(ex, groups_of(kind))
    finally:
        ex.shutdown(wait=True)
    wait_gone(pids, 10)
