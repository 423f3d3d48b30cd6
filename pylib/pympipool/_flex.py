"""``FlexExecutor``: cores chosen per call from a live pool of ranks.

One MPI job of ``max_cores`` ranks is started once, as ``max_cores`` groups
of one rank (the layout of ``PoolExecutor(max_workers=max_cores)``), each
group holding one task at a time.  A call asks for ``cores`` ranks in its
``resource_dict``; the scheduler here (``_Ranks``) gives it that many ranks
that are free at that moment and sends each of them the call, pinned to
its group (``_core.Executor.submit(..., group=)``, the frontend's
``pmp_executor_submit_to``).  The task carries ``PMP_FLAG_CALL_COMM``, the
members (world ranks, lowest first) and a tag unique to the call; on the
ranks, the members build the call's communicator with
``MPI_Comm_create_group``, which only they call, so the other ranks keep
working (runtime/pmp_comm_group.c, runtime/pmp_worker.py).  Each member's
completion comes back as its own entry of the futures table (``_Member``);
the scheduler frees that rank, and once every member is back completes the
call's ``Future``: the value for ``cores=1``, the list of the members'
values in rank order otherwise, or the first member's exception.

Scheduling: first in, first out, with bounded backfill.  The call at the
head of the queue starts as soon as enough ranks are free.  While it waits
for more ranks than are free, a later call that fits into the free ranks
may start ahead of it (backfill), but at most ``backfill_limit`` times per
head call: from then on the ranks that free up are kept for the head, which
therefore starts at the latest when the calls running then have finished.
No call waits forever: each call ahead of it, once at the head, can be
passed ``backfill_limit`` times at most.  No thread blocks per call: the
scheduler runs in the thread that submits and in the dispatcher thread that
delivers a member's completion.

Futures as arguments and the result cache work as for the other executors
(``_dependencies.Graph``, with ``max_cores`` so that it accepts and passes
on ``cores``, ``cwd`` and ``threads_per_core``); the cache's key never
includes the resources.

A call is cancellable until it starts (its ranks are chosen and its
members sent); after that it runs to its end, since the members of one MPI
call must all run or none.  A crash of a rank fails the calls that ran on
the job (``ExecutorBroken``); with ``restart_limit`` the job is relaunched
and the calls still waiting run on the new one.
"""

from __future__ import annotations

import heapq
import itertools
import os
import pickle
import threading
import time
from collections import deque
from concurrent.futures import Future
from types import TracebackType
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from . import _core
from ._checks import _check_count, check_resource_dict
from ._executor import _ExecutorBase
from ._futures import _AFTER_SHUTDOWN, _Buffers, _State
from ._serialize import dumps_call

__all__ = ["FlexExecutor"]

_T = TypeVar("_T")
#: Tags of the calls' MPI_Comm_create_group: 1 .. _TAG_SPAN, in turn (MPI
#: guarantees tags up to 32767).  A tag only has to differ from those of
#: the calls being made at the same moment.
_TAG_SPAN = 32000


class _Call:
    """One call: its pickle, what it asks for, its future, and once started
    its members and what they returned."""

    __slots__ = (
        "payload",
        "buffers",
        "cores",
        "cwd",
        "threads",
        "future",
        "members",
        "values",
        "error",
        "left",
        "bypassed",
    )

    def __init__(
        self,
        payload: bytes,
        buffers: _Buffers,
        cores: int,
        cwd: Optional[str],
        threads: Optional[int],
    ) -> None:
        self.payload = payload
        self.buffers = buffers
        self.cores = cores
        self.cwd = cwd
        self.threads = threads
        self.future: _FlexFuture = _FlexFuture()
        self.members: List[int] = []
        self.values: List[Any] = []
        self.error: Optional[BaseException] = None
        self.left = 0
        #: later calls started ahead of it while it waited at the head
        self.bypassed = 0


class _FlexFuture(Future[Any]):
    """A call's future: a cancel before the call started also takes it out
    of its scheduler's queue (which may let later calls start)."""

    _pmp_drop: Optional[Callable[[], None]] = None

    def cancel(self) -> bool:
        cancelled = super().cancel()
        drop = self._pmp_drop
        if cancelled and drop is not None:
            self._pmp_drop = None
            drop()
        return cancelled


class _Member:
    """A member's task in the futures table (an ``_Entry``): its
    completion goes to the scheduler."""

    __slots__ = ("ranks", "call", "index")

    def __init__(self, ranks: "_Ranks", call: _Call, index: int) -> None:
        self.ranks = ranks
        self.call = call
        self.index = index

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def set_result(self, value: Any) -> None:
        self.ranks.member_done(self.call, self.index, value, None)

    def set_exception(self, exception: BaseException) -> None:
        self.ranks.member_done(self.call, self.index, None, exception)


class _Ranks:
    """The free ranks and the waiting calls of one FlexExecutor (see the
    module docstring).  ``lock`` guards everything; it is never held while
    user code runs (a future's callbacks) and is taken before the futures
    table's lock, never after."""

    def __init__(self, state: _State, ranks: int, backfill_limit: int) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.free = list(range(ranks))  # a heap: the lowest free ranks first
        self.waiting: Deque[_Call] = deque()
        self.backfill_limit = backfill_limit
        self.tags = itertools.count()
        #: no more calls; on_idle closes the engine once none waits
        self.closed = False
        self.on_idle: Optional[Callable[[], None]] = None

    # -- calls in

    def add(self, call: _Call) -> None:
        """Queues a call and starts what can start."""
        with self.lock:
            if self.closed:
                raise RuntimeError(_AFTER_SHUTDOWN)
            self.waiting.append(call)
            call.future._pmp_drop = lambda: self._dropped(call)
            done = self._schedule_locked()
        _settle(done)

    def _dropped(self, call: _Call) -> None:
        """A call was cancelled while it waited: it leaves the queue (which
        may let others start)."""
        with self.lock:
            try:
                self.waiting.remove(call)
            except ValueError:
                return
            done = self._schedule_locked()
        _settle(done)

    # -- scheduling (lock held)

    def _schedule_locked(self) -> List[Tuple[_Call, Any, Optional[BaseException]]]:
        """Starts the head calls that fit, then backfills (module
        docstring).  Returns the calls that failed to start, to be settled
        after the lock is let go."""
        done: List[Tuple[_Call, Any, Optional[BaseException]]] = []
        waiting = self.waiting
        while waiting and waiting[0].cores <= len(self.free):
            self._start_locked(waiting.popleft(), done)
        if waiting:
            head = waiting[0]
            index = 1
            while (
                index < len(waiting)
                and head.bypassed < self.backfill_limit
                and self.free
            ):
                call = waiting[index]
                if call.cores <= len(self.free):
                    del waiting[index]
                    if self._start_locked(call, done):
                        head.bypassed += 1
                else:
                    index += 1
        if not waiting and self.on_idle is not None:
            on_idle, self.on_idle = self.on_idle, None
            done.append((_IDLE, on_idle, None))
        return done

    def _start_locked(
        self, call: _Call, done: List[Tuple[_Call, Any, Optional[BaseException]]]
    ) -> bool:
        """Gives call its ranks and sends each member its task, all
        together (``_State.submit_members``: the frontend takes all of them
        or none).  False when it did not start (cancelled meanwhile, or the
        submit failed: then it is in done with its error)."""
        call.future._pmp_drop = None
        if not call.future.set_running_or_notify_cancel():
            return False
        members = sorted(heapq.heappop(self.free) for _ in range(call.cores))
        call.members = members
        call.values = [None] * len(members)
        call.left = len(members)
        tag = next(self.tags) % _TAG_SPAN + 1
        info = pickle.dumps((members, tag, call.cwd, call.threads), 5)
        buffers: List[Union[bytes, memoryview]] = [call.payload, *call.buffers]
        call.payload, call.buffers = b"", ()
        try:
            self.state.submit_members(
                [_Member(self, call, index) for index in range(len(members))],
                members,
                _core.FLAG_CALL_COMM,
                info,
                buffers,
            )
        except BaseException as exc:  # all or none: none of the call runs
            for rank in members:
                heapq.heappush(self.free, rank)
            call.left = 0
            done.append((call, None, exc))
            return False
        return True

    # -- completions (the dispatcher thread)

    def member_done(
        self, call: _Call, index: int, value: Any, error: Optional[BaseException]
    ) -> None:
        with self.lock:
            heapq.heappush(self.free, call.members[index])
            call.left -= 1
            if error is not None:
                if call.error is None:
                    call.error = error
            else:
                call.values[index] = value
            done = self._schedule_locked()
            if call.left == 0:
                if call.error is not None:
                    done.append((call, None, call.error))
                else:
                    values = call.values
                    done.append((call, values[0] if len(values) == 1 else values, None))
                call.values = []
        _settle(done)

    # -- shutdown

    def close(self, cancel: bool, close_engine: Callable[[], None]) -> None:
        """No more calls.  With ``cancel`` the waiting calls are cancelled;
        the others still start as ranks free up.  close_engine runs now when
        none waits, else in the thread that starts the last one."""
        with self.lock:
            self.closed = True
            calls = list(self.waiting) if cancel else []
        for call in calls:
            call.future.cancel()  # which takes it out of the queue
        with self.lock:
            if self.waiting:
                self.on_idle = close_engine
                return
        close_engine()

    def waiting_count(self) -> int:
        with self.lock:
            return len(self.waiting)


#: The marker in a scheduler's done list for "the queue ran empty: close
#: the engine now" (its callable is the second item).
_IDLE: Any = object()


def _settle(done: List[Tuple[Any, Any, Optional[BaseException]]]) -> None:
    """Completes the futures of finished calls (outside the scheduler's
    lock: their callbacks run user code) and runs a pending close."""
    for call, value, error in done:
        if call is _IDLE:
            value()
            continue
        try:
            if error is not None:
                call.future.set_exception(error)
            else:
                call.future.set_result(value)
        except Exception:  # done already (InvalidStateError)
            pass


class FlexExecutor(_ExecutorBase):
    """A ``concurrent.futures.Executor`` over one MPI job of ``max_cores``
    ranks, where each call runs on the number of ranks it asks for.

    ``submit(fn, /, *args, resource_dict=None, **kwargs)``: ``resource_dict``
    may hold ``cores`` (ranks for this call, 1 to ``max_cores``, default 1;
    more raises ``ValueError`` here), ``cwd`` (working directory of the
    call's ranks for the call) and ``threads_per_core`` (``OMP_NUM_THREADS``
    for the call), and ``cache_key`` as for the other executors.  The call
    runs on ``cores`` ranks that are free when it starts; a function with a
    parameter named ``comm`` gets the call's own communicator over them
    (made with ``MPI_Comm_create_group`` by those ranks alone).  The
    future's result is the function's value for ``cores=1`` and the list of
    every rank's value (rank order) otherwise; an exception on any rank
    fails the call with it.

    Calls start first in, first out; while the first waiting call needs
    more ranks than are free, later calls that fit may start ahead of it,
    at most ``backfill_limit`` of them (default ``max_cores``; 0: strict
    order), after which the ranks that free up are kept for it.

    ``map(fn, *iterables, timeout=None, chunksize=1, resource_dict=None)``
    submits every call at once with the same ``resource_dict`` and yields
    the results in order (``chunksize`` is accepted and ignored).
    ``cancel()`` succeeds for a call that has not started.
    ``shutdown(wait, cancel_futures)`` and the context manager behave as
    with ``ProcessPoolExecutor``: calls not yet started still run unless
    ``cancel_futures``.

    The other parameters are those of ``PoolExecutor`` (``init_function``
    runs on every rank once; ``threads_per_core`` here is the launcher's,
    for every rank of the job), plus ``disable_dependencies`` and
    ``cache_directory`` (futures as arguments, the result cache).
    """

    _ranks: _Ranks

    def __init__(
        self,
        max_cores: int = 1,
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
        backfill_limit: Optional[int] = None,
    ) -> None:
        cores = _check_count("max_cores", max_cores)
        if backfill_limit is None:
            backfill_limit = cores
        elif isinstance(backfill_limit, bool) or not isinstance(backfill_limit, int):
            raise TypeError(
                f"backfill_limit must be an int or None, not {type(backfill_limit).__name__}"
            )
        elif backfill_limit < 0:
            raise ValueError(f"backfill_limit must be >= 0, not {backfill_limit}")
        self._max_cores = cores
        self._flex_closed = False
        self._start_graph(disable_dependencies, cache_directory)
        self._graph.max_cores = cores
        self._start_engine(
            ranks=cores,
            ranks_per_group=1,
            # a rank runs one call at a time: it is free when its task is back
            pipeline_depth=1,
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
        self._ranks = _Ranks(self._state, cores, backfill_limit)

    @property
    def max_cores(self) -> int:
        """The ranks of the job: the most a call can ask for."""
        return self._max_cores

    def _check_open(self) -> None:
        if self._flex_closed:
            self._check_broken()
            raise RuntimeError(_AFTER_SHUTDOWN)
        super()._check_open()

    def submit(
        self,
        fn: Callable[..., _T],
        /,
        *args: Any,
        resource_dict: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> Future[_T]:
        """Schedules ``fn(*args, **kwargs)`` on ``resource_dict['cores']``
        free ranks (default 1); returns a ``Future``.  See the class
        docstring for ``resource_dict``; futures among the arguments are
        waited for as with ``Executor.submit``."""
        graph = self._graph
        if graph.direct:
            # straight to the scheduler, as Executor.submit does; only a call
            # that cannot be pickled is looked into for futures (the graph)
            options = check_resource_dict(resource_dict, self._max_cores)
            try:
                return self._submit_flex(fn, args, kwargs, options)
            except (TypeError, pickle.PicklingError) as exc:
                if not graph.has_futures(exc, args, kwargs):
                    raise
        future: Future[_T] = graph.submit(self, fn, args, kwargs, resource_dict)
        return future

    def _submit_flex(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Dict[str, Any],
        options: Dict[str, Any],
    ) -> Future[Any]:
        """A call with its checked resources (``Graph._send``): pickled
        here, queued, started when its ranks are free."""
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        self._check_open()
        payload, buffers = dumps_call(fn, args, kwargs)
        call = _Call(
            payload,
            self._buffers(buffers),
            options.get("cores") or 1,
            options.get("cwd"),
            options.get("threads_per_core"),
        )
        with self._shutdown_lock:
            self._check_open()
            self._ranks.add(call)
        return call.future

    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: Optional[float] = None,
        chunksize: int = 1,
        resource_dict: Optional[Dict[str, Any]] = None,
    ) -> Iterator[_T]:
        """``fn(*args)`` for ``args`` in ``zip(*iterables)``, each call
        submitted now with ``resource_dict`` (the same for every call), the
        results in input order as ``concurrent.futures.Executor.map``:
        ``timeout`` (seconds from this call) raises ``TimeoutError``; a
        call's exception is raised when its result is reached.
        ``chunksize`` is accepted and ignored."""
        end_time = None if timeout is None else timeout + time.monotonic()
        futures = [
            self.submit(fn, *args, resource_dict=resource_dict) for args in zip(*iterables)
        ]
        return _results(futures, end_time)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops accepting calls.  ``cancel_futures`` cancels every call not
        yet started; the others still run.  ``wait`` blocks until they have
        finished and the MPI job has exited."""
        if self._state.forked:
            return
        self._flex_closed = True
        self._graph.shutdown(
            cancel_futures, wait, lambda: self._ranks.close(cancel_futures, self._close_engine)
        )
        if wait:
            self._join_engine()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_val: Optional[BaseException],
        exc_tb: Optional[TracebackType],
    ) -> Optional[bool]:
        if exc_type is not None and not self._state.forked:
            self._flex_closed = True
            self._ranks.close(True, lambda: None)  # no waiting call starts
        return super().__exit__(exc_type, exc_val, exc_tb)

    def __len__(self) -> int:
        """Calls submitted and not started yet (those waiting for their
        input futures included)."""
        return self._ranks.waiting_count() + self._graph.waiting()


def _results(futures: List["Future[Any]"], end_time: Optional[float]) -> Iterator[Any]:
    """The results of futures in order (the generator of ``map``);
    dropping it cancels the calls not yet started."""
    try:
        futures.reverse()
        while futures:
            future = futures[-1]
            if end_time is None:
                value = future.result()
            else:
                value = future.result(end_time - time.monotonic())
            futures.pop()
            yield value
    finally:
        for future in futures:
            future.cancel()

