"""The engine every pympipool interface runs on, over ``pympipool._core``.

``Executor``, ``PoolExecutor``, ``Pool`` and ``MPISpawnPool`` differ only in
how they lay out the MPI job (ranks, ranks per group, tasks a group may hold)
and in the API they put on top.  What they share lives here, in ``_Engine``:

* validation of everything before anything is launched (counts, ``cwd``,
  ``init_function``, the queue adapter, the programs to run; the checks
  themselves are in ``_checks``);
* the runtime's environment arguments (this process's ``sys.executable``,
  ``sys.path`` and working directory) and the launch, here or through a queue
  adapter's ``submit_job``;
* the messages to the frontend: plain tasks (the function pickled with
  the call), functions kept by key (``DEFINE`` once, then ``FN_KEY``
  tasks, ``FORGET`` after the last of them completed) and chunks
  (``CHUNK``: many calls in one task, one result list back; with ``MAP`` /
  ``STARMAP`` a plain list of items or argument tuples), entered in the
  table of futures that the dispatcher thread completes (both in
  ``_futures``);
* the maps' tasks: ``_MapRun`` (one function kept by key, its tasks
  delivered through ``_Sink`` entries of the futures table, straight to a
  receiver, without a ``Future`` each) and ``_Feed``, the bounded
  read-ahead of a lazy map (``Pool.imap``, ``Executor.map``): a feeder
  thread reads the input only as the consumer takes results;
* closing, terminating and interrupting the job (``_close_engine``,
  ``_join_engine``, ``_terminate_engine``, ``_interrupt_engine``).  What
  ends a job that none of them ended (garbage collection, interpreter exit,
  ``os.fork()``) is in ``_lifecycle``.
"""

from __future__ import annotations

import collections
import itertools
import operator
import os
import shlex
import sys
import threading
import time
import weakref
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterator,
    List,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Union,
)

from . import _config, _core
from ._checks import (
    _check_cwd,
    _check_hostname,
    _check_restart_limit,
    _check_run_time_max,
    _find_program,
)
from ._futures import (
    _AFTER_SHUTDOWN,
    _DESTROY_GRACE_MS,
    ExecutorBroken,
    _Buffers,
    _dispatch,
    _Future,
    _State,
)
from ._lifecycle import _collect, _register_at_exit
from ._serialize import dumps_call, dumps_function, dumps_init, dumps_keyed

#: Tasks a lazy map keeps read ahead per task a group may hold: see _Feed.
READ_AHEAD_PER_SLOT = 4
#: A map whose tasks would carry at most this many bytes of its function's
#: pickle in all carries it in every task (as a TASK does; the workers cache
#: it by those bytes) instead of a DEFINE to every group and a FORGET after.
INLINE_FUNCTION_BYTES = 64 * 1024
#: ``cwd`` as the interfaces take it: a path, or None.
_Cwd = Union[str, "os.PathLike[str]", None]
#: How long an interrupted call (SIGINT forwarded to its ranks when an
#: exception leaves a ``with`` block) may take to finish before its job is
#: stopped.
INTERRUPT_GRACE_S = 2.0
#: How often the interrupt is repeated meanwhile (for calls that start later).
_INTERRUPT_ROUND_S = 0.05


# ---- the tasks of maps ---------------------------------------------------------


class _Receiver(Protocol):
    """Where the tasks of a map are delivered: the task's index in its map,
    whether it succeeded, and its value (the list of its calls' values for
    a chunk) or exception."""

    def _deliver(self, index: int, success: bool, value: Any) -> None: ...


class _Sink:
    """What the futures table holds for a task of a map instead of a
    ``_Future``: its completion (``_finish``) goes straight to its map's
    receiver, on the thread that completes it (the dispatcher, or the one
    that breaks the executor), without a Future's condition, state and
    callbacks.  ``size`` is the number of calls in the task."""

    __slots__ = ("run", "index", "size", "task_id")

    def __init__(self, run: "_MapRun", index: int, size: int) -> None:
        self.run = run
        self.index = index
        self.size = size
        self.task_id = 0  # set by _State.submit_sink

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def set_result(self, value: Any) -> None:
        self.run.complete(self, True, value)

    def set_exception(self, exception: BaseException) -> None:
        self.run.complete(self, False, exception)



class _MapRun:
    """One map's function and the tasks that use it.  The function is
    either kept by key on the workers (``slot`` the key: the ``DEFINE`` goes
    out before the first task, see ``_Engine``, the ``FORGET`` once no more
    tasks will be sent, ``seal``, and every one sent has completed or was
    cancelled) or carried by every task (``slot`` its pickle).  Each task
    is a ``_Sink``; its outcome goes to ``receiver._deliver``, which must
    not run user code (the pools route such receivers through their
    result-handler thread)."""

    def __init__(self, state: _State, slot: Union[int, bytes], receiver: _Receiver) -> None:
        self.state = state
        self.slot = slot
        self.receiver = receiver
        self._lock = threading.Lock()
        self._left = 0
        self._sealed = False

    def submit(self, sink: _Sink, flags: int, payload: bytes, buffers: _Buffers) -> None:
        with self._lock:
            self._left += 1
        try:
            self.state.submit_sink(sink, flags, payload, buffers)
        except BaseException:
            self._task_done()
            raise

    def complete(self, sink: _Sink, success: bool, value: Any) -> None:
        try:
            self.receiver._deliver(sink.index, success, value)
        finally:
            self._task_done()

    def cancel(self, sink: _Sink) -> bool:
        """Drops a task the frontend has not sent yet: True if it was
        dropped (then it is never delivered)."""
        if sink.task_id and self.state.cancel(sink.task_id):
            self._task_done()
            return True
        return False

    def seal(self) -> None:
        """No more tasks: the function is forgotten after the last one."""
        with self._lock:
            self._sealed = True
            last = self._left == 0
        if last:
            self._forget()

    def _task_done(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._sealed and self._left == 0
        if last:
            self._forget()

    def _forget(self) -> None:
        if isinstance(self.slot, int):
            self.state.forget(self.slot)


def _in_memory(iterables: Sequence[Any]) -> bool:
    """Whether reading iterables runs no user code and cannot block."""
    return all(type(iterable) in (list, tuple, range) for iterable in iterables)


def _tasks_hint(iterables: Sequence[Any], size: int) -> int:
    """How many tasks of size items a lazy map over zip(*iterables) will
    have, from their lengths (``operator.length_hint``); 0 if unknown."""
    try:
        hint = min(operator.length_hint(iterable) for iterable in iterables)
    except Exception:  # a broken __len__ / __length_hint__: just unknown
        return 0
    return -(-hint // size)


def _batches(items: Iterator[Any], size: int) -> Iterator[List[Any]]:
    """The input of a lazy map cut into lists of up to size items, read
    only as the lists are taken.  When the input raises, the items read
    before make one more list, and the next one raises the error."""
    if size == 1:
        return ([item] for item in items)
    return _chunks(items, size)


def _chunks(items: Iterator[Any], size: int) -> Iterator[List[Any]]:
    islice = itertools.islice
    while True:
        batch: List[Any] = []
        try:
            batch.extend(islice(items, size))  # keeps what came before an error
        except BaseException:
            if batch:
                yield batch
            raise
        if not batch:
            return
        yield batch


class _Feed:
    """The bounded read-ahead of one lazy map (``Pool.imap`` and
    ``imap_unordered``, ``Executor.map``): a feeder thread reads the input
    (``batches``: one list of items per task), pickles each task and sends
    it, keeping at most ``window`` tasks read but not yet taken by the
    consumer (``take``); each ``take`` makes room for one more.  So a map
    over a million items (or an endless generator) holds ``window`` tasks,
    and the input is read in a thread of its own: a generator that blocks,
    or waits for the consumer, does not block the caller.

    ``take`` returns the tasks' outcomes in input order (``ordered``) or in
    the order they complete.  Every task read gets an outcome at its index:
    its value, the exception of its first failing call, pickle's exception
    if its items cannot be pickled (the map goes on), or the exception that
    stopped the sending (the map ends after it).  An exception raised by
    the input itself ends the map there: it is the last outcome.  ``stop``
    (shutdown, terminate, a broken job) ends the map after the tasks already
    sent, with the given error; ``close`` (the consumer is gone) also
    cancels the tasks not yet sent to a worker; ``drain`` (``Pool.close``)
    lifts the bound so the whole input is read.

    While it reads, the feed keeps the interface object (``owner``) alive,
    so that an iterator alone keeps its executor working; the interface
    object does not refer to the feed, and the consumer's iterator is not
    referred to by anything here, so dropping it closes the feed."""

    def __init__(
        self,
        owner: "_Engine",
        batches: Iterator[List[Any]],
        chunk: bool,
        window: int,
        ordered: bool,
    ) -> None:
        self._owner: Optional[_Engine] = owner
        self._batches: Optional[Iterator[List[Any]]] = batches
        self._flags = 0
        self._chunk = chunk
        self._window = window
        # The feeder sleeps until this many tasks have room, then fills the
        # window: one wake-up per few tasks, not one per task.
        self._refill = max(1, window // 4)
        self._ordered = ordered
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # the feeder waits here
        self._ready = threading.Condition(self._lock)  # the consumer waits here
        self._drawn = 0  # tasks read (indices 0 .. drawn-1)
        self._taken = 0  # outcomes handed to the consumer
        self._total: Optional[int] = None  # outcomes in all, once reading ended
        self._draining = False
        self._closed = False
        self._by_index: Dict[int, Tuple[bool, Any]] = {}  # ordered
        self._in_order: Deque[Tuple[bool, Any]] = collections.deque()  # unordered
        self._in_flight: Dict[int, _Sink] = {}
        self._run: Optional[_MapRun] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def chunked(self) -> bool:
        """Whether each outcome is a chunk's list of values (not one call's
        value)."""
        return self._chunk

    def start(self, run: _MapRun, flags: int, now: bool = False) -> None:
        """Starts reading: in a feeder thread, or with ``now`` at once in
        this thread (for an input in memory that fits the window, which
        neither blocks nor ever waits for room)."""
        self._run = run
        self._flags = flags
        if now:
            self._draining = True  # never wait for room: nobody takes yet
            self._feed()
            return
        self._thread = threading.Thread(
            target=self._feed, name="pympipool-feeder", daemon=True
        )
        try:
            self._thread.start()
        except BaseException:  # no thread: nothing was read or sent
            self._batches = self._owner = None
            run.seal()
            run.state.feed_ended(self)
            raise

    # -- the feeder thread

    def _feed(self) -> None:
        run = self._run
        batches = self._batches
        owner = self._owner
        assert run is not None and batches is not None and owner is not None
        try:
            while self._next(run, batches, owner):
                pass
        finally:
            self._batches = None
            self._owner = None
            run.seal()
            run.state.feed_ended(self)

    def _next(self, run: _MapRun, batches: Iterator[List[Any]], owner: "_Engine") -> bool:
        """Reads, pickles and sends one task; False once reading ended."""
        with self._lock:
            if not self._draining and self._drawn - self._taken >= self._window:
                while (
                    self._total is None
                    and not self._draining
                    and self._drawn - self._taken > self._window - self._refill
                ):
                    self._room.wait()
            if self._total is not None:
                return False
        try:
            batch = next(batches)
        except StopIteration:
            self._end(None)
            return False
        except BaseException as exc:  # the input's own error ends the map
            self._end(exc)
            return False
        with self._lock:
            if self._total is not None:  # stopped while the input was read
                return False
            index = self._drawn
            self._drawn += 1
            sink = _Sink(run, index, len(batch))
            self._in_flight[index] = sink
        try:
            if self._chunk:
                payload, buffers = dumps_keyed(run.slot, batch)
            else:
                payload, buffers = dumps_keyed(run.slot, batch[0], {})
        except BaseException as exc:  # this task fails, the map goes on
            self._deliver(index, False, exc)
            return True
        del batch
        try:
            run.submit(sink, self._flags, payload, owner._buffers(buffers))
        except BaseException as exc:  # closed, terminated, broken: the end
            self._deliver(index, False, exc)
            self._end(None)
            return False
        return True

    def _end(self, error: Optional[BaseException]) -> None:
        """Reading has ended; error (if any) is the map's last outcome."""
        with self._lock:
            if self._total is not None:
                return
            if error is not None:
                self._store(self._drawn, (False, error))
                self._drawn += 1
            self._total = self._drawn
            self._ready.notify_all()
            self._room.notify_all()

    def _store(self, index: int, outcome: Tuple[bool, Any]) -> None:
        if self._closed:
            return
        if self._ordered:
            self._by_index[index] = outcome
        else:
            self._in_order.append(outcome)

    # -- control, from any thread

    def _deliver(self, index: int, success: bool, value: Any) -> None:
        with self._lock:
            self._in_flight.pop(index, None)
            self._store(index, (success, value))
            self._ready.notify()

    def stop(self, error: Optional[BaseException]) -> None:
        """No more input is read; the map ends after the tasks already read,
        with error as its last outcome (if not None)."""
        self._end(error)

    def drain(self) -> None:
        """Read the whole input, without the read-ahead bound."""
        with self._lock:
            self._draining = True
            self._room.notify_all()

    def close(self) -> None:
        """The consumer is gone: stop reading, cancel the tasks not yet sent
        to a worker, keep no outcome."""
        self._end(None)
        with self._lock:
            self._closed = True
            self._by_index.clear()
            self._in_order.clear()
            sinks = list(self._in_flight.values())
        for sink in sinks:
            if sink.run.cancel(sink):
                with self._lock:
                    self._in_flight.pop(sink.index, None)

    def after_fork(self, error: BaseException) -> None:
        """In a forked child: the feeder thread does not exist (and its
        lock may have been held by a thread of the parent)."""
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._ready = threading.Condition(self._lock)
        self._end(error)

    # -- the consumer

    def take(self, timeout: Optional[float] = None) -> Optional[Tuple[bool, Any]]:
        """The next outcome (success, value); None when timeout seconds
        passed first; StopIteration after the last one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    raise StopIteration
                if self._ordered:
                    outcome = self._by_index.pop(self._taken, None)
                elif self._in_order:
                    outcome = self._in_order.popleft()
                else:
                    outcome = None
                if outcome is not None:
                    break
                if self._total is not None and self._taken >= self._total:
                    raise StopIteration
                if deadline is None:
                    self._ready.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._ready.wait(left)
            self._taken += 1
            if self._drawn - self._taken == self._window - self._refill:
                self._room.notify()
        return outcome


# ---- the engine ------------------------------------------------------------


def _runtime_args(
    cwd: Optional[str], run_time_max: Optional[float] = None
) -> List[str]:
    here = os.getcwd()
    args = ["--python-executable", sys.executable, "--cwd", cwd or here]
    for entry in sys.path:
        args += ["--sys-path", entry or here]
    if run_time_max is not None:
        args += ["--run-time-max", repr(float(run_time_max))]
    return args


class _Engine:
    """The shared machinery; see the module docstring.  Subclasses call
    ``_start_engine`` once, from their constructor, after validating their
    own parameters, and implement ``_check_open`` (their own error for use
    after shutdown / close)."""

    _state: _State
    _dispatcher: threading.Thread

    def _start_engine(
        self,
        *,
        ranks: int,
        ranks_per_group: int,
        pipeline_depth: int,
        all_ranks: bool,
        oversubscribe: bool = False,
        enable_flux_backend: bool = False,
        init_function: Optional[Callable[[], Dict[str, Any]]] = None,
        cwd: _Cwd = None,
        queue_adapter: Any = None,
        queue_adapter_kwargs: Optional[Dict[str, Any]] = None,
        exit_hooks: Sequence[Callable[[], None]] = (),
        restart_limit: int = 0,
        run_time_max: Optional[float] = None,
        hostname: Optional[str] = None,
        zero_copy: bool = True,
    ) -> None:
        # Everything is checked before anything is launched.
        if not isinstance(zero_copy, bool):
            raise TypeError(f"zero_copy must be a bool, not {type(zero_copy).__name__}")
        cwd = _check_cwd(cwd)
        hostname = _check_hostname(hostname)
        restart_limit = _check_restart_limit(restart_limit)
        run_time_max = _check_run_time_max(run_time_max)
        if restart_limit > 0 and queue_adapter is not None:
            raise ValueError(
                "restart_limit must be 0 with a queue_adapter: the job is started by "
                "the queuing system, so pympipool cannot start it again"
            )
        if not isinstance(oversubscribe, bool):
            raise TypeError(
                f"oversubscribe must be a bool, not {type(oversubscribe).__name__}"
            )
        if not isinstance(enable_flux_backend, bool):
            raise TypeError(
                f"enable_flux_backend must be a bool, "
                f"not {type(enable_flux_backend).__name__}"
            )
        if init_function is not None and not callable(init_function):
            raise TypeError(
                f"init_function must be callable (returning a dict), "
                f"not {type(init_function).__name__}"
            )
        submit_job = getattr(queue_adapter, "submit_job", None)
        if queue_adapter is not None and not callable(submit_job):
            raise TypeError("queue_adapter must have a callable submit_job() method")
        if not isinstance(queue_adapter_kwargs, (dict, type(None))):
            raise TypeError(
                f"queue_adapter_kwargs must be a dict or None, "
                f"not {type(queue_adapter_kwargs).__name__}"
            )
        if enable_flux_backend:
            mpiexec = _find_program("flux", "flux (enable_flux_backend=True)")
        else:
            mpiexec = _find_program(
                os.environ.get("PYMPIPOOL_MPIEXEC") or _config.MPIEXEC,
                f"mpiexec of {_config.MPI_FLAVOUR}",
            )
        runtime = _find_program(
            os.environ.get("PYMPIPOOL_RUNTIME") or _config.RUNTIME, "pympipool-runtime"
        )

        self._shutdown_lock = threading.Lock()
        self._shutdown = False
        self._zero_copy = zero_copy
        self._task_flags = _core.FLAG_ALL_RANKS if all_ranks else 0
        #: tasks a lazy map reads ahead (see _Feed)
        self._read_ahead = READ_AHEAD_PER_SLOT * (ranks // ranks_per_group) * pipeline_depth

        core = _core.Executor(
            ranks=ranks,
            ranks_per_group=ranks_per_group,
            pipeline_depth=pipeline_depth,
            launch=queue_adapter is None,
            oversubscribe=oversubscribe,
            flux=enable_flux_backend,
            mpi_flavour=_config.MPI_FLAVOUR,
            mpiexec=None if enable_flux_backend else mpiexec,
            runtime=runtime,
            cwd=cwd,
            runtime_args=_runtime_args(cwd, run_time_max),
            restart_limit=restart_limit,
            run_time_max=run_time_max or 0.0,
            hostname=hostname,
        )
        state = _State(core)
        state.exit_hooks.extend(exit_hooks)
        try:
            if init_function is not None:
                state.submit_init(*dumps_init(init_function))
            if queue_adapter is not None:
                # As pympipool 0.5 (and pysqa's submit_job) expect: the
                # command as one string, quoted for a shell.
                queue_adapter.submit_job(
                    working_directory=cwd or os.getcwd(),
                    cores=ranks,
                    command=shlex.join(core.command),
                    **(queue_adapter_kwargs or {}),
                )
        except BaseException:
            core.destroy(grace_ms=0)
            raise
        self._state = state
        _register_at_exit(state)
        self._dispatcher = threading.Thread(
            target=_dispatch, args=(state,), name="pympipool-dispatcher", daemon=True
        )
        state.dispatcher = self._dispatcher
        self._dispatcher.start()
        self._finalizer = weakref.finalize(self, _collect, state, self._dispatcher)
        self._finalizer.atexit = False  # the atexit hook destroys instead

    # -- what the interfaces build on

    def _check_open(self) -> None:
        raise NotImplementedError

    def _check_broken(self) -> None:
        state = self._state
        if state.forked:
            raise ExecutorBroken(state.forked_text())
        if state.broken is not None:
            raise ExecutorBroken(state.broken)

    def _buffers(self, buffers: List[memoryview]) -> _Buffers:
        """The out-of-band buffers of a call as they are sent: the arrays
        themselves (zero copy: read until the future is done), or copies
        taken now with ``zero_copy=False``."""
        if self._zero_copy or not buffers:
            return buffers
        return [bytes(b) for b in buffers]

    def _submit_call(
        self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Dict[str, Any]
    ) -> _Future:
        """A TASK carrying the pickled ``fn(*args, **kwargs)``.  Pickling
        happens here, before anything is sent: an unpicklable argument raises
        pickle's own exception."""
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        self._check_open()
        payload, buffers = dumps_call(fn, args, kwargs)
        to_send = self._buffers(buffers)
        with self._shutdown_lock:
            self._check_open()
            return self._state.submit(
                _core.MSG_TASK, self._task_flags, payload, to_send
            )

    def _map_flags(self, star: bool, chunk: bool, keyed: bool) -> int:
        """The flags of a map's tasks: FN_KEY if its function is kept by
        key, and for chunks CHUNK with MAP (items are single arguments) or
        STARMAP (argument tuples)."""
        flags = self._task_flags
        if keyed:
            flags |= _core.FLAG_FN_KEY
        if chunk:
            flags |= _core.FLAG_CHUNK | (_core.FLAG_STARMAP if star else _core.FLAG_MAP)
        return flags

    def _function_slot(self, fn_payload: bytes, ntasks: int) -> Union[int, bytes]:
        """The function slot of a map's tasks: the function's pickle itself
        when its tasks carry at most INLINE_FUNCTION_BYTES of it in all
        (``ntasks`` 0: unknown, never), otherwise a fresh key, which the
        caller DEFINEs before the first task."""
        if 0 < ntasks and len(fn_payload) * ntasks <= INLINE_FUNCTION_BYTES:
            return fn_payload
        return next(self._state.keys)

    def _map_eagerly(
        self,
        fn: Callable[..., Any],
        items: Sequence[Any],
        size: int,
        star: bool,
        receiver: _Receiver,
    ) -> None:
        """Sends one CHUNK task (MAP or STARMAP) per ``size`` items: task i
        carries ``items[i*size : (i+1)*size]`` and its outcome goes to
        ``receiver._deliver(i, success, value)``.  The function is pickled
        once; it travels in every task when they are few, else once to
        every group (DEFINE) and is FORGOTten once every task finished.
        Everything is pickled before anything is sent; if a submit fails
        midway, the tasks already sent still run and the error is raised."""
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        self._check_open()
        fn_payload, _ = dumps_function(fn)  # in band: no buffers
        length = len(items)
        starts = range(0, length, size)
        slot = self._function_slot(fn_payload, len(starts))
        messages = [dumps_keyed(slot, items[start : start + size]) for start in starts]
        del items  # the pickles are all that is sent
        flags = self._map_flags(star, True, isinstance(slot, int))
        with self._shutdown_lock:
            self._check_open()
            if isinstance(slot, int):
                self._state.define_key(slot, fn_payload, [])
            run = _MapRun(self._state, slot, receiver)
            try:
                for index, (payload, buffers) in enumerate(messages):
                    messages[index] = (b"", [])  # sent: the frontend holds it
                    ncalls = min(size, length - index * size)
                    run.submit(
                        _Sink(run, index, ncalls), flags, payload, self._buffers(buffers)
                    )
                    del payload, buffers
            finally:
                run.seal()

    def _map_lazily(
        self,
        fn: Callable[..., Any],
        batches: Iterator[List[Any]],
        star: bool,
        ordered: bool,
        ntasks: int = 0,
        in_memory: bool = False,
    ) -> _Feed:
        """Starts the feed that reads batches (one list of items per task)
        ahead of the consumer, at most ``_read_ahead`` tasks (see _Feed).
        The function is pickled once, and DEFINEd unless the tasks are few
        (``ntasks``: how many, if known).  An input ``in_memory`` (lists,
        tuples, ranges) of at most ``_read_ahead`` tasks is sent at once,
        without a feeder thread.  The tasks are CHUNKs (MAP, or
        STARMAP for argument tuples), or single calls of ``fn(*args)``
        where chunks cannot return every rank's result (``Executor(cores >
        1)``): then each batch is one argument tuple."""
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        self._check_open()
        fn_payload, _ = dumps_function(fn)  # in band: no buffers
        chunk = not self._task_flags & _core.FLAG_ALL_RANKS
        feed = _Feed(self, batches, chunk, self._read_ahead, ordered)
        slot = self._function_slot(fn_payload, ntasks)
        with self._shutdown_lock:
            self._check_open()
            if isinstance(slot, int):
                self._state.define_key(slot, fn_payload, [])
            self._state.add_feed(feed)
        run = _MapRun(self._state, slot, feed)
        now = in_memory and 0 < ntasks <= self._read_ahead
        feed.start(run, self._map_flags(star, chunk, isinstance(slot, int)), now)
        return feed

    def _close_engine(self, cancel_futures: bool = False, drain_feeds: bool = False) -> None:
        """No more submits; queued tasks still run (unless cancelled).  The
        lazy maps stop reading their input, or with ``drain_feeds`` read
        all of it first (see ``_State.close``).  Nothing in a forked child
        (the job is the parent's)."""
        if self._state.forked:
            return
        with self._shutdown_lock:
            self._shutdown = True
        if not drain_feeds:
            self._state.stop_feeds(lambda: RuntimeError(_AFTER_SHUTDOWN))
        if cancel_futures:
            self._state.cancel_all()
        self._state.close(drain_feeds=drain_feeds)

    def _join_engine(self) -> None:
        """Waits until every task has finished and the job has exited."""
        if self._state.forked:
            return
        if threading.current_thread() is not self._dispatcher:
            self._dispatcher.join()
            self._state.destroy()

    def _terminate_engine(self, message: str) -> None:
        """Stops the job now: every task not finished is lost, its future
        fails with ExecutorBroken(message)."""
        state = self._state
        if state.forked:
            return
        with self._shutdown_lock:
            self._shutdown = True
        # Every future, queued or running, fails with the same reason; the
        # frontend drops the queued tasks when the core is destroyed.  Idle
        # workers leave at once on SHUTDOWN, cleanly (killing mpiexec makes
        # it print a scary report); busy ones are killed without delay.
        with state.lock:
            busy = bool(state.futures)
        state.break_executor(message)
        state.destroy(grace_ms=0 if busy else _DESTROY_GRACE_MS)

    def _interrupt_engine(self, reason: str) -> None:
        """Ends the executor because ``reason`` (an exception) left its
        ``with`` block: queued calls are cancelled, running ones get SIGINT
        on their ranks (a ``KeyboardInterrupt`` in the call; the worker
        survives), and whatever still runs ``INTERRUPT_GRACE_S`` later is
        stopped with its job (its future fails with ``ExecutorBroken``).
        The ranks run in their own process group, so Ctrl-C at a terminal
        never reaches them by itself."""
        state = self._state
        if state.forked:
            return
        with self._shutdown_lock:
            self._shutdown = True
        state.stop_feeds(lambda: RuntimeError(_AFTER_SHUTDOWN))
        state.cancel_all()
        try:
            state.close()
            if threading.current_thread() is self._dispatcher:
                return
            # A worker may hold a second call behind the running one (its
            # pipeline): it starts once the first is interrupted, and gets
            # its own SIGINT at the next round.  A SIGINT that reaches a
            # rank between calls is ignored there.
            deadline = time.monotonic() + INTERRUPT_GRACE_S
            while self._dispatcher.is_alive() and time.monotonic() < deadline:
                with state.lock:
                    running = bool(state.futures)
                if running:
                    try:
                        state.core.interrupt()
                    except (ValueError, OSError):  # destroyed, or the job is gone
                        pass
                self._dispatcher.join(min(_INTERRUPT_ROUND_S, max(deadline - time.monotonic(), 0)))
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            state.break_executor(f"the executor was interrupted ({reason})")
            state.destroy(grace_ms=0)
            raise
        if self._dispatcher.is_alive():
            state.break_executor(
                f"the call was still running {INTERRUPT_GRACE_S:g} s after {reason} "
                f"left the executor's with block (SIGINT was forwarded to its ranks); "
                f"its MPI job was stopped"
            )
            state.destroy(grace_ms=0)
            self._dispatcher.join()
        else:
            state.destroy()

    @property
    def broken(self) -> bool:
        """Whether the MPI job is gone (crashed, terminated or shut down)."""
        return self._state.broken is not None
