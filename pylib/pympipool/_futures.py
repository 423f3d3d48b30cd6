"""The futures table and the dispatcher thread: the path of one call, from
``submit`` to its future's result.

Every interface submits through one ``_State`` per executor.  It holds the
``_core.Executor`` (the C frontend) and the table of what is pending: task
id to ``_Future`` (a call), ``_Sink`` (a task of a map, see ``_maps``) or
another ``_Entry`` (the ``AsyncResult`` of ``Pool.apply_async``, see
``_pool``): whatever the table holds is completed through
``set_running_or_notify_cancel`` and ``set_result`` / ``set_exception``.
Nothing else is kept per call in Python: the pickled call itself is copied
into the frontend's task record by ``core.submit`` and dropped here.

1. ``_State.submit`` takes the next task id, enters the future in the table
   and hands the pickled call to ``core.submit``, both under the table's
   lock, so no completion can come for an id the table does not hold.  The
   frontend's refusals become the interfaces' errors here: a job that is
   gone is ``ExecutorBroken`` (kept in ``broken``, so every later submit
   raises it at once), a closed core the ``RuntimeError`` of
   ``concurrent.futures``.  ``submit_init`` sends the ``init_function``,
   ``define_key`` and ``forget`` a map's function kept by key (``DEFINE``,
   ``FORGET``).
2. One dispatcher thread per executor (``_dispatch``, a daemon) loops on
   ``core.wait_batch()``, which blocks in C with the GIL released and takes
   every completion already queued, up to 64, so a burst of results costs
   one release of the GIL.  ``_handle`` pops each task's entry from the
   table, unpickles its result or remote error and finishes it
   (``_finish``).  The job's events come the same way: a relaunch
   (``EVENT_RESTART``, kept in ``restarts``), a group's hello (a runtime of
   another Python breaks the executor at once), the job's exit (every
   pending future fails with ``ExecutorBroken``) and ``CLOSED``, after
   which the dispatcher destroys the core, runs ``exit_hooks`` (every future
   is finished by then; the pools stop their result-handler thread that
   way) and ends.
3. ``_Future.cancel`` takes a task back that the frontend has not sent yet;
   ``_State.cancel_all`` every one.

The dispatcher holds only the ``_State``, never the interface object, so an
executor nobody references can be collected (``_lifecycle``).  The table
also lists the executor's lazy maps still reading their input (``feeds``):
closing or breaking the executor stops them.

User data never kills a thread of ours.  Whatever a completion carries (a
result whose unpickling raises ``SystemExit``, a done-callback that raises
``KeyboardInterrupt``) fails or is logged for that future only; the
dispatcher goes on.  Nor does it keep anything alive: a completion's frames,
value and future are dropped before the next wait, so a result the caller
dropped is freed at once.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import sys
import threading
from concurrent.futures import CancelledError, Future
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
    Union,
)

from . import _core
from ._future import _LOGGER, _cancelled, _Future
from ._serialize import drop_result, loads_error, loads_result

if TYPE_CHECKING:
    from ._maps import _Feed, _Sink


class _Entry(Protocol):
    """What the futures table can hold besides a ``_Future``: an object the
    dispatcher completes (``_finish``) without a Future's machinery (a
    map's ``_Sink``, ``Pool.apply_async``'s ``AsyncResult``).  It cannot be
    cancelled one by one; ``cancel_all`` fails it with ``CancelledError``."""

    def set_running_or_notify_cancel(self) -> bool: ...

    def set_result(self, value: Any) -> None: ...

    def set_exception(self, exception: BaseException) -> None: ...


_AFTER_SHUTDOWN = "cannot schedule new futures after shutdown"
#: The out-of-band buffers of a message as they are handed to the frontend.
_Buffers = Sequence[Union[bytes, memoryview]]
#: What ``_core.Executor.wait`` returns: (kind, task_id, flags, frames, text,
#: status).
_Completion = Tuple[int, int, int, List["_core.Frame"], str, int]
#: Grace period for the job to leave after SHUTDOWN before it is killed.
_DESTROY_GRACE_MS = _core.DESTROY_GRACE_MS


class ExecutorBroken(concurrent.futures.BrokenExecutor):
    """The MPI job behind an executor is gone (it crashed, could not start, or
    runs a different Python).  The message says what happened and carries the
    tail of the job's stderr.  Every pending future fails with it and every
    later ``submit`` raises it at once."""


# ---- the futures table ------------------------------------------------------------


class _Table:
    """The futures table: task id -> entry (``_Pending``), for ids entered
    in increasing order (``_State`` takes each id under its lock, right
    before it enters it).

    A list of slots indexed by ``id - base``: 8 bytes a pending call where
    a dict takes about 50 more (its entry, and the int of its key).
    Entries leave in any order; a slot left is None, and the list drops its
    leading empty slots once they are half of it.  So that a few entries
    that stay long (a call that runs for hours) while many newer ones come
    and go cannot keep the list growing, the live entries of its older half
    move to a dict (``old``, the ids below ``base``) once less than a
    quarter of the slots past the head are live.  Every operation is O(1)
    amortised.  Not thread-safe: ``_State.lock`` guards it."""

    __slots__ = ("slots", "base", "head", "live", "old")

    #: below this many slots the list is never compacted or spilled
    _MIN_SPAN = 64

    def __init__(self) -> None:
        self.slots: List[Optional[_Pending]] = []
        self.base = 0  # the id of slots[0]
        self.head = 0  # slots[:head] are all None
        self.live = 0  # entries in slots
        self.old: Dict[int, _Pending] = {}  # entries moved out of slots (ids < base)

    def __len__(self) -> int:
        return self.live + len(self.old)

    def __contains__(self, task_id: int) -> bool:
        return self.get(task_id) is not None

    def get(self, task_id: int) -> Optional["_Pending"]:
        index = task_id - self.base
        if index < 0:
            return self.old.get(task_id)
        slots = self.slots
        return slots[index] if index < len(slots) else None

    def add(self, task_id: int, entry: "_Pending") -> None:
        slots = self.slots
        if not slots:
            self.base = task_id
            self.head = 0
        index = task_id - self.base
        gap = index - len(slots)
        if gap < 0:
            raise ValueError(f"task id {task_id} entered after a later one")
        if gap:  # ids taken but never entered (INIT)
            slots.extend([None] * gap)
        slots.append(entry)
        self.live += 1

    def pop(self, task_id: int) -> Optional["_Pending"]:
        """Removes and returns the entry of task_id, or None."""
        index = task_id - self.base
        if index < 0:
            return self.old.pop(task_id, None)
        slots = self.slots
        if index >= len(slots):
            return None
        entry = slots[index]
        if entry is None:
            return None
        slots[index] = None
        self.live -= 1
        if not self.live:
            slots.clear()
            self.head = 0
        elif index == self.head:
            self._advance()
        elif len(slots) - self.head > 4 * self.live + self._MIN_SPAN:
            self._spill()
        return entry

    def _advance(self) -> None:
        """Moves the head past the empty slots; drops them once they are
        half the list."""
        slots = self.slots
        head = self.head
        while slots[head] is None:  # there is a live entry after it
            head += 1
        if head >= self._MIN_SPAN and 2 * head >= len(slots):
            del slots[:head]
            self.base += head
            head = 0
        self.head = head

    def _spill(self) -> None:
        """Moves the live entries of the older half of the slots to old."""
        slots = self.slots
        cut = (self.head + len(slots)) // 2
        base = self.base
        for index in range(self.head, cut):
            entry = slots[index]
            if entry is not None:
                self.old[base + index] = entry
                self.live -= 1
        del slots[:cut]
        self.base = base + cut
        self.head = 0
        if not self.live:
            slots.clear()
        else:
            self._advance()

    def values(self) -> List["_Pending"]:
        """The entries, oldest first."""
        return list(self.old.values()) + [e for e in self.slots[self.head :] if e is not None]

    def items(self) -> List[Tuple[int, "_Pending"]]:
        base = self.base
        return list(self.old.items()) + [
            (base + index, entry)
            for index, entry in enumerate(self.slots)
            if entry is not None
        ]

    def clear(self) -> None:
        self.slots = []
        self.base = self.head = self.live = 0
        self.old = {}


# ---- shared state between an executor and its dispatcher thread -----------


class _State:
    """The core and the futures table, shared by an executor, its futures and
    its dispatcher thread.  It never refers to the executor itself."""

    def __init__(self, core: "_core.Executor") -> None:
        self.core = core
        self.pid = os.getpid()
        #: shut down (or collected) without waiting: queued calls still run
        self.closing = False
        self.dispatcher: Optional[threading.Thread] = None
        #: run in a forked child before its futures are failed (pools)
        self.fork_hooks: List[Callable[[], None]] = []
        self.lock = threading.Lock()
        self.futures = _Table()
        #: the feeds of lazy maps still reading their input (see _Feed)
        self.feeds: Set["_Feed"] = set()
        #: close the core once the last feed has ended (Pool.close)
        self.close_when_fed = False
        self.broken: Optional[str] = None
        self.ids = itertools.count(1)
        self.keys = itertools.count(1)
        #: every group's hello, decoded (_core.decode_hello), in arrival order
        self.hellos: List[Dict[str, Any]] = []
        self.exit_hooks: List[Callable[[], None]] = []
        #: why the job was relaunched, one text per restart (EVENT_RESTART)
        self.restarts: List[str] = []

    # -- submitting and cancelling

    def submit(
        self,
        msg_type: int,
        flags: int,
        payload: bytes,
        buffers: _Buffers,
        ncalls: int = 1,
    ) -> "_Future":
        with self.lock:
            task_id = next(self.ids)
            future = _Future(self, task_id)
            self._enter_locked(task_id, future, msg_type, flags, payload, buffers, ncalls)
        return future

    def submit_sink(
        self, sink: "_Sink", flags: int, payload: bytes, buffers: _Buffers
    ) -> None:
        """Submits a TASK of a map whose completion goes to sink."""
        with self.lock:
            task_id = sink.task_id = next(self.ids)
            self._enter_locked(
                task_id, sink, _core.MSG_TASK, flags, payload, buffers, sink.size
            )

    def submit_entry(
        self, entry: _Entry, msg_type: int, flags: int, payload: bytes, buffers: _Buffers
    ) -> None:
        """Submits a call whose completion goes to entry (no Future)."""
        with self.lock:
            self._enter_locked(next(self.ids), entry, msg_type, flags, payload, buffers, 1)

    def submit_members(
        self,
        entries: Sequence[_Entry],
        groups: Sequence[int],
        flags: int,
        payload: bytes,
        buffers: _Buffers,
    ) -> None:
        """Submits one TASK per group, all with the same payload and
        buffers, all or none (``FlexExecutor``: the members of one call);
        entries[i] gets the completion of the task for groups[i].  Errors
        as for ``submit``."""
        with self.lock:
            if self.broken is not None:
                raise ExecutorBroken(self.broken)
            ids = [next(self.ids) for _ in entries]
            for task_id, entry in zip(ids, entries):
                self.futures.add(task_id, entry)
            try:
                self.core.submit_to(ids, groups, flags, payload, buffers)
            except BaseException as exc:
                for task_id in ids:
                    self.futures.pop(task_id)
                error = self._submit_error(exc)
                if error is exc:
                    raise
                raise error from None

    def _enter_locked(
        self,
        task_id: int,
        future: "_Pending",
        msg_type: int,
        flags: int,
        payload: bytes,
        buffers: _Buffers,
        ncalls: int,
    ) -> None:
        """Enters future in the table and hands the call to the frontend;
        self.lock held, task_id just taken from self.ids under it (so the
        table sees its ids in increasing order)."""
        if self.broken is not None:
            raise ExecutorBroken(self.broken)
        self.futures.add(task_id, future)
        try:
            self.core.submit(task_id, msg_type, flags, payload, buffers, ncalls)
        except BaseException as exc:
            self.futures.pop(task_id)
            error = self._submit_error(exc)
            if error is exc:
                raise
            raise error from None

    def _submit_error(self, exc: BaseException) -> BaseException:
        """What the interfaces raise for the frontend's refusal of a submit
        (self.lock held): a job that is gone is ExecutorBroken (kept in
        ``broken``), a closed core the RuntimeError of concurrent.futures;
        anything else as it is."""
        if isinstance(exc, BrokenPipeError):
            if self.broken is None:
                self.broken = exc.strerror or str(exc)
            return ExecutorBroken(self.broken)
        if isinstance(exc, _core.DestroyedError):
            return ExecutorBroken("the executor was destroyed")
        if isinstance(exc, RuntimeError):
            return RuntimeError(_AFTER_SHUTDOWN)
        return exc

    def submit_init(self, payload: bytes, buffers: _Buffers) -> None:
        self.core.submit(next(self.ids), _core.MSG_INIT, 0, payload, buffers)

    def define_key(self, key: int, payload: bytes, buffers: _Buffers) -> None:
        """Broadcasts a DEFINE of a pickled function under key (from
        ``self.keys``)."""
        with self.lock:
            if self.broken is not None:
                raise ExecutorBroken(self.broken)
            try:
                self.core.broadcast(_core.MSG_DEFINE, key, payload, buffers)
            except BrokenPipeError as exc:
                if self.broken is None:
                    self.broken = exc.strerror or str(exc)
                raise ExecutorBroken(self.broken) from None
            except _core.DestroyedError:
                raise ExecutorBroken("the executor was destroyed") from None
            except RuntimeError:
                raise RuntimeError(_AFTER_SHUTDOWN) from None

    def forget(self, key: int) -> None:
        """Broadcasts the FORGET of key.  Once the job is gone or the core is
        closed there is nothing left to forget: errors are ignored."""
        try:
            self.core.broadcast(_core.MSG_FORGET, key)
        except (OSError, ValueError, RuntimeError):
            pass

    def cancel(self, task_id: int) -> bool:
        """Removes a task the frontend has not sent yet."""
        with self.lock:
            if task_id not in self.futures:
                return False
            try:
                removed = self.core.cancel(task_id)
            except _core.DestroyedError:  # the future is being failed
                return False
            if removed:
                self.futures.pop(task_id)
            return removed

    def cancel_all(self) -> None:
        with self.lock:
            try:
                ids = self.core.cancel_all()
            except _core.DestroyedError:
                return
            cancelled = [self.futures.pop(i) for i in ids]
        for future in cancelled:
            if future is None:
                continue
            if isinstance(future, _Future):
                _cancelled(future)
            else:  # a task of a map
                future.set_exception(CancelledError())

    def pop(self, task_id: int) -> Optional["_Pending"]:
        with self.lock:
            return self.futures.pop(task_id)

    # -- the feeds of lazy maps

    def add_feed(self, feed: "_Feed") -> None:
        with self.lock:
            self.feeds.add(feed)

    def feed_ended(self, feed: "_Feed") -> None:
        """A feed has read its last input: the core is closed now if a
        ``close`` waited for that (``close(drain_feeds=True)``)."""
        with self.lock:
            self.feeds.discard(feed)
            close = self.close_when_fed and not self.feeds
        if close:
            self.close()

    def stop_feeds(self, make_error: Callable[[], BaseException]) -> None:
        """Every lazy map stops reading its input; each ends, after the
        results of the tasks it sent, with make_error()."""
        with self.lock:
            feeds = list(self.feeds)
        for feed in feeds:
            feed.stop(make_error())

    # -- breaking, closing, destroying

    def break_executor(self, message: str) -> None:
        """Marks the executor broken, stops the lazy maps' feeds and fails
        every pending future."""
        with self.lock:
            if self.broken is None:
                self.broken = message
            futures = self.futures.values()
            self.futures.clear()
        self.stop_feeds(lambda: ExecutorBroken(message))
        for future in futures:
            _finish(future, exception=ExecutorBroken(message))

    def close(self, drain_feeds: bool = False) -> None:
        """Closes the core: no more tasks, the queued ones still run.  With
        ``drain_feeds`` the lazy maps still reading their input first read
        all of it, without their read-ahead bound, and the core is closed
        once the last of them has ended (``Pool.close``); otherwise they
        stop reading, and end with the error of a submit after shutdown."""
        self.closing = True
        if drain_feeds:
            with self.lock:
                feeds = list(self.feeds)
                self.close_when_fed = bool(feeds)
            for feed in feeds:
                feed.drain()
            if feeds:
                return
        else:
            self.stop_feeds(lambda: RuntimeError(_AFTER_SHUTDOWN))
        try:
            self.core.close()
        except _core.DestroyedError:
            pass

    @property
    def forked(self) -> bool:
        """Whether this is a forked child of the process that made the
        executor (the frontend's own record, ``_core.Executor.forked``)."""
        return bool(self.core.forked)

    def destroy(self, grace_ms: int = _DESTROY_GRACE_MS) -> None:
        if self.forked:  # the parent's job: not ours to stop
            return
        self.core.destroy(grace_ms=grace_ms)

    def forked_text(self) -> str:
        return (
            f"this executor belongs to process {self.pid}; it cannot be used in a "
            f"forked child process (pid {os.getpid()}): create a new one in the child"
        )

    def pending(self) -> int:
        try:
            return self.core.pending()
        except _core.DestroyedError:
            return 0


def _finish(
    future: "Union[Future[Any], _Entry]",
    result: Any = None,
    exception: Optional[BaseException] = None,
) -> None:
    try:
        if not future.set_running_or_notify_cancel():
            return  # cancelled meanwhile
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
    except RuntimeError:  # set_running_or_notify_cancel on a finished future
        pass


#: An entry of the futures table.
_Pending = Union[_Future, _Entry]


# ---- the dispatcher thread ------------------------------------------------------


def _check_hello(fields: Dict[str, Any]) -> Optional[str]:
    """Returns why the worker cannot serve us, or None."""
    theirs = fields.get("python", "")
    ours = "%d.%d" % sys.version_info[:2]
    if theirs.split(".")[:2] != ours.split("."):
        return (
            f"the runtime on {fields.get('host', '?')} (pid {fields.get('pid', '?')}) "
            f"runs Python {theirs or 'of unknown version'} but this process runs "
            f"Python {sys.version.split()[0]}: pickles cannot cross; build "
            f"pympipool-runtime for {sys.executable} or point PYMPIPOOL_RUNTIME at "
            f"one that was"
        )
    return None


def _dispatch(state: _State) -> None:
    """The dispatcher thread: completes futures until the core is closed or
    destroyed.  Holds only ``state``; takes the completions that are there
    in one go (one release of the GIL for many futures), handles them in
    order and keeps nothing of one after it was handled."""
    core = state.core
    events: List[Optional[_Completion]]
    _core.name_thread("pympipool-disp")  # as top and perf show it
    try:
        while True:
            try:
                events = core.wait_batch(None)  # type: ignore[assignment]
            except _core.DestroyedError:  # under us (atexit, finalizer)
                state.break_executor("the executor was destroyed")
                return
            except RuntimeError:  # CLOSED already delivered
                return
            for index, event in enumerate(events):
                events[index] = None  # the frames go once handled
                try:
                    if _handle(state, event):  # type: ignore[arg-type]
                        return
                except BaseException:  # a thread of ours never dies of user data
                    _LOGGER.exception("pympipool: error while handling a completion")
                event = None
    except BaseException as exc:  # never leave futures hanging
        state.break_executor(f"pympipool's dispatcher thread failed: {exc!r}")
        raise
    finally:
        for hook in state.exit_hooks:
            try:
                hook()
            except BaseException:
                _LOGGER.exception("pympipool: error in an exit hook")


def _handle(state: _State, event: _Completion) -> bool:
    """Handles one completion; True when the dispatcher is to stop.  Runs
    user code (unpickling, done-callbacks): whatever it raises is the
    future's exception, never the dispatcher's."""
    kind, task_id, flags, frames, text, status = event
    if kind == _core.DONE_RESULT:
        future = state.pop(task_id)
        if future is None:
            drop_result(flags, frames)  # its shared segments go back
            return False
        try:
            value = loads_result(flags, frames, _core.FLAG_PER_RANK)
        except BaseException as exc:  # SystemExit from a hostile __reduce__, ...
            _finish(future, exception=exc)
        else:
            _finish(future, result=value)
    elif kind == _core.DONE_ERROR:
        _fail(state, task_id, lambda: loads_error(frames))
    elif kind == _core.DONE_BROKEN:
        with state.lock:
            if state.broken is None:
                state.broken = text
        _fail(state, task_id, lambda: ExecutorBroken(text))
    elif kind == _core.DONE_LOST:
        # Lost in a restart: this call fails, the executor goes on.
        _fail(state, task_id, lambda: ExecutorBroken(text))
    elif kind == _core.DONE_TIMEOUT:
        _fail(state, task_id, lambda: TimeoutError(text))
    elif kind == _core.EVENT_RESTART:
        state.restarts.append(text)
    elif kind == _core.EVENT_HELLO:
        problem: Optional[str]
        try:  # the C decoder; the frontend admitted the group with it already
            fields = _core.decode_hello(text.encode())
        except ValueError as exc:
            problem = f"a group of the runtime said a malformed hello: {exc}"
        else:
            state.hellos.append(fields)
            problem = _check_hello(fields)
        if problem is not None:
            # Nothing useful can run there: stop the job now rather than
            # wait for tasks it may never answer.
            state.break_executor(problem)
            state.destroy()
            return True
    elif kind == _core.EVENT_EXIT:
        state.break_executor(text or f"the MPI job exited (status {status})")
    elif kind == _core.EVENT_CLOSED:
        state.break_executor("the executor was shut down")
        state.destroy()
        return True
    return False


def _fail(state: _State, task_id: int, make_error: Callable[[], BaseException]) -> None:
    """Fails the future of task_id (if it is still ours) with make_error()."""
    future = state.pop(task_id)
    if future is not None:
        _finish(future, exception=make_error())
