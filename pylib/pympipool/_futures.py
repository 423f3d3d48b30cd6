"""The futures table and the dispatcher thread: the path of one call, from
``submit`` to its future's result.

Every interface submits through one ``_State`` per executor.  It holds the
``_core.Executor`` (the C frontend) and the table of what is pending: task
id to ``_Future`` (a call) or ``_Sink`` (a task of a map, see
``_maps``).

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
import logging
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
    Sequence,
    Set,
    Tuple,
    Union,
)

from . import _core
from ._serialize import drop_result, loads_error, loads_result

if TYPE_CHECKING:
    from ._maps import _Feed, _Sink

_AFTER_SHUTDOWN = "cannot schedule new futures after shutdown"
#: The out-of-band buffers of a message as they are handed to the frontend.
_Buffers = Sequence[Union[bytes, memoryview]]
#: What ``_core.Executor.wait`` returns: (kind, task_id, flags, frames, text,
#: status).
_Completion = Tuple[int, int, int, List["_core.Frame"], str, int]
#: Grace period for the job to leave after SHUTDOWN before it is killed.
_DESTROY_GRACE_MS = 3000
#: concurrent.futures' own logger: failing done-callbacks are reported there.
_LOGGER = logging.getLogger("concurrent.futures")


class ExecutorBroken(concurrent.futures.BrokenExecutor):
    """The MPI job behind an executor is gone (it crashed, could not start, or
    runs a different Python).  The message says what happened and carries the
    tail of the job's stderr.  Every pending future fails with it and every
    later ``submit`` raises it at once."""


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
        self.futures: Dict[int, "_Pending"] = {}
        #: the feeds of lazy maps still reading their input (see _Feed)
        self.feeds: Set["_Feed"] = set()
        #: close the core once the last feed has ended (Pool.close)
        self.close_when_fed = False
        self.broken: Optional[str] = None
        self.ids = itertools.count(1)
        self.keys = itertools.count(1)
        self.hellos: List[Dict[str, str]] = []
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
        task_id = next(self.ids)
        future = _Future(self, task_id)
        self._enter(task_id, future, msg_type, flags, payload, buffers, ncalls)
        return future

    def submit_sink(
        self, sink: "_Sink", flags: int, payload: bytes, buffers: _Buffers
    ) -> None:
        """Submits a TASK of a map whose completion goes to sink."""
        task_id = next(self.ids)
        sink.task_id = task_id
        self._enter(task_id, sink, _core.MSG_TASK, flags, payload, buffers, sink.size)

    def _enter(
        self,
        task_id: int,
        future: "_Pending",
        msg_type: int,
        flags: int,
        payload: bytes,
        buffers: _Buffers,
        ncalls: int,
    ) -> None:
        with self.lock:
            if self.broken is not None:
                raise ExecutorBroken(self.broken)
            self.futures[task_id] = future
            try:
                self.core.submit(task_id, msg_type, flags, payload, buffers, ncalls)
            except BrokenPipeError as exc:
                del self.futures[task_id]
                if self.broken is None:
                    self.broken = exc.strerror or str(exc)
                raise ExecutorBroken(self.broken) from None
            except ValueError as exc:
                del self.futures[task_id]
                if self.core.destroyed:
                    raise ExecutorBroken("the executor was destroyed") from None
                raise exc
            except RuntimeError:
                del self.futures[task_id]
                raise RuntimeError(_AFTER_SHUTDOWN) from None
            except BaseException:
                del self.futures[task_id]
                raise

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
            except ValueError:
                if self.core.destroyed:
                    raise ExecutorBroken("the executor was destroyed") from None
                raise
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
            except ValueError:  # destroyed: the future is being failed
                return False
            if removed:
                del self.futures[task_id]
            return removed

    def cancel_all(self) -> None:
        with self.lock:
            try:
                ids = self.core.cancel_all()
            except ValueError:
                return
            cancelled = [self.futures.pop(i) for i in ids if i in self.futures]
        for future in cancelled:
            if isinstance(future, _Future):
                _cancelled(future)
            else:  # a task of a map
                future.set_exception(CancelledError())

    def pop(self, task_id: int) -> Optional["_Pending"]:
        with self.lock:
            return self.futures.pop(task_id, None)

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
            futures = list(self.futures.values())
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
        except ValueError:  # already destroyed
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
        except ValueError:
            return 0


class _Future(Future[Any]):
    """A Future whose ``cancel()`` also removes the task from the frontend's
    queue; it succeeds only while the task has not been sent to the ranks."""

    # Future's private attributes used here (typeshed does not declare them).
    _condition: threading.Condition
    _done_callbacks: List[Callable[[Future[Any]], object]]

    def __init__(self, state: _State, task_id: int) -> None:
        super().__init__()
        self._pmp_state = state
        self._pmp_task_id = task_id

    def cancel(self) -> bool:
        if self.done():
            return super().cancel()
        if self._pmp_state.forked or not self._pmp_state.cancel(self._pmp_task_id):
            return False
        return _cancelled(self)

    def _invoke_callbacks(self) -> None:
        # As Future._invoke_callbacks, but a callback that raises any
        # BaseException (SystemExit, KeyboardInterrupt, ...) is logged too:
        # it must neither kill the dispatcher thread nor keep the callbacks
        # after it from running.
        for callback in self._done_callbacks:
            try:
                callback(self)
            except BaseException:
                _LOGGER.exception("exception calling callback for %r", self)


def _cancelled(future: Future[Any]) -> bool:
    """Cancels a future whose task the frontend has dropped, and moves it on
    to CANCELLED_AND_NOTIFIED at once, as ProcessPoolExecutor does when it
    drops a cancelled work item: ``concurrent.futures.wait`` and
    ``as_completed`` count a cancelled future as finished only in that
    state (and wait for it forever otherwise)."""
    if not Future.cancel(future):
        return False
    future.set_running_or_notify_cancel()
    return True


def _finish(
    future: "Union[Future[Any], _Sink]",
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
_Pending = Union[_Future, "_Sink"]


# ---- the dispatcher thread ------------------------------------------------------


def _parse_hello(text: str) -> Dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _check_hello(fields: Dict[str, str]) -> Optional[str]:
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
            except ValueError:  # destroyed under us (atexit, finalizer)
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
        fields = _parse_hello(text)
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
