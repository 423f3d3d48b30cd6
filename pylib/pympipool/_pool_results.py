"""The result objects of ``Pool`` and ``MPISpawnPool`` (``_pool.py``):
``AsyncResult``, ``MapResult``, ``IMapIterator``, and the result-handler
thread that delivers to them when user code (a callback, a progress bar)
runs on a delivery; ``_pool.py``'s docstring says who delivers what, and
when."""

from __future__ import annotations

import multiprocessing
import queue
import sys
import threading
import traceback
import weakref
from typing import Any, Callable, Generic, List, Optional, Tuple, TypeVar, cast

from . import _future
from ._maps import _Feed, _Receiver

_T = TypeVar("_T")

# ---- the result-handler thread ------------------------------------------------


#: One queued delivery: (receiver, index, success, value).
_Delivery = Tuple[_Receiver, int, bool, Any]


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

    def put(self, target: _Receiver, index: int, success: bool, value: Any) -> None:
        if self._direct:
            _deliver(target, index, success, value)
        else:
            self._queue.put((target, index, success, value))

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


def _deliver(target: _Receiver, index: int, success: bool, value: Any) -> None:
    try:
        target._deliver(index, success, value)
    except BaseException:  # a broken result object must not stop the others
        _report("delivering a result")


class _Relay:
    """A receiver that hands every delivery to the result-handler thread:
    for result objects whose delivery runs user code (callbacks, progress
    bars), which must not run on the dispatcher thread."""

    __slots__ = ("_handler", "_target")

    def __init__(self, handler: _ResultHandler, target: _Receiver) -> None:
        self._handler = handler
        self._target = target

    def _deliver(self, index: int, success: bool, value: Any) -> None:
        self._handler.put(self._target, index, success, value)


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
    and ``starmap_async``), as ``multiprocessing.pool.AsyncResult``.

    Light while nobody waits: the ``threading.Event`` that ``wait`` and
    ``get`` block on is made by the first of them that has to block (under
    ``_futures``' module lock, with which delivery marks the result ready),
    and attributes left at their defaults (no callbacks, no value yet) take
    no room.  The ``AsyncResult`` of ``apply_async`` is itself what the
    executor's futures table holds for the call: no Future is made."""

    _callback: Optional[Callable[[Any], object]] = None
    _error_callback: Optional[Callable[[BaseException], object]] = None
    _success: Optional[bool] = None
    _value: Any = None
    _ready = False
    #: made by the first wait that blocks (see the class)
    _event: Optional[threading.Event] = None

    def __init__(
        self,
        callback: Optional[Callable[[_T], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
    ) -> None:
        if callback is not None:
            self._callback = callback
        if error_callback is not None:
            self._error_callback = error_callback

    def ready(self) -> bool:
        """Whether the call has completed."""
        return self._ready

    def successful(self) -> bool:
        """Whether the call completed without raising; ``ValueError`` if it
        is not ready yet."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return bool(self._success)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Waits until the result is ready or ``timeout`` seconds passed."""
        if self._ready:
            return
        event = self._event
        if event is None:
            with _future._LAZY_LOCK:
                event = self._event
                if event is None:
                    event = self._event = threading.Event()
                    if self._ready:
                        event.set()
        event.wait(timeout)

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
        self._set_ready()

    def _set_ready(self) -> None:
        """Marks the result ready and wakes whoever waits."""
        with _future._LAZY_LOCK:
            self._ready = True
            event = self._event
        if event is not None:
            event.set()


class _ApplyResult(AsyncResult[_T]):
    """The ``AsyncResult`` of ``apply_async``: also the entry of its call in
    the futures table (``_futures._Entry``).  Its outcome is delivered on
    the dispatcher thread, or through the pool's result-handler thread
    (``_handler``) when a callback of the user's runs on delivery."""

    _handler: Optional[_ResultHandler] = None

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def set_result(self, value: Any) -> None:
        self._complete(True, value)

    def set_exception(self, exception: BaseException) -> None:
        self._complete(False, exception)

    def _complete(self, success: bool, value: Any) -> None:
        handler = self._handler
        if handler is None:
            self._deliver(0, success, value)
        else:
            handler.put(self, 0, success, value)


class MapResult(AsyncResult[List[_T]]):
    """The result of ``map_async`` / ``starmap_async``: ``get()`` is the list
    of results in input order, or raises the first exception of any call
    (ready once every chunk has finished, as in multiprocessing)."""

    def __init__(
        self,
        length: int,
        chunksize: int,
        callback: Optional[Callable[[List[_T]], object]] = None,
        error_callback: Optional[Callable[[BaseException], object]] = None,
        bar: Any = None,
    ) -> None:
        super().__init__(callback, error_callback)
        self._success = True
        self._value = [None] * length
        self._length = length
        self._chunksize = chunksize
        self._left = -(-length // chunksize)  # chunks
        self._bar = bar
        self._lock = threading.Lock()
        if self._left == 0:  # empty input: ready at once, no callback
            _close_bar(bar)
            self._set_ready()

    def _deliver(self, index: int, success: bool, value: Any) -> None:
        # Chunk index covers items [start, end).  Normally one thread
        # delivers, but a terminate() fails the rest from its own.
        start = index * self._chunksize
        end = min(start + self._chunksize, self._length)
        with self._lock:
            self._left -= 1
            last = self._left == 0
            if success and self._success:
                self._value[start:end] = value
            elif not success and self._success:
                self._success = False
                self._value = value  # only the first exception is kept
        if self._bar is not None:
            _advance(self._bar, end - start)
        if last:
            _close_bar(self._bar)
            if self._success:
                _call_back(self._callback, self._value)
            else:
                _call_back(self._error_callback, self._value)
            self._set_ready()


class IMapIterator(Generic[_T]):
    """The iterator of ``imap`` (results in input order) and
    ``imap_unordered`` (in completion order).  ``next(timeout)`` raises
    ``multiprocessing.TimeoutError`` if nothing arrives in time; a failed
    call raises its exception in its place and iteration then goes on (an
    exception of the input itself ends it).

    It reads its input lazily (see ``Pool.imap``); dropping it (or
    ``close()``) stops the reading and cancels the chunks not yet sent."""

    def __init__(self, feed: _Feed, bar: Any = None) -> None:
        self._feed = feed
        self._lock = threading.Lock()
        self._values: List[Any] = []  # the current chunk's, reversed
        self._bar = bar
        self._finalizer = weakref.finalize(self, _close_feed, feed, bar)

    def __iter__(self) -> IMapIterator[_T]:
        return self

    def next(self, timeout: Optional[float] = None) -> _T:
        """The next result; raises the call's exception in its place,
        ``StopIteration`` at the end, ``multiprocessing.TimeoutError`` when
        nothing arrives within ``timeout`` seconds."""
        with self._lock:
            values = self._values
            if values:
                return cast(_T, values.pop())
            try:
                outcome = self._feed.take(timeout)
            except StopIteration:
                self._finalizer()  # closes the progress bar
                raise
            if outcome is None:
                raise multiprocessing.TimeoutError
            success, value = outcome
            del outcome
            if not success:
                raise value
            if self._bar is not None:
                _advance(self._bar, len(value))
            value.reverse()
            item = value.pop()
            self._values = value
            return cast(_T, item)

    __next__ = next

    def close(self) -> None:
        """Stops reading the input; chunks not yet sent are cancelled and
        iteration ends."""
        self._finalizer()


def _close_feed(feed: _Feed, bar: Any) -> None:
    feed.close()
    _close_bar(bar)


def _length(iterable: Any) -> Optional[int]:
    """len(iterable), or None for an iterable without one."""
    try:
        return len(iterable)
    except Exception:
        return None


def _star_args(args: Any) -> Tuple[Any, ...]:
    try:
        return tuple(args)
    except TypeError:
        raise TypeError(
            f"starmap needs an iterable of argument iterables; "
            f"{type(args).__name__!r} object is not iterable"
        ) from None


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
