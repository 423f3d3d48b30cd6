"""``_Future``, the ``concurrent.futures.Future`` of a call: light while
nobody waits on it, and cancellable while the frontend has not sent its
task (``_futures.py`` has the path of a call; its ``_State`` makes these).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from concurrent.futures import CancelledError, Future
from concurrent.futures._base import (  # the states Future itself uses
    _STATE_TO_DESCRIPTION_MAP,
    CANCELLED as _CANCELLED,
    CANCELLED_AND_NOTIFIED as _CANCELLED_AND_NOTIFIED,
    FINISHED as _FINISHED,
    PENDING as _PENDING,
    RUNNING as _RUNNING,
)
from typing import TYPE_CHECKING, Any, Callable, List, Optional

if TYPE_CHECKING:
    from ._futures import _State

#: concurrent.futures' own logger: failing done-callbacks are reported there.
_LOGGER = logging.getLogger("concurrent.futures")
_CANCELLED_STATES = (_CANCELLED, _CANCELLED_AND_NOTIFIED)
_DONE_STATES = (_CANCELLED, _CANCELLED_AND_NOTIFIED, _FINISHED)


#: Orders the state changes of every ``_Future`` that has no condition yet,
#: and the making of a condition (see ``_Future``).  Held for a few
#: bytecodes, never while user code runs; made anew in a forked child.
_LAZY_LOCK = threading.RLock()


class _Future(Future[Any]):
    """A ``concurrent.futures.Future`` whose ``cancel()`` also removes the
    task from the frontend's queue; it succeeds only while the task has not
    been sent to the ranks.

    Light while nobody waits.  ``Future.__init__`` gives every future a
    ``threading.Condition`` (an RLock, five bound methods and a deque: about
    1.3 kB) and two lists; a queued call needs none of them until somebody
    waits on it.  Here ``_condition``, ``_waiters`` and ``_done_callbacks``
    are made on first use (``_condition`` by ``result``/``exception`` that
    must block, ``concurrent.futures.wait`` and ``as_completed``, which
    also register their waiters under it; ``_done_callbacks`` by the first
    ``add_done_callback`` on a pending future), and ``_result`` and
    ``_exception`` stay class attributes until set.  The state changes a
    condition would order are ordered by the one module lock
    (``_LAZY_LOCK``) while the future has no condition, and by its
    condition once it has one; the condition is made under the module lock,
    so no change can be half-way under one lock when the other takes over.
    A future without a condition has no waiter to wake: waiters register
    under the condition only.  Reading the state alone (``done``,
    ``running``, ``cancelled``, a finished future's ``result``) takes no
    lock: ``_state`` is written last, after the value it publishes."""

    _state: str
    _result: Any = None
    _exception: Optional[BaseException] = None
    #: the lazily made condition, waiters and done-callbacks (None: not yet)
    _pmp_cond: Optional[threading.Condition] = None
    _pmp_waiters: Optional[List[Any]] = None
    _pmp_callbacks: Optional[List[Callable[[Future[Any]], object]]] = None

    def __init__(self, state: _State, task_id: int) -> None:
        # Future.__init__ is not called: it makes the condition and lists.
        self._state = _PENDING
        self._pmp_state = state
        self._pmp_task_id = task_id

    # -- what Future and concurrent.futures.wait / as_completed use, made on first use

    @property
    def _condition(self) -> threading.Condition:
        cond = self._pmp_cond
        if cond is None:
            with _LAZY_LOCK:
                cond = self._pmp_cond
                if cond is None:
                    cond = self._pmp_cond = threading.Condition()
        return cond

    @_condition.setter
    def _condition(self, cond: threading.Condition) -> None:
        self._pmp_cond = cond

    @property
    def _waiters(self) -> List[Any]:
        waiters = self._pmp_waiters
        if waiters is None:
            with _LAZY_LOCK:
                waiters = self._pmp_waiters
                if waiters is None:
                    waiters = self._pmp_waiters = []
        return waiters

    @_waiters.setter
    def _waiters(self, waiters: List[Any]) -> None:
        self._pmp_waiters = waiters

    @property
    def _done_callbacks(self) -> List[Callable[[Future[Any]], object]]:
        callbacks = self._pmp_callbacks
        if callbacks is None:
            with _LAZY_LOCK:
                callbacks = self._pmp_callbacks
                if callbacks is None:
                    callbacks = self._pmp_callbacks = []
        return callbacks

    @_done_callbacks.setter
    def _done_callbacks(self, callbacks: List[Callable[[Future[Any]], object]]) -> None:
        self._pmp_callbacks = callbacks

    def _pmp_lock(self) -> Any:
        """Acquires and returns the lock that orders this future's state
        changes: its condition once it has one, otherwise the module lock
        (under which no condition can be made for it)."""
        cond = self._pmp_cond
        if cond is None:
            _LAZY_LOCK.acquire()
            if self._pmp_cond is None:
                return _LAZY_LOCK
            _LAZY_LOCK.release()
            cond = self._pmp_cond
        cond.acquire()
        return cond

    def _pmp_notify_all(self) -> None:
        """Wakes result()/exception() callers; the lock of _pmp_lock held."""
        cond = self._pmp_cond
        if cond is not None:
            cond.notify_all()

    # -- Future's API

    def __repr__(self) -> str:
        state = self._state
        text = _STATE_TO_DESCRIPTION_MAP[state]
        if state == _FINISHED:
            if self._exception:
                what = f" raised {self._exception.__class__.__name__}"
            else:
                what = f" returned {self._result.__class__.__name__}"
        else:
            what = ""
        return f"<{self.__class__.__name__} at {id(self):#x} state={text}{what}>"

    def cancelled(self) -> bool:
        return self._state in _CANCELLED_STATES

    def running(self) -> bool:
        return self._state == _RUNNING

    def done(self) -> bool:
        return self._state in _DONE_STATES

    def result(self, timeout: Optional[float] = None) -> Any:
        state = self._state
        if state == _FINISHED:
            exc = self._exception
            if exc is None:
                return self._result
            try:
                raise exc
            finally:
                # as Future.result: no cycle exception -> traceback -> frame -> self
                del exc, self
        if state in _CANCELLED_STATES:
            raise CancelledError()
        return super().result(timeout)  # waits on the condition, made now

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        state = self._state
        if state == _FINISHED:
            return self._exception
        if state in _CANCELLED_STATES:
            raise CancelledError()
        return super().exception(timeout)

    def add_done_callback(self, fn: Callable[[Future[Any]], object]) -> None:
        lock = self._pmp_lock()
        try:
            pending = self._state not in _DONE_STATES
            if pending:
                self._done_callbacks.append(fn)
        finally:
            lock.release()
        if not pending:
            try:
                fn(self)
            except Exception:
                _LOGGER.exception("exception calling callback for %r", self)

    def cancel(self) -> bool:
        state = self._state
        if state in _DONE_STATES or state == _RUNNING:
            return state in _CANCELLED_STATES
        if self._pmp_state.forked or not self._pmp_state.cancel(self._pmp_task_id):
            return False
        return self._pmp_dropped()

    def _pmp_dropped(self) -> bool:
        """Cancels the future of a task that the frontend has dropped, and
        moves it on to CANCELLED_AND_NOTIFIED at once, as
        ProcessPoolExecutor does when it drops a cancelled work item:
        ``concurrent.futures.wait`` and ``as_completed`` count a cancelled
        future as finished only in that state (and wait for it forever
        otherwise).  The done-callbacks run once it is in that state."""
        lock = self._pmp_lock()
        try:
            if self._state != _PENDING:
                return self._state in _CANCELLED_STATES
            self._state = _CANCELLED_AND_NOTIFIED
            for waiter in self._pmp_waiters or ():
                waiter.add_cancelled(self)
            self._pmp_notify_all()
        finally:
            lock.release()
        self._invoke_callbacks()
        return True

    # -- what the executor uses

    def set_running_or_notify_cancel(self) -> bool:
        lock = self._pmp_lock()
        try:
            state = self._state
            if state == _PENDING:
                self._state = _RUNNING
                return True
            if state == _CANCELLED:
                self._state = _CANCELLED_AND_NOTIFIED
                for waiter in self._pmp_waiters or ():
                    waiter.add_cancelled(self)
                return False
        finally:
            lock.release()
        _LOGGER.critical("Future %s in unexpected state: %s", id(self), state)
        raise RuntimeError("Future in unexpected state")

    def set_result(self, result: Any) -> None:
        lock = self._pmp_lock()
        try:
            if self._state in _DONE_STATES:
                raise concurrent.futures.InvalidStateError(f"{self._state}: {self!r}")
            self._result = result
            self._state = _FINISHED
            for waiter in self._pmp_waiters or ():
                waiter.add_result(self)
            self._pmp_notify_all()
        finally:
            lock.release()
        self._invoke_callbacks()

    def set_exception(self, exception: Optional[BaseException]) -> None:
        lock = self._pmp_lock()
        try:
            if self._state in _DONE_STATES:
                raise concurrent.futures.InvalidStateError(f"{self._state}: {self!r}")
            self._exception = exception
            self._state = _FINISHED
            for waiter in self._pmp_waiters or ():
                waiter.add_exception(self)
            self._pmp_notify_all()
        finally:
            lock.release()
        self._invoke_callbacks()

    def _invoke_callbacks(self) -> None:
        # As Future._invoke_callbacks, but a callback that raises any
        # BaseException (SystemExit, KeyboardInterrupt, ...) is logged too:
        # it must neither kill the dispatcher thread nor keep the callbacks
        # after it from running.
        for callback in self._pmp_callbacks or ():
            try:
                callback(self)
            except BaseException:
                _LOGGER.exception("exception calling callback for %r", self)


def _reset_after_fork() -> None:
    """In a forked child: the module lock may have been held by a thread
    that does not exist there."""
    global _LAZY_LOCK
    _LAZY_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _cancelled(future: Future[Any]) -> bool:
    """Cancels a future whose task the frontend has dropped (see
    ``_Future._pmp_dropped``)."""
    if isinstance(future, _Future):
        return future._pmp_dropped()
    if not Future.cancel(future):
        return False
    future.set_running_or_notify_cancel()
    return True
