"""The standard library's exception contract, class by class.

``concurrent.futures`` and ``multiprocessing`` users write ``except``
clauses against the standard classes; pympipool raises those classes (or
subclasses that carry more detail):

* a task that calls ``sys.exit(n)``: ``SystemExit`` with ``.code == n``
  (``TaskExitError`` also names the rank and host), in every interface;
  the worker survives;
* a result that cannot be pickled on the worker: the pickler's own
  exception (``pickle.PicklingError``, ``TypeError``, even ``SystemExit``),
  with the result's type in a note;
* counts <= 0: ``ValueError`` reading like the standard library's
  ("max_workers must be greater than 0").

And the deliberate differences that are better than the standard library:
an unpicklable argument raises at ``submit`` with nothing sent; an object
that fails to unpickle on a worker fails only its own call.
"""

from __future__ import annotations

import pickle
import sys
import threading

import pytest

from conftest import started
from pympipool import Executor, MPISpawnPool, Pool, PoolExecutor, TaskExitError

TIMEOUT = 60


def exit_with(code):
    sys.exit(code)


def add(a, b):
    return a + b


class RefusesPickling:
    def __reduce__(self):
        raise pickle.PicklingError("refuses to be pickled")


class ExitsWhenPickled:
    def __reduce__(self):
        sys.exit(9)


def return_refusing():
    return RefusesPickling()


def return_exiting():
    return ExitsWhenPickled()


def _unpickle_fails():
    raise ImportError("no such thing here")


class FailsOnWorker:
    """Pickles here; unpickling it on a worker raises ImportError."""

    def __reduce__(self):
        return (_unpickle_fails, ())


@pytest.fixture(scope="module", params=["Executor1", "Executor2", "PoolExecutor"])
def executor(request):
    exe = {
        "Executor1": lambda: started(Executor(cores=1), 1),
        "Executor2": lambda: started(Executor(cores=2), 1),
        "PoolExecutor": lambda: started(PoolExecutor(max_workers=2), 2),
    }[request.param]()
    exe.kind = request.param
    with exe:
        yield exe


def one(exe, value):
    return [value, value] if exe.kind == "Executor2" else value


def test_sys_exit_is_system_exit(executor):
    future = executor.submit(exit_with, 5)
    with pytest.raises(SystemExit) as info:
        future.result(TIMEOUT)
    assert info.value.code == 5
    assert isinstance(info.value, TaskExitError) and info.value.rank == 0
    assert "sys.exit(5)" in str(info.value)
    assert executor.submit(add, 1, 2).result(TIMEOUT) == one(executor, 3)


def test_sys_exit_without_a_code(executor):
    with pytest.raises(SystemExit) as info:
        executor.submit(sys.exit).result(TIMEOUT)
    assert info.value.code is None


def test_sys_exit_in_the_pools():
    with Pool(1) as pool:
        with pytest.raises(SystemExit) as info:
            pool.apply(exit_with, (2,))
        assert info.value.code == 2
        with pytest.raises(SystemExit):
            pool.map(exit_with, [3])
        assert pool.map(abs, [-4]) == [4]
    with MPISpawnPool(max_ranks=2, ranks_per_task=2) as spool:
        with pytest.raises(SystemExit) as info:
            spool.map(exit_with, [6])
        assert info.value.code == 6
        assert spool.map(abs, [-4]) == [4]


def test_uncaught_system_exit_ends_the_caller_with_its_code(tmp_path):
    import os
    import subprocess

    script = tmp_path / "exits.py"
    script.write_text(
        "import sys\n"
        "from pympipool import PoolExecutor\n"
        "with PoolExecutor(max_workers=1) as exe:\n"
        "    exe.submit(sys.exit, 4).result()\n"
        "print('not reached')\n"
    )
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)),
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "not reached" not in proc.stdout


def test_result_that_cannot_be_pickled_raises_the_picklers_exception(executor):
    with pytest.raises(pickle.PicklingError, match="refuses to be pickled") as info:
        executor.submit(return_refusing).result(TIMEOUT)
    notes = getattr(info.value, "__notes__", [])
    assert any("RefusesPickling could not be pickled on rank" in n for n in notes), notes
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock' object"):
        executor.submit(threading.Lock).result(TIMEOUT)
    with pytest.raises(SystemExit) as exit_info:
        executor.submit(return_exiting).result(TIMEOUT)
    assert exit_info.value.code == 9
    assert executor.submit(add, 2, 3).result(TIMEOUT) == one(executor, 5)


def test_unpicklable_argument_raises_at_submit(executor):
    pending = len(executor._state.futures)
    with pytest.raises(TypeError, match="cannot pickle"):
        executor.submit(add, threading.Lock(), 1)
    assert len(executor._state.futures) == pending  # nothing was sent


def test_object_failing_on_the_worker_fails_its_call_only(executor):
    with pytest.raises(ImportError, match="no such thing here"):
        executor.submit(add, FailsOnWorker(), 1).result(TIMEOUT)
    assert executor.submit(add, 4, 4).result(TIMEOUT) == one(executor, 8)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PoolExecutor(max_workers=0), "max_workers must be greater than 0"),
        (lambda: PoolExecutor(max_workers=-1), "max_workers must be greater than 0"),
        (lambda: PoolExecutor(cores=0), "cores must be greater than 0"),
        (lambda: Executor(cores=0), "cores must be greater than 0"),
        (lambda: Pool(0), "max_workers must be greater than 0"),
        (lambda: MPISpawnPool(max_ranks=0), "max_ranks must be greater than 0"),
        (lambda: MPISpawnPool(max_ranks=2, ranks_per_task=0), "ranks_per_task must be greater than 0"),
    ],
)
def test_counts_below_one_are_value_errors(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == message
