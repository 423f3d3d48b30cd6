"""The ``multiprocessing.pool.Pool`` interfaces: ``Pool`` and ``MPISpawnPool``.

Both run on ``_engine._Engine``; they add multiprocessing's API and its
result objects on top of the engine's futures:

* A map (``map``, ``starmap``, ``imap``, ``imap_unordered`` and their
  ``_async`` forms) consumes its iterable, cuts the calls into chunks of
  ``chunksize`` (multiprocessing's meaning and default), pickles the function
  once and sends it to every group (``DEFINE``); every chunk is then one
  ``FN_KEY | CHUNK`` task whose result is the list of its calls' values.
  After the map's last chunk has finished, the function is dropped
  everywhere (``FORGET``).  Nothing is sent before the whole input has been
  checked, so a bad iterable raises ``TypeError`` with nothing in flight.
* Results reach ``AsyncResult`` / ``MapResult`` / ``IMapIterator`` objects
  through one *result-handler thread* per pool: the dispatcher thread only
  queues finished futures to it, and the handler stores values, advances the
  progress bar and runs the user's ``callback`` / ``error_callback``.  So, as
  in multiprocessing, a callback runs in a thread of the pool, before
  ``get()`` returns, and a slow callback delays the results behind it but
  never the dispatcher.  The handler holds only its queue; it stops once the
  dispatcher has ended (every future is finished by then).  An
  ``apply_async`` without callbacks is the exception: no user code runs on
  its delivery, so the dispatcher stores its value itself and an ``apply()``
  waits for one thread hand-off less.
* ``close`` / ``join`` / ``terminate`` and the context manager follow
  multiprocessing: use after ``close`` or ``terminate`` raises
  ``ValueError("Pool not running")``, ``join`` before them raises
  ``ValueError``, and ``__exit__`` calls ``terminate()``.
* User code never stops the result handler: a callback (or a progress bar)
  that raises any ``BaseException`` is reported and the handler goes on;
  the handler keeps no delivered result alive.  In a forked child the
  handler thread does not exist: deliveries happen at once, in the thread
  that completes the future.
"""

from __future__ import annotations

import collections
import functools
import importlib
import multiprocessing
import os
import queue
import sys
import threading
import traceback
from concurrent.futures import CancelledError, Future
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    List,
    Optional,
    Protocol,
    Tuple,
    Type,
    TypeVar,
    Union,
    cast,
)

from ._engine import _Call, _check_count, _Default, _Engine, _resolve_alias
from ._executor import POOL_PIPELINE_DEPTH

__all__ = ["Pool", "MPISpawnPool", "AsyncResult", "MapResult", "IMapIterator"]

_RUN, _CLOSE, _TERMINATE = "RUN", "CLOSE", "TERMINATE"
_NOT_RUNNING = "Pool not running"
_TQDM_MISSING = (
    "Pool(show_progress=True) needs the package tqdm (Debian: python3-tqdm), "
    "which is not installed"
)

_T = TypeVar("_T")
_PoolT = TypeVar("_PoolT", bound="_PoolBase")

#: Tasks one group of an MPISpawnPool may hold.  MPI-parallel tasks are
#: usually long, so a second task queued behind one would wait while another
#: group may be idle; the round trip saved is negligible next to the task.
SPAWN_PIPELINE_DEPTH = 1


# ---- the result-handler thread ------------------------------------------------


class _Receiver(Protocol):
    """What a finished task is delivered to: a result object (``AsyncResult``,
    ``MapResult``, ``IMapIterator``), with the task's index in its map."""

    def _deliver(self, index: int, success: bool, value: Any) -> None: ...


#: One queued delivery: (receiver, index, future).
_Delivery = Tuple[_Receiver, int, "Future[Any]"]
_R = TypeVar("_R", bound=_Receiver)


class _ResultHandler:
    """One daemon thread that runs queued deliveries in order.  It holds only
    its queue (never the pool), and ends after ``stop()``."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Optional[_Delivery]] = queue.SimpleQueue()
        self._direct = False
        self.thread = threading.Thread(
            target=self._run, args=(self._queue,), name="pympipool-results", daemon=True
        )
        self.thread.start()

    @staticmethod
    def _run(items: queue.SimpleQueue[Optional[_Delivery]]) -> None:
        while True:
            item = items.get()
            if item is None:
                return
            _deliver(*item)
            item = None  # a delivered result is the caller's alone

    def put(self, target: _Receiver, index: int, future: Future[Any]) -> None:
        if self._direct:
            _deliver(target, index, future)
        else:
            self._queue.put((target, index, future))

    def after_fork(self) -> None:
        """In a forked child: there is no handler thread, deliver at once."""
        self._direct = True

    def stop(self) -> None:
        self._queue.put(None)

    def join(self) -> None:
        if self._direct:
            return
        if threading.current_thread() is not self.thread:
            self.thread.join()


def _deliver(target: _Receiver, index: int, future: Future[Any]) -> None:
    try:
        target._deliver(index, *_outcome(future))
    except BaseException:  # a broken result object must not stop the others
        _report("delivering a result")


def _outcome(future: Future[Any]) -> Tuple[bool, Any]:
    if future.cancelled():
        return False, CancelledError()
    exc = future.exception()
    if exc is not None:
        return False, exc
    return True, future.result()


def _report(what: str) -> None:
    """Prints the current exception: a failing user callback must not kill
    the result handler (multiprocessing's would die, and with it every later
    result)."""
    print(f"pympipool: exception while {what}:", file=sys.stderr)
    traceback.print_exc()


def _call_back(function: Optional[Callable[[Any], object]], value: Any) -> None:
    if function is not None:
        try:
            function(value)
        except BaseException:  # SystemExit, KeyboardInterrupt too: see the module
            _report(f"running the callback {function!r}")


def _check_callback(name: str, function: Any) -> None:
    if function is not None and not callable(function):
        raise TypeError(
            f"{name} must be callable or None, not {type(function).__name__}"
        )


# ---- result objects ---------------------------------------------------------------


class AsyncResult(Generic[_T]):
    """The result of ``apply_async`` (and, as ``MapResult``, of ``map_async``
    and ``starmap_async``), as ``multiprocessing.pool.AsyncResult``."""

    def __init__(
        self,
        callback: Optional[Callable[[_T], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
    ) -> None:
        self._event = threading.Event()
        self._callback = callback
        self._error_callback = error_callback
        self._success: Optional[bool] = None
        self._value: Any = None

    def ready(self) -> bool:
        """Whether the call has completed."""
        return self._event.is_set()

    def successful(self) -> bool:
        """Whether the call completed without raising; ``ValueError`` if it
        is not ready yet."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return bool(self._success)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Waits until the result is ready or ``timeout`` seconds passed."""
        self._event.wait(timeout)

    def get(self, timeout: Optional[float] = None) -> _T:
        """The result; re-raises the call's exception; raises
        ``multiprocessing.TimeoutError`` if not ready within ``timeout``."""
        self.wait(timeout)
        if not self.ready():
            raise multiprocessing.TimeoutError
        if self._success:
            return cast(_T, self._value)
        raise self._value

    def _deliver(self, index: int, success: bool, value: Any) -> None:
        self._success, self._value = success, value
        _call_back(self._callback if success else self._error_callback, value)
        self._event.set()


class MapResult(AsyncResult[List[_T]]):
    """The result of ``map_async`` / ``starmap_async``: ``get()`` is the list
    of results in input order, or raises the first exception of any call
    (ready once every chunk has finished, as in multiprocessing)."""

    def __init__(
        self,
        chunk_starts: List[int],
        length: int,
        callback: Optional[Callable[[List[_T]], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
        bar: Any = None,
    ) -> None:
        super().__init__(callback, error_callback)
        self._success = True
        self._value = [None] * length
        self._starts = chunk_starts
        self._left = len(chunk_starts)
        self._bar = bar
        self._length = length
        if self._left == 0:  # empty input: ready at once, no callback
            _close_bar(bar)
            self._event.set()

    def _deliver(self, index: int, success: bool, value: Any) -> None:
        self._left -= 1
        start = self._starts[index]
        end = self._starts[index + 1] if index + 1 < len(self._starts) else self._length
        _advance(self._bar, end - start)
        if success and self._success:
            self._value[start:end] = value
        elif not success and self._success:
            self._success = False
            self._value = value  # only the first exception is kept
        if self._left == 0:
            _close_bar(self._bar)
            if self._success:
                _call_back(self._callback, self._value)
            else:
                _call_back(self._error_callback, self._value)
            self._event.set()


class IMapIterator(Generic[_T]):
    """The iterator of ``imap`` (results in input order) and
    ``imap_unordered`` (in completion order).  ``next(timeout)`` raises
    ``multiprocessing.TimeoutError`` if nothing arrives in time; a failed
    call raises its exception in its place and iteration then goes on."""

    def __init__(
        self, chunk_starts: List[int], length: int, ordered: bool, bar: Any = None
    ) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._items: "collections.deque[Tuple[bool, Any]]" = collections.deque()
        self._sizes = [
            end - start for start, end in zip(chunk_starts, chunk_starts[1:] + [length])
        ]
        nchunks = len(chunk_starts)
        self._chunks_left = nchunks
        self._ordered = ordered
        self._waiting: Dict[int, Tuple[bool, Any]] = {}
        self._next_chunk = 0
        self._bar = bar
        if nchunks == 0:
            _close_bar(bar)

    def __iter__(self) -> IMapIterator[_T]:
        return self

    def next(self, timeout: Optional[float] = None) -> _T:
        """The next result; raises the call's exception in its place,
        ``StopIteration`` at the end, ``multiprocessing.TimeoutError`` when
        nothing arrives within ``timeout`` seconds."""
        with self._cond:
            if not self._items and self._chunks_left > 0:
                self._cond.wait_for(
                    lambda: self._items or self._chunks_left == 0, timeout
                )
            if not self._items:
                if self._chunks_left == 0:
                    raise StopIteration
                raise multiprocessing.TimeoutError
            success, value = self._items.popleft()
        if success:
            return cast(_T, value)
        raise value

    __next__ = next

    def _push(self, success: bool, value: Any) -> None:
        self._chunks_left -= 1
        if success:
            self._items.extend((True, v) for v in value)
        else:
            self._items.append((False, value))

    def _deliver(self, index: int, success: bool, value: Any) -> None:
        _advance(self._bar, self._sizes[index])
        with self._cond:
            if not self._ordered:
                self._push(success, value)
            else:
                self._waiting[index] = (success, value)
                while self._next_chunk in self._waiting:
                    self._push(*self._waiting.pop(self._next_chunk))
                    self._next_chunk += 1
            if self._chunks_left == 0:
                _close_bar(self._bar)
            self._cond.notify_all()


def _close_bar(bar: Any) -> None:
    if bar is not None:
        try:
            bar.close()
        except BaseException:
            _report("closing the progress bar")


def _advance(bar: Any, n: int) -> None:
    if bar is not None:
        try:
            bar.update(n)
        except BaseException:
            _report("updating the progress bar")


# ---- the pools -------------------------------------------------------------------


class _PoolBase(_Engine):
    """multiprocessing's Pool API over the engine; ``_groups`` is the number
    of workers (groups) for the default chunksize."""

    _groups: int
    _show_progress: bool = False

    def _start_pool(self, **engine_args: Any) -> None:
        self._pool_state = _RUN
        self._pool_lock = threading.Lock()
        handler = _ResultHandler()
        self._handler = handler
        try:
            self._start_engine(exit_hooks=[handler.stop], **engine_args)
        except BaseException:
            handler.stop()
            raise
        self._state.fork_hooks.append(handler.after_fork)

    # -- state

    def _check_open(self) -> None:
        if self._state.forked:
            self._check_broken()
        if self._pool_state != _RUN:
            raise ValueError(_NOT_RUNNING)
        self._check_broken()

    def __reduce__(self) -> Any:
        raise NotImplementedError(
            "pool objects cannot be passed between processes or pickled"
        )

    def __repr__(self) -> str:
        name = type(self).__qualname__
        return f"<{name} state={self._pool_state} groups={self._groups}>"

    # -- maps

    def _calls(self, iterable: Iterable[Any], star: bool) -> List[_Call]:
        # One shared, empty kwargs dict: pickled once per chunk.
        no_kwargs: Dict[str, Any] = {}
        if star:
            calls: List[_Call] = []
            for args in iterable:
                try:
                    calls.append((tuple(args), no_kwargs))
                except TypeError:
                    raise TypeError(
                        f"starmap needs an iterable of argument iterables; "
                        f"{type(args).__name__!r} object is not iterable"
                    ) from None
            return calls
        return [((x,), no_kwargs) for x in iterable]

    def _chunksize(self, chunksize: Any, ncalls: int) -> int:
        if chunksize is None:
            size, extra = divmod(ncalls, self._groups * 4)
            return size + 1 if extra else max(size, 1)
        if isinstance(chunksize, bool) or not isinstance(chunksize, int):
            raise TypeError(
                f"chunksize must be an int or None, not {type(chunksize).__name__}"
            )
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")
        return chunksize

    def _bar(self, total: int) -> Any:
        if not self._show_progress:
            return None
        import tqdm

        return tqdm.tqdm(total=total)

    def _map(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: Any,
        star: bool,
        make_result: Callable[[List[int], int, Any], _R],
    ) -> _R:
        """Checks everything, then DEFINEs func and sends one chunk task per
        chunk; make_result(chunk_starts, length, bar) builds the result
        object every chunk is delivered to."""
        self._check_open()
        if not callable(func):
            raise TypeError(f"{type(func).__name__!r} object is not callable")
        calls = self._calls(iterable, star)
        size = self._chunksize(chunksize, len(calls))
        starts = list(range(0, len(calls), size))
        batches = [calls[s : s + size] for s in starts]
        bar = self._bar(len(calls))
        result = make_result(starts, len(calls), bar)
        if not batches:
            return result
        try:
            futures = self._submit_keyed(func, batches, chunk=True)
        except BaseException:
            _close_bar(bar)
            raise
        handler = self._handler
        for index, future in enumerate(futures):
            future.add_done_callback(functools.partial(handler.put, result, index))
        return result

    def map(
        self,
        func: Callable[..., _T],
        iterable: Iterable[Any],
        chunksize: Optional[int] = None,
    ) -> List[_T]:
        """``[func(x) for x in iterable]`` computed by the workers, in input
        order.  The first exception of any call is raised (same class, with
        the remote traceback as ``__cause__``); the pool stays usable."""
        return self.map_async(func, iterable, chunksize).get()

    def starmap(
        self,
        func: Callable[..., _T],
        iterable: Iterable[Iterable[Any]],
        chunksize: Optional[int] = None,
    ) -> List[_T]:
        """Like ``map`` but each item is an iterable of arguments:
        ``[func(*args) for args in iterable]``."""
        return self.starmap_async(func, iterable, chunksize).get()

    def map_async(
        self,
        func: Callable[..., _T],
        iterable: Iterable[Any],
        chunksize: Optional[int] = None,
        callback: Optional[Callable[[List[_T]], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
    ) -> MapResult[_T]:
        """``map`` without waiting: returns a ``MapResult``.  ``callback``
        gets the list of results, ``error_callback`` the first exception."""
        _check_callback("callback", callback)
        _check_callback("error_callback", error_callback)
        return self._map(
            func,
            iterable,
            chunksize,
            False,
            lambda s, n, bar: MapResult(s, n, callback, error_callback, bar),
        )

    def starmap_async(
        self,
        func: Callable[..., _T],
        iterable: Iterable[Iterable[Any]],
        chunksize: Optional[int] = None,
        callback: Optional[Callable[[List[_T]], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
    ) -> MapResult[_T]:
        """``starmap`` without waiting: returns a ``MapResult``."""
        _check_callback("callback", callback)
        _check_callback("error_callback", error_callback)
        return self._map(
            func,
            iterable,
            chunksize,
            True,
            lambda s, n, bar: MapResult(s, n, callback, error_callback, bar),
        )

    def imap(
        self, func: Callable[..., _T], iterable: Iterable[Any], chunksize: int = 1
    ) -> IMapIterator[_T]:
        """An iterator over ``func(x)`` in input order, yielding each result
        as soon as it and those before it are there.  The iterable is
        consumed (and checked) by this call, before anything is sent."""
        return self._imap(func, iterable, chunksize, ordered=True)

    def imap_unordered(
        self, func: Callable[..., _T], iterable: Iterable[Any], chunksize: int = 1
    ) -> IMapIterator[_T]:
        """Like ``imap``, but results come in the order they finish."""
        return self._imap(func, iterable, chunksize, ordered=False)

    def _imap(
        self,
        func: Callable[..., _T],
        iterable: Iterable[Any],
        chunksize: Any,
        ordered: bool,
    ) -> IMapIterator[_T]:
        if chunksize is None:
            raise TypeError("chunksize must be an int, not NoneType")
        return self._map(
            func,
            iterable,
            chunksize,
            False,
            lambda s, n, bar: IMapIterator(s, n, ordered, bar),
        )

    def apply(
        self,
        func: Callable[..., _T],
        args: Iterable[Any] = (),
        kwds: Optional[Dict[str, Any]] = None,
    ) -> _T:
        """``func(*args, **kwds)`` on one worker; waits for the result."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(
        self,
        func: Callable[..., _T],
        args: Iterable[Any] = (),
        kwds: Optional[Dict[str, Any]] = None,
        callback: Optional[Callable[[_T], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
    ) -> AsyncResult[_T]:
        """``apply`` without waiting: returns an ``AsyncResult``."""
        _check_callback("callback", callback)
        _check_callback("error_callback", error_callback)
        self._check_open()
        kwds = {} if kwds is None else kwds
        if not isinstance(kwds, dict):
            raise TypeError(f"kwds must be a dict, not {type(kwds).__name__}")
        future = self._submit_call(func, tuple(args), kwds)
        result = AsyncResult(callback, error_callback)
        if callback is None and error_callback is None:
            # Nothing of the user's runs: deliver on the dispatcher thread
            # at once, without a hop through the result handler's thread
            # (one wake-up less in every apply()).
            future.add_done_callback(lambda f: result._deliver(0, *_outcome(f)))
        else:
            handler = self._handler
            future.add_done_callback(lambda f: handler.put(result, 0, f))
        return result

    # -- lifetime

    def close(self) -> None:
        """No more tasks; those submitted still run.  The workers exit once
        they are done (``join`` waits for that)."""
        with self._pool_lock:
            if self._pool_state != _RUN:
                return
            self._pool_state = _CLOSE
        self._close_engine()

    def terminate(self) -> None:
        """Stops the workers now.  Tasks not finished are lost: their results
        fail with ``ExecutorBroken("the pool was terminated")``."""
        with self._pool_lock:
            if self._pool_state == _TERMINATE:
                return
            self._pool_state = _TERMINATE
        self._terminate_engine("the pool was terminated")

    def join(self) -> None:
        """Waits for the workers to exit; call ``close`` or ``terminate``
        first (``ValueError`` otherwise, as in multiprocessing).  In a forked
        child the pool is the parent's: this returns at once."""
        if self._state.forked:
            return
        if self._pool_state == _RUN:
            raise ValueError("Pool is still running")
        self._join_engine()
        self._handler.join()

    def shutdown(self, wait: bool = True) -> None:
        """As in the original pympipool documentation: ``close()``, and with
        ``wait`` also ``join()``: the tasks already submitted finish and the
        MPI job exits."""
        self.close()
        if wait:
            self.join()

    def __enter__(self: _PoolT) -> _PoolT:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> None:
        # As multiprocessing.Pool: leaving the block terminates the pool.
        # Results obtained inside the block (map, get) are complete by then;
        # pending *_async results are lost.
        self.terminate()


class Pool(_PoolBase):
    """The ``multiprocessing.pool.Pool`` interface over ``max_workers``
    serial workers (one MPI job, one rank per worker).

    ``map``, ``starmap``, ``imap``, ``imap_unordered``, ``apply``,
    ``apply_async``, ``map_async``, ``starmap_async``, ``close``, ``join``,
    ``terminate`` and the context manager behave as in multiprocessing
    (``__exit__`` calls ``terminate()``, as there); ``shutdown(wait=True)``
    is ``close()`` plus, with ``wait``, ``join()``.  ``chunksize`` has
    multiprocessing's meaning and default.  A map pickles its function once;
    workers keep it by key for the rest of the map.

    Parameters: ``max_workers`` (``cores`` is another name for it, as in the
    original documentation); ``show_progress`` shows a tqdm progress bar for
    every map, advanced as chunks complete (needs ``tqdm``, Debian
    ``python3-tqdm``); the others as for ``PoolExecutor``.  The positional
    parameters are pympipool 0.5's, in its order; everything added since is
    keyword-only.
    """

    def __init__(
        self,
        max_workers: int = _Default(1),
        oversubscribe: bool = False,
        enable_flux_backend: bool = False,
        cwd: Union[str, os.PathLike[str], None] = None,
        queue_adapter: Any = None,
        queue_adapter_kwargs: Optional[Dict[str, Any]] = None,
        *,
        init_function: Optional[Callable[[], Dict[str, Any]]] = None,
        show_progress: bool = False,
        cores: Optional[int] = None,
        restart_limit: int = 0,
        run_time_max: Optional[float] = None,
        hostname: Optional[str] = None,
        zero_copy: bool = True,
    ) -> None:
        name, value = _resolve_alias("max_workers", max_workers, "cores", cores)
        workers = _check_count(name, value)
        if not isinstance(show_progress, bool):
            raise TypeError(
                f"show_progress must be a bool, not {type(show_progress).__name__}"
            )
        if show_progress:
            try:
                importlib.import_module("tqdm")
            except ImportError:
                raise ImportError(_TQDM_MISSING, name="tqdm") from None
        self._groups = workers
        self._show_progress = show_progress
        self._start_pool(
            ranks=workers,
            ranks_per_group=1,
            pipeline_depth=POOL_PIPELINE_DEPTH,
            all_ranks=False,
            oversubscribe=oversubscribe,
            enable_flux_backend=enable_flux_backend,
            init_function=init_function,
            cwd=cwd,
            queue_adapter=queue_adapter,
            queue_adapter_kwargs=queue_adapter_kwargs,
            restart_limit=restart_limit,
            run_time_max=run_time_max,
            hostname=hostname,
            zero_copy=zero_copy,
        )


class MPISpawnPool(_PoolBase):
    """``map`` / ``starmap`` (and the rest of the Pool interface) of
    MPI-parallel functions: one MPI job of ``max_ranks`` ranks split into
    ``max_ranks // ranks_per_task`` groups of ``ranks_per_task`` ranks, each
    group one worker, fed by load.

    A function that has a parameter named ``comm`` receives its group's
    communicator.  Every rank of the group runs each call; the result is the
    one of the group's rank 0, one per input, in input order.  Groups are
    made once at start-up (``MPI_Comm_split``), not spawned per map.  Each
    group holds one task at a time (``SPAWN_PIPELINE_DEPTH``).

    Parameters: ``max_ranks`` (``cores``) and ``ranks_per_task``
    (``cores_per_task``), both >= 1, ``ranks_per_task <= max_ranks``, and
    ``max_ranks`` divisible by ``ranks_per_task``; ``oversubscribe``, ``cwd``,
    ``queue_adapter``, ``queue_adapter_kwargs`` as for ``Executor``.
    """

    def __init__(
        self,
        max_ranks: int = _Default(1),
        ranks_per_task: int = _Default(1),
        oversubscribe: bool = False,
        cwd: Union[str, os.PathLike[str], None] = None,
        queue_adapter: Any = None,
        queue_adapter_kwargs: Optional[Dict[str, Any]] = None,
        *,
        cores: Optional[int] = None,
        cores_per_task: Optional[int] = None,
        restart_limit: int = 0,
        run_time_max: Optional[float] = None,
        hostname: Optional[str] = None,
        zero_copy: bool = True,
    ) -> None:
        ranks_name, ranks = _resolve_alias("max_ranks", max_ranks, "cores", cores)
        per_name, per_task = _resolve_alias(
            "ranks_per_task", ranks_per_task, "cores_per_task", cores_per_task
        )
        ranks = _check_count(ranks_name, ranks)
        per_task = _check_count(per_name, per_task)
        if per_task > ranks:
            raise ValueError(
                f"{per_name} ({per_task}) must not exceed {ranks_name} ({ranks})"
            )
        if ranks % per_task:
            raise ValueError(
                f"{ranks_name} ({ranks}) must be a multiple of {per_name} ({per_task})"
            )
        self._groups = ranks // per_task
        self._start_pool(
            ranks=ranks,
            ranks_per_group=per_task,
            pipeline_depth=SPAWN_PIPELINE_DEPTH,
            all_ranks=False,
            oversubscribe=oversubscribe,
            cwd=cwd,
            queue_adapter=queue_adapter,
            queue_adapter_kwargs=queue_adapter_kwargs,
            restart_limit=restart_limit,
            run_time_max=run_time_max,
            hostname=hostname,
            zero_copy=zero_copy,
        )
