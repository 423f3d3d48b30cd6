"""The ``concurrent.futures.Executor`` interfaces: ``Executor`` and
``PoolExecutor``.

Both are thin layers over ``_engine._Engine`` (validation, launch, the
dispatcher thread, the futures table, the maps, shutdown and clean-up: see
``_engine`` and the modules it names):

* ``Executor(cores=N)`` is one group of N ranks, strict first in first out,
  one task at a time; every call runs on every rank.  The group holds the
  running task and the next (``pipeline_depth=2``), like a ``PoolExecutor``
  worker.
* ``PoolExecutor(max_workers=N)`` is N groups of one rank each, every one of
  them a worker (none is spent as a broker); the frontend hands each task to
  the group with the fewest in flight the moment one has room, driven by
  events, never by a polling interval.  Each worker may hold two tasks
  (``pipeline_depth=2``), see ``PoolExecutor``.
"""

from __future__ import annotations

import os
import pickle
import queue
import time
import warnings
from concurrent.futures import Executor as _FuturesExecutor
from concurrent.futures import Future
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
    cast,
)

from . import _core
from ._cache import ResultCache
from ._checks import _check_count, _Default, _resolve_alias
from ._dependencies import Graph, needs_feeder, resolve_when_done
from ._engine import _Engine
from ._futures import _AFTER_SHUTDOWN, ExecutorBroken
from ._maps import _batches, _Feed, _in_memory, _tasks_hint

__all__ = ["Executor", "ExecutorBroken", "PoolExecutor", "cancel_items_in_queue"]

_T = TypeVar("_T")
_ExecutorT = TypeVar("_ExecutorT", bound="_ExecutorBase")


class _ExecutorBase(_Engine, _FuturesExecutor):
    """``concurrent.futures.Executor`` semantics on top of the engine."""

    _graph: Graph

    def submit(
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        resource_dict: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> Future[Any]:
        """Schedules ``fn(*args, **kwargs)``; returns a ``Future``.  The call is
        pickled here: an unpicklable argument raises pickle's exception at once
        and the executor keeps working.  With ``Executor(cores > 1)`` the
        future's result is the list of every rank's value.

        Futures among the arguments (also inside lists, tuples and dicts)
        are replaced by their results: the call is sent once they are done,
        and fails (or is cancelled) as soon as one of them does
        (docs/dependencies_and_cache.md).  ``resource_dict`` (keyword-only)
        may hold ``cache_key``, the name of the call's entry in the cache of
        ``cache_directory``."""
        # Straight to the engine, as before; a Future cannot be pickled (it
        # holds a lock), so a call with futures among its arguments fails
        # there and only then goes through the graph (_dependencies): the
        # others pay nothing for the scan.  The same lines are
        # PoolExecutor.submit's (one frame less per call).
        graph = self._graph
        if graph.direct and resource_dict is None:
            try:
                return self._submit_call(fn, args, kwargs)
            except (TypeError, pickle.PicklingError) as exc:
                if not graph.has_futures(exc, args, kwargs):
                    raise
        return graph.submit(self, fn, args, kwargs, resource_dict)

    def _start_graph(self, disable_dependencies: Any, cache_directory: Any) -> None:
        """The dependencies and the cache of this executor (before the engine
        starts: a bad argument launches nothing)."""
        if not isinstance(disable_dependencies, bool):
            raise TypeError(
                f"disable_dependencies must be a bool, not {type(disable_dependencies).__name__}"
            )
        cache = None if cache_directory is None else ResultCache(cache_directory)
        self._graph = Graph(not disable_dependencies, cache)

    def _map_batch_unpicklable(self, batch: List[Any], error: BaseException) -> List[Any]:
        """Futures among a lazy map's items: their results (see _Maps)."""
        if self._graph.has_futures(error, tuple(batch), {}):
            resolved: List[Any] = resolve_when_done(batch)
            return resolved
        raise error

    def _check_open(self) -> None:
        if self._state.forked:
            self._check_broken()
        if self._shutdown:
            raise RuntimeError(_AFTER_SHUTDOWN)
        self._check_broken()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops accepting work.  ``cancel_futures`` cancels every task not yet
        sent; queued ones otherwise still run.  ``wait`` blocks until they
        have finished and the MPI job has exited.  With ``wait=False`` the
        queued calls still run, also when the interpreter exits first (it
        waits for them, as with ``ProcessPoolExecutor``).  In a forked child
        the executor is the parent's: this returns at once."""
        if self._state.forked:
            return  # the parent's executor; its graph's lock may be held there
        self._graph.shutdown(
            cancel_futures, wait, lambda: self._close_engine(cancel_futures=cancel_futures)
        )
        if wait:
            self._join_engine()

    def __enter__(self: _ExecutorT) -> _ExecutorT:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> Optional[bool]:
        """Without an exception: ``shutdown(wait=True)``.  When an exception
        (Ctrl-C's ``KeyboardInterrupt`` or any other) leaves the block:
        queued calls are cancelled, running ones are interrupted (SIGINT on
        their ranks) and stopped with the job if they have not finished
        ``INTERRUPT_GRACE_S`` (2 s) later; the exception goes on."""
        if exc_type is None:
            self.shutdown(wait=True)
        else:
            if not self._state.forked:
                self._graph.shutdown(True, False, lambda: None)  # no waiting call is sent
            self._interrupt_engine(exc_type.__name__)
        return None

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: Optional[float] = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """An iterator over ``fn(*args)`` for ``args`` in ``zip(*iterables)``,
        in input order, as ``concurrent.futures.Executor.map``: ``timeout``
        (seconds from this call) raises ``TimeoutError`` from ``__next__``;
        a call's exception is raised when its result is reached, and ends
        the iteration.  ``fn`` is pickled once: the ranks keep it for the
        rest of the map.

        Unlike ``ProcessPoolExecutor.map``, the iterables are read lazily,
        in a thread of the executor, a bounded number of calls ahead of the
        results taken (the widest pipeline window and
        ``READ_AHEAD_PER_SLOT`` per call of the base depth), so this returns at once, also for an endless generator.  An
        exception raised by an iterable is raised by ``__next__`` in its
        place, after the results before it, and ends the iteration (the
        standard library raises it from ``map`` itself).  Dropping or
        closing the iterator stops the reading and cancels the calls not
        yet sent; after ``shutdown`` no more input is read and the iterator
        ends, after the calls already sent, with the ``RuntimeError`` of a
        submit after shutdown.  For ``Executor(cores > 1)`` each item is the
        list of every rank's value and ``chunksize`` is ignored (one call at
        a time runs on all ranks)."""
        return self._lazy_map(fn, iterables, timeout, chunksize)

    def _lazy_map(
        self,
        fn: Callable[..., _T],
        iterables: Tuple[Iterable[Any], ...],
        timeout: Optional[float],
        chunksize: Any,
    ) -> Iterator[_T]:
        if isinstance(chunksize, bool) or not isinstance(chunksize, int):
            raise TypeError(f"chunksize must be an int, not {type(chunksize).__name__}")
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        graph = self._graph
        if graph.cache is not None:
            # every call through the cache: one submit each, as the
            # standard library's map (which reads all of its input now)
            return _FuturesExecutor.map(self, fn, *iterables, timeout=timeout)
        end_time = None if timeout is None else timeout + time.monotonic()
        batches: Iterator[Any]
        if len(iterables) == 1 and not self._task_flags & _core.FLAG_ALL_RANKS:
            # One iterable: its items themselves go (a MAP chunk), not a
            # 1-tuple each, and a sequence in memory goes in slices (a
            # range in ranges): a tenth of the cost per item.
            items = iterables[0]
            if isinstance(items, (range, list, tuple)):
                batches = (items[i : i + chunksize] for i in range(0, len(items), chunksize))
            else:
                batches = _batches(iter(items), chunksize)  # not iterable: TypeError now
            star = False
        else:
            batches = _batches(zip(*iterables), chunksize)  # not iterable: TypeError now
            star = True
        ntasks = _tasks_hint(iterables, chunksize) if iterables else 0
        in_memory = _in_memory(iterables)
        if in_memory and ntasks <= self._read_ahead and graph.enabled:
            # sent at once in this thread, unless it has futures to wait for
            in_memory = not needs_feeder(iterables)
        feed = self._map_lazily(fn, batches, star, True, ntasks, in_memory)
        chunks = _map_chunks(feed, end_time)
        next(chunks)  # up to its start: a close() from now on stops the feed
        return cast(Iterator[_T], _core.MapValues(chunks))

    def __len__(self) -> int:
        """Number of submitted tasks not yet sent to the ranks (those waiting
        for their input futures included)."""
        return self._state.pending() + self._graph.waiting()


#: Tasks a group may hold (Executor, PoolExecutor, Pool): the one it runs
#: and the next; see PoolExecutor.
POOL_PIPELINE_DEPTH = 2
#: ... and while its tasks are short, up to this many, as long as they are
#: about 2 ms of work (the frontend's pipeline window, frontend/pmp_window.h)
POOL_PIPELINE_DEPTH_MAX = 32


class Executor(_ExecutorBase):
    """Runs each submitted function on all ``cores`` MPI ranks, one call at a
    time, first in first out.  The ranks hold the running call and the next
    one (``POOL_PIPELINE_DEPTH``), so that a stream of short calls never
    waits on a round trip, and more while the calls are short (as for
    ``PoolExecutor``); ``cancel()`` succeeds for a call that has not been
    sent yet (not the running call and not the ones behind it, as with
    ``ProcessPoolExecutor``, which also queues one call more than it runs).
    With ``restart_limit`` they hold the running call only: a crash then
    loses that call alone, and every queued one runs on the new job.

    ``result()`` is the function's value for ``cores=1`` and the list of every
    rank's value (rank order) for ``cores > 1``.  Functions that take a
    parameter named ``comm`` receive the group's communicator.

    Parameters: ``cores`` (ranks, >= 1); ``oversubscribe`` (allow more ranks
    than cores, Open MPI); ``enable_flux_backend`` (launch with ``flux run``);
    ``init_function`` (called on every rank before the first task; the dict
    it returns fills the matching parameters of later calls that the caller
    did not pass); ``cwd`` (working directory of the ranks); ``queue_adapter``
    (an object whose ``submit_job(working_directory=, cores=, command=,
    **queue_adapter_kwargs)`` starts the command, e.g. through a queuing
    system, instead of it being started here).

    ``hostname`` (keyword): ``None`` (the default) keeps the socket on this
    host, ``ipc://`` in a directory only you can enter.  An IP address or a
    network interface name (``"10.0.0.5"``, ``"ib0"``, ``"127.0.0.1"``)
    listens with TCP on that address instead, on a port the system chooses,
    encrypted and authenticated with CURVE, so that a runtime on another
    host can connect; a wildcard such as ``"*"`` is refused.  Either way
    only this executor's runtime can connect (docs/security.md).

    Keyword-only: ``restart_limit`` (relaunch the MPI job up to this many
    times when it dies; running calls fail with ``ExecutorBroken``, queued
    ones run on the new job, ``init_function`` runs again); ``run_time_max``
    (seconds per call; a call that runs longer fails with ``TimeoutError``,
    and the job is restarted when the call cannot be interrupted);
    ``zero_copy`` (``True``: large argument buffers such as numpy arrays are
    sent without a copy and read until the call's future is done, so do not
    change them before; ``False``: they are copied at ``submit``).

    The positional parameters are those of pympipool 0.5, in its order;
    everything added since is keyword-only.

    The runtime and mpiexec recorded at build time can be overridden with the
    environment variables ``PYMPIPOOL_RUNTIME`` and ``PYMPIPOOL_MPIEXEC``.
    """

    def __init__(
        self,
        cores: int = 1,
        oversubscribe: bool = False,
        enable_flux_backend: bool = False,
        init_function: Optional[Callable[[], Dict[str, Any]]] = None,
        cwd: Union[str, os.PathLike[str], None] = None,
        queue_adapter: Any = None,
        queue_adapter_kwargs: Optional[Dict[str, Any]] = None,
        *,
        restart_limit: int = 0,
        run_time_max: Optional[float] = None,
        hostname: Optional[str] = None,
        zero_copy: bool = True,
        backend: str = "auto",
        threads_per_core: Optional[int] = None,
        launcher_args: Optional[Sequence[str]] = None,
        hosts: Optional[Sequence[str]] = None,
        hostfile: Union[str, os.PathLike[str], None] = None,
        disable_dependencies: bool = False,
        cache_directory: Union[str, os.PathLike[str], None] = None,
    ) -> None:
        cores = _check_count("cores", cores)
        self._start_graph(disable_dependencies, cache_directory)
        self._start_engine(
            ranks=cores,
            ranks_per_group=cores,
            # a crash loses every call the group held (at most once), so
            # with restarts it holds only the running call: the others run
            # on the new job
            pipeline_depth=1 if restart_limit else POOL_PIPELINE_DEPTH,
            pipeline_depth_max=POOL_PIPELINE_DEPTH_MAX,
            all_ranks=cores > 1,
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


class PoolExecutor(_ExecutorBase):
    """A ``concurrent.futures.Executor`` over ``max_workers`` serial workers:
    one MPI job of ``max_workers`` ranks, each rank a worker of its own.

    Each submitted call runs on one worker, the first with room for it.
    Every worker may hold ``POOL_PIPELINE_DEPTH`` = 2 tasks: the one it runs
    and the next, so that a stream of tasks never waits on a round trip
    (the next task is already there when one finishes).  While the tasks are
    short a worker may hold more, up to ``POOL_PIPELINE_DEPTH_MAX`` = 32, as
    long as they are about 2 ms of work by the time the recent tasks took
    (from the 8th result on):
    then several tasks travel together and share their system calls and
    wake-ups.  A long task closes that window again at once, so that it
    keeps at most one queued task waiting behind it while another worker
    may be idle.  With ``restart_limit`` the window stays at 2: a crash
    loses the tasks a worker held.  ``cancel()`` succeeds for a task that
    has not been sent to a worker yet.

    ``submit``, ``map(fn, *iterables, timeout=None, chunksize=1)``,
    ``shutdown(wait=True, cancel_futures=False)``, ``Future`` callbacks,
    ``concurrent.futures.wait`` / ``as_completed`` and the context manager
    behave as with ``ProcessPoolExecutor``.  ``map`` pickles its function
    once and sends it to every worker, which keeps it by key until the map's
    last task has finished; with ``chunksize > 1`` each task carries
    ``chunksize`` calls.  Done callbacks run in pympipool's dispatcher
    thread, as they run in ``ProcessPoolExecutor``'s management thread.

    Parameters: ``max_workers`` (workers, >= 1; ``cores`` is accepted as
    another name for it, as in the original documentation); the others as
    for ``Executor`` (``init_function`` runs on every worker before its
    first task).  The positional parameters are pympipool 0.5's, in its
    order; ``sleep_interval`` (0.5's polling interval) is accepted and
    ignored with a ``DeprecationWarning``: the frontend is driven by events.
    """

    def __init__(
        self,
        max_workers: int = _Default(1),
        oversubscribe: bool = False,
        enable_flux_backend: bool = False,
        cwd: Union[str, os.PathLike[str], None] = None,
        sleep_interval: Optional[float] = None,
        queue_adapter: Any = None,
        queue_adapter_kwargs: Optional[Dict[str, Any]] = None,
        *,
        init_function: Optional[Callable[[], Dict[str, Any]]] = None,
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
        disable_dependencies: bool = False,
        cache_directory: Union[str, os.PathLike[str], None] = None,
    ) -> None:
        _ignore_sleep_interval(sleep_interval)
        self._start_graph(disable_dependencies, cache_directory)
        name, value = _resolve_alias("max_workers", max_workers, "cores", cores)
        workers = _check_count(name, value)
        self._max_workers = workers
        self._start_engine(
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

    @property
    def max_workers(self) -> int:
        """The number of workers (ranks)."""
        return self._max_workers

    def submit(
        self,
        fn: Callable[..., _T],
        /,
        *args: Any,
        resource_dict: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> Future[_T]:
        """Schedules ``fn(*args, **kwargs)`` on one worker; returns a
        ``Future`` of its value.  The call is pickled here: an unpicklable
        argument raises pickle's exception at once and the executor keeps
        working.  Futures among the arguments and ``resource_dict``: as for
        ``Executor.submit``."""
        graph = self._graph  # as in Executor.submit
        if graph.direct and resource_dict is None:
            try:
                return self._submit_call(fn, args, kwargs)
            except (TypeError, pickle.PicklingError) as exc:
                if not graph.has_futures(exc, args, kwargs):
                    raise
        return graph.submit(self, fn, args, kwargs, resource_dict)

    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: Optional[float] = None,
        chunksize: int = 1,
    ) -> Iterator[_T]:
        """Returns an iterator equivalent to ``map(fn, *iterables)``, as
        ``ProcessPoolExecutor.map``: results come in input order; ``timeout``
        (seconds from this call) raises ``TimeoutError`` from ``__next__``;
        the first exception of a call is raised when its result is reached;
        closing the iterator cancels the calls not yet sent.

        ``fn`` is pickled once: every worker keeps it for the rest of the map.
        With ``chunksize > 1`` one task carries up to ``chunksize`` calls.

        The iterables are read lazily, a bounded number of tasks ahead of
        the results taken (the widest pipeline window and
        ``READ_AHEAD_PER_SLOT`` per task of the base depth); see ``Executor.map`` for what that changes against
        ``ProcessPoolExecutor.map``: an exception of the input is raised in
        its place by ``__next__``, and after ``shutdown`` the iterator ends
        with ``RuntimeError`` after the calls already sent."""
        return self._lazy_map(fn, iterables, timeout, chunksize)


def _map_chunks(feed: _Feed, end_time: Optional[float]) -> Generator[Any, None, None]:
    """The chunks of a lazy map's feed (``_maps._Feed``), in input order, as
    lists of their values, for ``_core.MapValues`` (which hands the values
    out, so that Python runs here once per chunk); a generator, for one
    thread at a time.  A call's exception, or a timeout, is raised once and
    ends the iteration; it holds only the results not yet yielded.  Closing
    it (or dropping it) stops the feed.  It is started by ``_lazy_map`` up
    to the first ``yield`` below, so that a ``close()`` before the first
    result runs the ``finally`` too."""
    try:
        yield None  # the start: taken by _lazy_map, never by the user
        while True:
            left = None if end_time is None else end_time - time.monotonic()
            try:
                outcome = feed.take(left)
            except StopIteration:
                return
            if outcome is None:
                raise TimeoutError
            success, values = outcome
            del outcome
            if not success:
                raise values
            # the only reference left to a value is its slot in the list
            # yielded, which MapValues empties as it hands the value out
            chunk = values if feed.chunked else [values]
            del values
            yield chunk
    finally:
        feed.close()


def _ignore_sleep_interval(sleep_interval: Any) -> None:
    """pympipool 0.5's ``sleep_interval`` (seconds between polls): accepted,
    ignored, with one ``DeprecationWarning`` (per call site)."""
    if sleep_interval is None:
        return
    if isinstance(sleep_interval, bool) or not isinstance(sleep_interval, (int, float)):
        raise TypeError(
            f"sleep_interval must be a number of seconds, not {type(sleep_interval).__name__}"
        )
    warnings.warn(
        "sleep_interval is ignored: pympipool's frontend is driven by events and "
        "does not poll; remove the argument",
        DeprecationWarning,
        stacklevel=3,
    )


def cancel_items_in_queue(que: "queue.Queue[Any]") -> None:
    """Cancels the futures of the task dicts still waiting in ``que`` (a
    ``queue.Queue`` of ``{"fn": ..., "future": ...}`` dicts, as pympipool
    0.5's executors kept), taking every item out of it.  Kept from
    pympipool 0.5's public API for programs that build their own queues;
    pympipool's executors themselves cancel with
    ``shutdown(cancel_futures=True)``."""
    while True:
        try:
            item = que.get_nowait()
        except queue.Empty:
            return
        if isinstance(item, dict) and "future" in item:
            item["future"].cancel()
        que.task_done()
