"""The ``multiprocessing.pool.Pool`` interfaces: ``Pool`` and ``MPISpawnPool``.

Both run on ``_engine._Engine``; they add multiprocessing's API and its
result objects on top of the engine's futures:

* A map pickles its function once and sends it to every group
  (``DEFINE``); every chunk of ``chunksize`` items (multiprocessing's
  meaning and default) is then one ``FN_KEY | CHUNK`` task carrying the
  plain list of its items (``MAP``; argument tuples for ``starmap``:
  ``STARMAP``), which the worker runs as ``list(map(func, items))`` when
  nothing needs filling; its result is the list of the calls' values.
  After the map's last chunk has finished, the function is dropped
  everywhere (``FORGET``).
* ``map``, ``starmap`` and their ``_async`` forms consume their iterable
  first (they need its length) and send nothing before the whole input has
  been checked and pickled, so a bad iterable raises with nothing in
  flight.  ``imap`` and ``imap_unordered`` read theirs lazily, in a feeder
  thread, at most the workers' widest pipeline window and
  ``_maps.READ_AHEAD_PER_SLOT`` chunks per task of their base depth ahead
  of what the caller has taken (``_maps._Feed``): they
  return at once, also for an endless generator, and a million items cost
  a few chunks' memory.  An exception raised by the input is raised by the
  iterator in its place, after the results before it, and ends it.
  ``close()`` lets them read the rest of their input (``join()`` waits for
  it, as in multiprocessing); ``terminate()`` (and leaving the ``with``
  block) stops them at once.
* Results reach ``AsyncResult`` / ``MapResult`` objects from the dispatcher
  thread directly when no user code runs on their delivery (no callbacks,
  no progress bar), and otherwise through one *result-handler thread* per
  pool: the dispatcher only queues the outcome to it, and the handler
  stores values, advances the progress bar and runs the user's
  ``callback`` / ``error_callback``.  So, as in multiprocessing, a callback
  runs in a thread of the pool, before ``get()`` returns, and a slow
  callback delays the results behind it but never the dispatcher.  The
  handler holds only its queue; it stops once the dispatcher has ended
  (every task is finished by then).  An ``IMapIterator``'s results are
  stored by the dispatcher; its progress bar advances as the caller takes
  them.
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

import importlib
import os
import threading
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Type,
    TypeVar,
    Union,
    cast,
)

from ._checks import _check_count, _Default, _resolve_alias
from ._engine import _Engine
from ._maps import _batches, _in_memory, _Receiver, _tasks_hint
from ._executor import POOL_PIPELINE_DEPTH, POOL_PIPELINE_DEPTH_MAX
from ._pool_results import (
    AsyncResult,
    IMapIterator,
    MapResult,
    _ApplyResult,
    _check_callback,
    _close_bar,
    _length,
    _Relay,
    _ResultHandler,
    _star_args,
)

__all__ = ["Pool", "MPISpawnPool"]

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

    @staticmethod
    def _items(iterable: Iterable[Any], star: bool) -> Sequence[Any]:
        """The input of map / starmap as a sequence whose slices are the
        chunks: a list, tuple or range as it is (a map over range(n) sends
        ranges), anything else as a list; starmap's items as tuples."""
        if type(iterable) in (list, tuple, range):
            items = cast(Sequence[Any], iterable)
        else:
            items = list(iterable)
        if star and (type(items) is range or set(map(type, items)) - {tuple}):
            items = [_star_args(args) for args in items]
        return items

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

    def _bar(self, total: Optional[int]) -> Any:
        if not self._show_progress:
            return None
        import tqdm

        return tqdm.tqdm(total=total)

    def _map_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: Any,
        star: bool,
        callback: Optional[Callable[[List[Any]], object]],
        error_callback: Optional[Callable[[BaseException], object]],
    ) -> MapResult[Any]:
        """Checks and pickles everything, then DEFINEs func and sends one
        chunk task per chunk, each delivered to the MapResult."""
        _check_callback("callback", callback)
        _check_callback("error_callback", error_callback)
        self._check_open()
        if not callable(func):
            raise TypeError(f"{type(func).__name__!r} object is not callable")
        items = self._items(iterable, star)
        length = len(items)
        size = self._chunksize(chunksize, length)
        bar = self._bar(length)
        result: MapResult[Any] = MapResult(length, size, callback, error_callback, bar)
        if not length:
            return result
        receiver: _Receiver = result
        if callback is not None or error_callback is not None or bar is not None:
            receiver = _Relay(self._handler, result)  # user code: not on the dispatcher
        try:
            self._map_eagerly(func, items, size, star, receiver)
        except BaseException:
            _close_bar(bar)
            raise
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
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def starmap_async(
        self,
        func: Callable[..., _T],
        iterable: Iterable[Iterable[Any]],
        chunksize: Optional[int] = None,
        callback: Optional[Callable[[List[_T]], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
    ) -> MapResult[_T]:
        """``starmap`` without waiting: returns a ``MapResult``."""
        return self._map_async(func, iterable, chunksize, True, callback, error_callback)

    def imap(
        self, func: Callable[..., _T], iterable: Iterable[Any], chunksize: int = 1
    ) -> IMapIterator[_T]:
        """An iterator over ``func(x)`` in input order, yielding each result
        as soon as it and those before it are there.  The iterable is read
        lazily, in a thread of the pool, a bounded number of chunks ahead of
        the results taken (the workers' widest pipeline window and
        ``READ_AHEAD_PER_SLOT`` per task of their base depth): this returns at once, also for an endless generator.  An
        exception raised by the iterable is raised in its place, after the
        results before it, and ends the iteration."""
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
        self._check_open()
        if not callable(func):
            raise TypeError(f"{type(func).__name__!r} object is not callable")
        size = self._chunksize(chunksize, 0)
        items = iter(iterable)
        ntasks = _tasks_hint([iterable], size)
        bar = self._bar(_length(iterable)) if self._show_progress else None
        try:
            feed = self._map_lazily(
                func, _batches(items, size), False, ordered, ntasks, _in_memory([iterable])
            )
        except BaseException:
            _close_bar(bar)
            raise
        return IMapIterator(feed, bar)

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
        result: _ApplyResult[_T] = _ApplyResult(callback, error_callback)
        if callback is not None or error_callback is not None:
            result._handler = self._handler
        # Without callbacks nothing of the user's runs on delivery: the
        # dispatcher thread delivers at once, without a hop through the
        # result handler's thread (one wake-up less in every apply()).
        self._submit_call_to(result, func, tuple(args), kwds)
        return result

    # -- lifetime

    def close(self) -> None:
        """No more tasks; those submitted still run, and ``imap`` /
        ``imap_unordered`` iterators read the rest of their input.  The
        workers exit once they are done (``join`` waits for that)."""
        with self._pool_lock:
            if self._pool_state != _RUN:
                return
            self._pool_state = _CLOSE
        self._close_engine(drain_feeds=True)

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
        backend: str = "auto",
        threads_per_core: Optional[int] = None,
        launcher_args: Optional[Sequence[str]] = None,
        hosts: Optional[Sequence[str]] = None,
        hostfile: Union[str, os.PathLike[str], None] = None,
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
            pipeline_depth_max=POOL_PIPELINE_DEPTH_MAX,
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
            backend=backend,
            threads_per_core=threads_per_core,
            launcher_args=launcher_args,
            hosts=hosts,
            hostfile=hostfile,
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
        backend: str = "auto",
        threads_per_core: Optional[int] = None,
        launcher_args: Optional[Sequence[str]] = None,
        hosts: Optional[Sequence[str]] = None,
        hostfile: Union[str, os.PathLike[str], None] = None,
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
            backend=backend,
            threads_per_core=threads_per_core,
            launcher_args=launcher_args,
            hosts=hosts,
            hostfile=hostfile,
        )
