"""The maps: many calls of one function, sent as few tasks and delivered
without a ``Future`` each.

Every interface's map runs through here: ``Pool.map`` / ``starmap`` and
their ``_async`` forms through ``_Maps._map_eagerly``; the lazy maps
(``Executor.map``, ``PoolExecutor.map``, ``Pool.imap``,
``imap_unordered``) through ``_Maps._map_lazily``.  ``_Maps`` is the maps'
half of ``_engine._Engine``, which derives from it.

* The function.  A map pickles its function once.  When its tasks are few
  (their count times the pickle at most ``INLINE_FUNCTION_BYTES``), every
  task carries the pickle in its function slot, as a plain ``TASK`` does,
  and the workers' cache of unpickled functions makes that one unpickling
  per worker.  Otherwise it is sent once to every group under a fresh key
  (``DEFINE``, ``_futures._State.define_key``), the tasks name the key
  (``FN_KEY``), and the key is dropped everywhere (``FORGET``) once no
  more tasks will be sent and every one sent has completed or was
  cancelled (``_MapRun``).
* The tasks.  A task carries the plain list of its items (``CHUNK`` with
  ``MAP``, or ``STARMAP`` for argument tuples); its result is the list of
  their values.  Where a chunk cannot return every rank's value
  (``Executor(cores > 1)``) each task is one call.  No task is a
  ``Future``: the futures table holds a ``_Sink``, whose completion the
  dispatcher hands straight to the map's receiver (``_Receiver``: a
  ``MapResult``, a lazy map's ``_Feed``, or the pools' relay to their
  result-handler thread when user code runs on delivery).
* Lazy maps.  A ``_Feed`` reads the input in a feeder thread of its own,
  at most the groups' widest pipeline window and ``READ_AHEAD_PER_SLOT``
  tasks per task of their base depth ahead of what the consumer has taken; an input in memory (a list, tuple or
  range) that fits that window is sent at once, without the thread.
"""

from __future__ import annotations

import collections
import itertools
import operator
import pickle
import threading
import time
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

from . import _core
from ._futures import _Buffers, _State
from ._serialize import dumps_function, dumps_keyed

#: Tasks a lazy map keeps read ahead per task a group may hold: see _Feed.
READ_AHEAD_PER_SLOT = 4
#: A map whose tasks would carry at most this many bytes of its function's
#: pickle in all carries it in every task (as a TASK does; the workers cache
#: it by those bytes) instead of a DEFINE to every group and a FORGET after.
INLINE_FUNCTION_BYTES = 64 * 1024


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
    out before the first task, see ``_Maps``, the ``FORGET`` once no more
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
        owner: "_Maps",
        batches: Iterator[List[Any]],
        chunk: bool,
        window: int,
        ordered: bool,
    ) -> None:
        self._owner: Optional[_Maps] = owner
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

    def _next(self, run: _MapRun, batches: Iterator[List[Any]], owner: "_Maps") -> bool:
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
            try:
                payload, buffers = self._dumps(run, batch)
            except (TypeError, pickle.PicklingError) as exc:
                # futures among the items (_dependencies): their results, once done
                batch = owner._map_batch_unpicklable(batch, exc)
                payload, buffers = self._dumps(run, batch)
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

    def _dumps(self, run: _MapRun, batch: List[Any]) -> Tuple[bytes, List[memoryview]]:
        if self._chunk:
            return dumps_keyed(run.slot, batch)
        return dumps_keyed(run.slot, batch[0], {})

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


# ---- starting a map ------------------------------------------------------------


class _Maps:
    """The maps' half of ``_engine._Engine``, its base class: the slot and
    flags of a map's tasks, and the start of an eager or a lazy map.  What
    it uses of the engine is declared here and provided by ``_Engine``."""

    _state: _State
    _shutdown_lock: threading.Lock
    _task_flags: int
    #: tasks a lazy map reads ahead (see _Feed)
    _read_ahead: int

    def _check_open(self) -> None:
        raise NotImplementedError

    def _buffers(self, buffers: List[memoryview]) -> _Buffers:
        raise NotImplementedError

    def _map_batch_unpicklable(self, batch: List[Any], error: BaseException) -> List[Any]:
        """The items of a lazy map's task that could not be pickled (error),
        to be pickled once more: the interfaces that resolve futures
        among them (``Executor``, ``PoolExecutor``) wait for them here, in
        the feeder thread; the others raise error, the task's outcome."""
        raise error

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
