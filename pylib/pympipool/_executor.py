"""The ``concurrent.futures.Executor`` interfaces: ``Executor`` and
``PoolExecutor``.

Both are thin layers over ``_engine._Engine`` (validation, launch, the
dispatcher thread, the futures table, shutdown and clean-up live there):

* ``Executor(cores=N)`` is one group of N ranks, strict first in first out,
  one task at a time; every call runs on every rank.
* ``PoolExecutor(max_workers=N)`` is N groups of one rank each, every one of
  them a worker (none is spent as a broker); the frontend hands each task to
  the group with the fewest in flight the moment one has room, driven by
  events, never by a polling interval.  Each worker may hold two tasks
  (``pipeline_depth=2``), see ``PoolExecutor``.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor as _FuturesExecutor
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Iterator, List, Optional

from ._engine import (
    _AFTER_SHUTDOWN,
    ExecutorBroken,
    _check_count,
    _Default,
    _Engine,
    _resolve_alias,
)

__all__ = ["Executor", "ExecutorBroken", "PoolExecutor"]


class _ExecutorBase(_Engine, _FuturesExecutor):
    """``concurrent.futures.Executor`` semantics on top of the engine."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        """Schedules ``fn(*args, **kwargs)``; returns a ``Future``.  The call is
        pickled here: an unpicklable argument raises pickle's exception at once
        and the executor keeps working."""
        return self._submit_call(fn, args, kwargs)

    def _check_open(self) -> None:
        if self._shutdown:
            raise RuntimeError(_AFTER_SHUTDOWN)
        self._check_broken()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops accepting work.  ``cancel_futures`` cancels every task not yet
        sent; queued ones otherwise still run.  ``wait`` blocks until they
        have finished and the MPI job has exited."""
        self._close_engine(cancel_futures=cancel_futures)
        if wait:
            self._join_engine()

    def __len__(self) -> int:
        """Number of submitted tasks not yet sent to the ranks."""
        return self._state.pending()


class Executor(_ExecutorBase):
    """Runs each submitted function on all ``cores`` MPI ranks, one call at a
    time, first in first out.

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
    and the job is restarted when the call cannot be interrupted).

    The runtime and mpiexec recorded at build time can be overridden with the
    environment variables ``PYMPIPOOL_RUNTIME`` and ``PYMPIPOOL_MPIEXEC``.
    """

    def __init__(
        self,
        cores: int = 1,
        oversubscribe: bool = False,
        enable_flux_backend: bool = False,
        init_function: Optional[Callable[[], dict]] = None,
        cwd: Optional[str] = None,
        queue_adapter: Any = None,
        queue_adapter_kwargs: Optional[dict] = None,
        *,
        restart_limit: int = 0,
        run_time_max: Optional[float] = None,
        hostname: Optional[str] = None,
    ) -> None:
        cores = _check_count("cores", cores)
        self._start_engine(
            ranks=cores,
            ranks_per_group=cores,
            pipeline_depth=1,
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
        )


#: Tasks one serial worker may hold (PoolExecutor, Pool): see PoolExecutor.
POOL_PIPELINE_DEPTH = 2


class PoolExecutor(_ExecutorBase):
    """A ``concurrent.futures.Executor`` over ``max_workers`` serial workers:
    one MPI job of ``max_workers`` ranks, each rank a worker of its own.

    Each submitted call runs on one worker, the first with room for it.
    Every worker may hold ``POOL_PIPELINE_DEPTH`` = 2 tasks: the one it runs
    and the next.  Two, not one, so that a stream of tiny tasks never waits
    on a round trip (the next task is already there when one finishes); not
    more, so that a long task keeps at most one queued task waiting behind
    it while another worker may be idle.  ``cancel()`` succeeds for a task
    that has not been sent to a worker yet.

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
    first task).
    """

    def __init__(
        self,
        max_workers: int = _Default(1),
        oversubscribe: bool = False,
        enable_flux_backend: bool = False,
        cwd: Optional[str] = None,
        init_function: Optional[Callable[[], dict]] = None,
        queue_adapter: Any = None,
        queue_adapter_kwargs: Optional[dict] = None,
        *,
        cores: Optional[int] = None,
        restart_limit: int = 0,
        run_time_max: Optional[float] = None,
        hostname: Optional[str] = None,
    ) -> None:
        name, value = _resolve_alias("max_workers", max_workers, "cores", cores)
        workers = _check_count(name, value)
        self._max_workers = workers
        self._start_engine(
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
        )

    @property
    def max_workers(self) -> int:
        return self._max_workers

    def map(
        self,
        fn: Callable,
        *iterables: Iterable,
        timeout: Optional[float] = None,
        chunksize: int = 1,
    ) -> Iterator:
        """Returns an iterator equivalent to ``map(fn, *iterables)``, as
        ``ProcessPoolExecutor.map``: the iterables are consumed and every
        call is sent at once; results come in input order; ``timeout``
        (seconds from this call) raises ``TimeoutError`` from ``__next__``;
        the first exception of a call is raised when its result is reached;
        closing the iterator cancels the calls not yet sent.

        ``fn`` is pickled once: every worker keeps it for the rest of the map.
        With ``chunksize > 1`` one task carries up to ``chunksize`` calls."""
        if isinstance(chunksize, bool) or not isinstance(chunksize, int):
            raise TypeError(f"chunksize must be an int, not {type(chunksize).__name__}")
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if timeout is not None:
            end_time = timeout + time.monotonic()
        no_kwargs: dict = {}  # shared: pickled once per chunk
        calls = [(args, no_kwargs) for args in zip(*iterables)]
        if chunksize == 1:
            futures = self._submit_keyed(fn, [[c] for c in calls], chunk=False)
        else:
            starts = range(0, len(calls), chunksize)
            batches = [calls[i : i + chunksize] for i in starts]
            futures = self._submit_keyed(fn, batches, chunk=True)

        def result_iterator() -> Iterator:
            pending: List[Future] = list(reversed(futures))
            try:
                while pending:
                    future = pending.pop()
                    try:
                        if timeout is None:
                            value = future.result()
                        else:
                            value = future.result(end_time - time.monotonic())
                    except BaseException:
                        future.cancel()
                        raise
                    if chunksize == 1:
                        yield value
                    else:
                        yield from value
            finally:
                for future in pending:
                    future.cancel()

        return result_iterator()
