"""No thread of pympipool's dies of user data.

The dispatcher thread decodes every result and runs every done-callback;
the pools' result-handler thread runs ``callback`` / ``error_callback`` and
advances progress bars.  Whatever user code raises there -- an ``Exception``
or any ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``, a class of
its own) -- fails that one future or is logged, and the thread goes on:
the next call of the same executor still completes.

* a result whose unpickling in the caller raises: ``result()`` raises that
  exception, for every interface;
* an error record whose exception cannot be rebuilt (its unpickling raises):
  a ``RuntimeError`` named after its type;
* a done-callback that raises: logged, the callbacks after it still run;
* a Pool ``callback`` / ``error_callback`` that raises: reported, later
  results still arrive.
"""

from __future__ import annotations

import logging
import threading

import pytest

from conftest import started
from pympipool import Executor, MPISpawnPool, Pool, PoolExecutor

TIMEOUT = 60


class Custom(BaseException):
    """A BaseException of the user's own, neither Exception nor exit."""


RAISES = {
    "Exception": lambda: ValueError("poisoned"),
    "SystemExit": lambda: SystemExit(7),
    "KeyboardInterrupt": lambda: KeyboardInterrupt("poisoned"),
    "BaseException": lambda: Custom("poisoned"),
}
EXPECTED = {
    "Exception": ValueError,
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "BaseException": Custom,
}


def _explode(kind):
    """Runs when a Poison is unpickled: in the caller, never on a worker."""
    raise RAISES[kind]()


class Poison:
    """Pickles fine on a worker; unpickling it raises ``kind``."""

    def __init__(self, kind):
        self.kind = kind

    def __reduce__(self):
        return (_explode, (self.kind,))


def poison(kind):
    return Poison(kind)


class PoisonedError(Exception):
    """An exception whose own unpickling raises ``kind``."""

    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind

    def __reduce__(self):
        return (_explode, (self.kind,))


def raise_poisoned(kind):
    raise PoisonedError(kind)


def add(a, b):
    return a + b


def sleep_then_add(seconds, a, b):
    import time

    time.sleep(seconds)
    return a + b


KINDS = sorted(RAISES)


@pytest.fixture(scope="module", params=["Executor1", "Executor2", "PoolExecutor"])
def executor(request):
    if request.param == "Executor1":
        exe = started(Executor(cores=1), 1)
    elif request.param == "Executor2":
        exe = started(Executor(cores=2), 1)
    else:
        exe = started(PoolExecutor(max_workers=2), 2)
    exe.kind = request.param
    with exe:
        yield exe


@pytest.fixture(scope="module")
def pool():
    with Pool(2) as p:
        yield started(p, 2)


def one_value(exe, value):
    return value if exe.kind != "Executor2" else [value, value]


@pytest.mark.parametrize("kind", KINDS)
def test_result_that_cannot_be_unpickled_fails_its_future_only(executor, kind):
    future = executor.submit(poison, kind)
    with pytest.raises(EXPECTED[kind]) as info:
        future.result(TIMEOUT)
    if kind == "SystemExit":
        assert info.value.code == 7
    assert executor._dispatcher.is_alive()
    assert executor.submit(add, 1, 2).result(TIMEOUT) == one_value(executor, 3)
    assert not executor.broken


@pytest.mark.parametrize("kind", KINDS)
def test_error_that_cannot_be_unpickled_becomes_a_runtime_error(executor, kind):
    future = executor.submit(raise_poisoned, kind)
    with pytest.raises(RuntimeError, match="PoisonedError"):
        future.result(TIMEOUT)
    assert executor.submit(add, 2, 2).result(TIMEOUT) == one_value(executor, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_done_callback_that_raises_is_logged_and_the_next_one_runs(executor, kind, caplog):
    ran = threading.Event()

    def bad(_future):
        raise RAISES[kind]()

    # The callbacks are added while the call cannot have finished yet, so
    # they run on the dispatcher thread.
    future = executor.submit(sleep_then_add, 0.5, 1, 1)
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        future.add_done_callback(bad)
        future.add_done_callback(lambda _f: ran.set())
        assert not future.done()
        assert future.result(TIMEOUT) == one_value(executor, 2)
        assert ran.wait(TIMEOUT)
        # the dispatcher survived: the next call completes
        assert executor.submit(add, 3, 4).result(TIMEOUT) == one_value(executor, 7)
    assert executor._dispatcher.is_alive()
    assert any("exception calling callback" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", KINDS)
def test_pool_results_that_cannot_be_unpickled(pool, kind):
    with pytest.raises(EXPECTED[kind]):
        pool.apply_async(poison, (kind,)).get(TIMEOUT)
    with pytest.raises(EXPECTED[kind]):
        pool.map(poison, [kind, kind], chunksize=1)
    it = pool.imap(poison, [kind])
    with pytest.raises(EXPECTED[kind]):
        next(it)
    assert pool.apply(add, (1, 2)) == 3
    assert pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7]


@pytest.mark.parametrize("kind", KINDS)
def test_pool_callbacks_that_raise_do_not_stop_the_handler(pool, kind, capfd):
    def bad(_value):
        raise RAISES[kind]()

    first = pool.apply_async(add, (1, 2), callback=bad)
    assert first.get(TIMEOUT) == 3
    second = pool.apply_async(raise_poisoned, ("Exception",), error_callback=bad)
    with pytest.raises(RuntimeError):
        second.get(TIMEOUT)
    mapped = pool.map_async(add, [1, 2], callback=bad)
    with pytest.raises(TypeError):  # add(x) misses b: the map fails
        mapped.get(TIMEOUT)
    good = pool.starmap_async(add, [(5, 6)], callback=bad)
    assert good.get(TIMEOUT) == [11]
    # the result handler is alive: later results still arrive
    assert pool._handler.thread.is_alive()
    assert pool.apply_async(add, (2, 2)).get(TIMEOUT) == 4
    err = capfd.readouterr().err
    assert "exception while running the callback" in err


@pytest.mark.parametrize("kind", ["SystemExit", "BaseException"])
def test_spawn_pool_result_that_cannot_be_unpickled(kind):
    with MPISpawnPool(max_ranks=2, ranks_per_task=1) as pool:
        with pytest.raises(EXPECTED[kind]):
            pool.map(poison, [kind])
        assert pool.map(abs, [-1, -2]) == [1, 2]
