"""Futures as arguments, and the per-call path through the result cache:
what ``Executor.submit`` / ``PoolExecutor.submit`` and their ``map`` do
before a call reaches the engine (``_engine._Engine._submit_call``).

Each of those executors owns one ``Graph``; the executor's ``submit`` hands
a call to it only when it has to: with a ``resource_dict`` or a cache, or
when pickling the call failed because futures are among its arguments (a
``Future`` holds a lock and cannot be pickled).  Every other call goes
straight to the engine, as it did before, and pays nothing for the scan.

* Finding futures.  A ``concurrent.futures.Future`` (of any executor, ours
  or not, or made by hand) counts when it is an argument, a keyword
  argument's value, or an item or value of a ``list``, ``tuple`` or
  ``dict`` (exactly those types, not subclasses) at any depth.  Objects of
  other types are not looked into.  A container whose items are all plain
  is passed over in C (``frozenset.issuperset``).
* Waiting without threads.  A call with futures gets a ``_Dependent``
  future at once and a ``_Call`` with a counter: one done-callback per
  distinct input future counts it down, and the callback that reaches zero
  replaces the futures by their results (rebuilding the containers that
  hold them) and sends the call, in whatever thread completed that input
  (an executor's dispatcher, or the thread that called ``set_result``).
  Nothing blocks and no thread is made per call.
* Failures.  An input that failed fails the dependent with the same
  exception object; a cancelled input cancels it; both propagate along a
  chain, since each link is a dependent of the one before.  A call that
  cannot be sent once its inputs are there (an unpicklable result, an
  executor shut down or broken meanwhile) fails with that error.
  ``cancel()`` on a waiting dependent cancels it (it is never sent); on
  one already sent, it cancels the sent call as ``cancel()`` always does.
* Maps.  A lazy map's task whose items cannot be pickled is handed to
  the executor's ``_map_batch_unpicklable`` (the hook of ``_maps._Feed``):
  its futures are waited for in the map's feeder thread and the task is
  pickled again with their results (``resolve_when_done``).  An input in
  memory small enough to be sent at once in the caller's thread is
  scanned first (``needs_feeder``) and given a feeder thread if it holds
  futures.
* Shutdown (``Graph.shutdown``).  New submits raise at once.  Dependents
  still waiting are cancelled with ``cancel_futures=True``; otherwise they
  are sent when their inputs finish, and the engine is closed only after
  the last of them (``wait=True`` waits for that, ``wait=False`` leaves it
  to the thread that sends the last one).
* ``disable_dependencies=True``: a future is pickled as it is, which fails,
  and the ``TypeError`` raised at ``submit`` then says that dependencies are
  disabled.  (A ``Future`` subclass that can be pickled is sent as it is
  on the engine's path: only a call that could not be pickled is looked
  into.)
* The cache (``_cache.ResultCache``) is consulted after the futures are
  resolved, so its key is made of the values; a hit completes the
  dependent without sending anything.
"""

from __future__ import annotations

import threading
import time
from itertools import chain, compress
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import (  # the states Future itself uses
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    PENDING,
)
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
)

from ._cache import ResultCache
from ._checks import check_resource_dict
from ._futures import _AFTER_SHUTDOWN
from ._payload import PLAIN_TYPES

if TYPE_CHECKING:
    from ._engine import _Engine

__all__ = ["Graph", "find_futures", "needs_feeder", "resolve", "resolve_when_done"]

_CONTAINERS = (list, tuple, dict)


_SEQUENCES = frozenset({list, tuple})
_DICTS = frozenset({dict})
#: objects of one level of nesting below which find_futures loops in Python
_FEW = 8
#: levels of nesting looked through in C before the walk that remembers
#: the containers it has seen (a list that contains itself)
_FLAT_LEVELS = 32


def find_futures(*roots: Any) -> List["Future[Any]"]:
    """The distinct futures in ``roots`` (looked into as described in the
    module docstring), in the order first met.  One level of nesting at a
    time, each in C (the set of its types; the items of its lists, tuples
    and dicts, gathered with ``itertools``): a list of 100,000 argument
    tuples of numbers is two levels, a few milliseconds."""
    found: Dict[int, Future[Any]] = {}
    level: Sequence[Any] = roots
    for _ in range(_FLAT_LEVELS):
        if len(level) <= _FEW:
            # a call's arguments, most often: a plain loop costs less
            # than setting up the C helpers below
            few: List[Any] = []
            for obj in level:
                kind = type(obj)
                if kind in PLAIN_TYPES:
                    continue
                if kind is list or kind is tuple:
                    few.extend(obj)
                elif kind is dict:
                    few.extend(obj.values())
                elif isinstance(obj, Future):
                    found.setdefault(id(obj), obj)
            if not few:
                break
            level = few
            continue
        kinds = set(map(type, level))
        if kinds <= PLAIN_TYPES:
            break
        if any(issubclass(kind, Future) for kind in kinds):
            for obj in level:
                if isinstance(obj, Future):
                    found.setdefault(id(obj), obj)
        types = list(map(type, level)) if not kinds <= _SEQUENCES else None
        below: List[Any] = []
        if kinds & _SEQUENCES:
            sequences = level if types is None else compress(level, map(_SEQUENCES.__contains__, types))
            below.extend(chain.from_iterable(sequences))
        if dict in kinds:
            dicts = compress(level, map(_DICTS.__contains__, types or ()))
            below.extend(chain.from_iterable(map(dict.values, dicts)))
        level = below
    else:
        _find_remembering(level, found)
    return list(found.values())


def _find_remembering(level: Sequence[Any], found: Dict[int, "Future[Any]"]) -> None:
    """find_futures below ``_FLAT_LEVELS``: a walk that looks into each
    container once, so that a cycle ends."""
    seen = set()
    stack = list(level)
    while stack:
        obj = stack.pop()
        kind = type(obj)
        if kind in PLAIN_TYPES:
            continue
        if kind is list or kind is tuple or kind is dict:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            stack.extend(obj.values() if kind is dict else obj)
        elif isinstance(obj, Future):
            found.setdefault(id(obj), obj)


def resolve(obj: Any, memo: Optional[Dict[int, Any]] = None) -> Any:
    """``obj`` with every future in it replaced by its result (which must be
    done): containers that hold a future are rebuilt, the others are
    returned as they are.  Raises the future's exception, or
    ``CancelledError``."""
    if memo is None:
        memo = {}
    kind = type(obj)
    if kind in PLAIN_TYPES:
        return obj
    if isinstance(obj, Future):
        return obj.result(timeout=0)
    if kind is not list and kind is not tuple and kind is not dict:
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    if not find_futures(obj):
        memo[key] = obj
        return obj
    if kind is dict:
        new_dict: Dict[Any, Any] = {}
        memo[key] = new_dict
        for k, v in obj.items():
            new_dict[k] = resolve(v, memo)
        return new_dict
    if kind is list:
        new_list: List[Any] = []
        memo[key] = new_list
        new_list.extend(resolve(v, memo) for v in obj)
        return new_list
    value = tuple(resolve(v, memo) for v in obj)
    memo[key] = value
    return value


def resolve_when_done(items: Any) -> Any:
    """``items`` with its futures replaced by their results, waiting for
    them (in a lazy map's feeder thread).  Raises the exception of the
    first one that failed, or ``CancelledError``."""
    for future in find_futures(items):
        future.exception()  # waits; raises CancelledError for a cancelled one
    return resolve(items)


def needs_feeder(iterables: Tuple[Iterable[Any], ...]) -> bool:
    """Whether a lazy map's input in memory holds futures.  Such an input
    is read by a feeder thread like any other (which waits for them, see
    ``resolve_when_done``), never at once in the caller's thread; only
    inputs small enough to be sent at once are asked (ranges never)."""
    return bool(find_futures(*(i for i in iterables if type(i) is not range)))


class _Dependent(Future[Any]):
    """The future ``submit`` returns for a call that waits for its inputs
    or goes through the cache.  It completes with the outcome of the call
    sent for it (``_pmp_follow``), or directly (a cache hit, a failed or
    cancelled input).  ``cancel()`` before the call is sent cancels it for
    good; after, it is the sent call's ``cancel()``."""

    def __init__(self) -> None:
        super().__init__()
        # reentrant: cancelling runs done-callbacks, which may cancel again
        self._pmp_guard = threading.RLock()
        self._pmp_inner: Optional[Future[Any]] = None

    def cancel(self) -> bool:
        with self._pmp_guard:
            inner = self._pmp_inner
            if inner is None:
                return self._pmp_cancelled()
        return inner.cancel()

    def _pmp_cancelled(self) -> bool:
        """Cancels it unless it is done (True if it is cancelled now), and
        moves it on to CANCELLED_AND_NOTIFIED at once, as a cancelled work
        item that an executor dropped: ``concurrent.futures.wait`` and
        ``as_completed`` count a cancelled future as finished only in that
        state.  Its done-callbacks run after."""
        future: Any = self  # Future's private state, which typeshed leaves out
        with future._condition:
            if future._state != PENDING:
                return bool(future._state in (CANCELLED, CANCELLED_AND_NOTIFIED))
            future._state = CANCELLED_AND_NOTIFIED
            for waiter in future._waiters:
                waiter.add_cancelled(self)
            future._condition.notify_all()
        future._invoke_callbacks()
        return True

    def _pmp_settle(self, value: Any = None, error: Optional[BaseException] = None) -> None:
        """Completes it unless it is done already."""
        try:
            if error is not None:
                self.set_exception(error)
            else:
                self.set_result(value)
        except InvalidStateError:
            pass

    def _pmp_follow(
        self,
        send: Callable[[], "Future[Any]"],
        before: Optional[Callable[["Future[Any]"], None]] = None,
    ) -> bool:
        """Sends the call (``send()``, whose exceptions propagate) unless
        this future is done already (cancelled); it then completes as the
        sent call's future does, after ``before(that future)``."""
        with self._pmp_guard:
            if self.done():
                return False
            inner = send()
            self._pmp_inner = inner

        def copy(future: "Future[Any]") -> None:
            if before is not None:
                before(future)
            if future.cancelled():
                self._pmp_cancelled()
                return
            error = future.exception()
            self._pmp_settle(None if error is not None else future.result(), error)

        inner.add_done_callback(copy)
        return True


class _Call:
    """A call waiting for its input futures: see the module docstring."""

    __slots__ = ("graph", "owner", "fn", "args", "kwargs", "options", "outer", "left")

    def __init__(
        self,
        graph: "Graph",
        owner: "_Engine",
        fn: Callable[..., Any],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        options: Dict[str, Any],
        outer: _Dependent,
    ) -> None:
        self.graph = graph
        self.owner: Optional[_Engine] = owner  # alive while the call waits
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.options = options
        self.outer = outer
        self.left = 0

    def arm(self, inputs: Sequence["Future[Any]"]) -> None:
        # One more than the inputs: a callback of an input already done runs
        # in add_done_callback, and must not send the call before every
        # callback is in place.
        self.left = len(inputs) + 1
        for future in inputs:
            future.add_done_callback(self.input_done)
        self._count_down()

    def input_done(self, future: "Future[Any]") -> None:
        outer = self.outer
        if future.cancelled():
            outer._pmp_cancelled()
        else:
            error = future.exception()
            if error is not None:
                outer._pmp_settle(error=error)
        if outer.done():
            self._finished()
            return
        self._count_down()

    def _count_down(self) -> None:
        with self.graph.lock:
            self.left -= 1
            ready = self.left == 0
        if ready:
            self._run()

    def _run(self) -> None:
        outer, owner = self.outer, self.owner
        if outer.done() or owner is None:
            self._finished()
            return
        try:
            args = resolve(self.args)
            kwargs = resolve(self.kwargs)
            self.graph.start(owner, self.fn, args, kwargs, self.options, outer)
        except BaseException as exc:  # the call's error, never the input's thread's
            outer._pmp_settle(error=exc)
        finally:
            self._finished()

    def _finished(self) -> None:
        """Off the graph's waiting set; its references go."""
        self.owner = None
        self.args = ()
        self.kwargs = {}
        self.graph.drop(self)


class Graph:
    """One executor's dependencies and cache (see the module docstring).  It
    refers to no executor: a waiting ``_Call`` holds its own."""

    def __init__(
        self, enabled: bool, cache: Optional[ResultCache], max_cores: Optional[int] = None
    ) -> None:
        self.enabled = enabled
        self.cache = cache
        #: a FlexExecutor's: its calls take cores, cwd and threads_per_core
        #: in their resource_dict, and are sent with them (_send)
        self.max_cores = max_cores
        #: submit may skip the graph for plain arguments
        self.direct = cache is None
        self.closed = False
        self.lock = threading.Lock()
        self._idle = threading.Condition(self.lock)
        self._waiting: Dict[int, _Call] = {}
        self._on_idle: Optional[Callable[[], None]] = None

    # -- submitting

    def has_futures(
        self, error: BaseException, args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> bool:
        """After ``error``, a failure to pickle a call sent straight to the
        engine: whether futures among its arguments are the cause, and the
        call is to go through ``submit`` here.  With dependencies disabled,
        raises the ``TypeError`` that says so instead (``error`` as its
        cause)."""
        if not find_futures(args, kwargs):
            return False
        if not self.enabled:
            raise _disabled_error() from error
        return True

    def submit(
        self,
        owner: "_Engine",
        fn: Callable[..., Any],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
        resource_dict: Optional[Dict[str, Any]],
    ) -> "Future[Any]":
        """``owner.submit``'s path for a call that is not plain: waits for its
        futures, goes through the cache, or is sent at once."""
        options = check_resource_dict(resource_dict, self.max_cores)
        if self.closed:
            raise RuntimeError(_AFTER_SHUTDOWN)
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        inputs = find_futures(args, kwargs) if self.enabled else []
        if not inputs:
            try:
                return self.start(owner, fn, args, kwargs, options)
            except Exception as exc:
                if not self.enabled and find_futures(args, kwargs):
                    raise _disabled_error() from exc
                raise
        outer = _Dependent()
        call = _Call(self, owner, fn, args, kwargs, options, outer)
        with self.lock:
            if self.closed:
                raise RuntimeError(_AFTER_SHUTDOWN)
            self._waiting[id(call)] = call
        outer.add_done_callback(lambda _: call._finished() if call.owner is not None else None)
        call.arm(inputs)
        return outer

    def start(
        self,
        owner: "_Engine",
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Dict[str, Any],
        options: Dict[str, Any],
        outer: Optional[_Dependent] = None,
    ) -> "Future[Any]":
        """Sends a call whose arguments hold no futures (or serves it from
        the cache).  Without ``outer`` it returns the call's future and
        raises what sending raises; with ``outer`` (a dependent) that future
        completes as the call does."""
        cache = self.cache
        if cache is None:
            if outer is None:
                return self._send(owner, fn, args, kwargs, options)
            outer._pmp_follow(lambda: self._send(owner, fn, args, kwargs, options))
            return outer
        key = cache.key(fn, args, kwargs, options.get("cache_key"))
        hit = cache.load(key)
        if outer is None:
            outer = _Dependent()
        if hit is not None:
            outer._pmp_settle(hit[0])
            return outer
        start = time.monotonic()
        store_outcome = cache.store_outcome

        def store(future: "Future[Any]") -> None:
            store_outcome(key, fn, args, kwargs, start, future)

        outer._pmp_follow(lambda: self._send(owner, fn, args, kwargs, options), store)
        return outer

    def _send(
        self,
        owner: "_Engine",
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Dict[str, Any],
        options: Dict[str, Any],
    ) -> "Future[Any]":
        """The call to the engine: with its resources on a FlexExecutor
        (the cache's key never includes them)."""
        if self.max_cores is None:
            return owner._submit_call(fn, args, kwargs)
        flex: Any = owner
        future: Future[Any] = flex._submit_flex(fn, args, kwargs, options)
        return future

    # -- the waiting calls

    def drop(self, call: _Call) -> None:
        """call no longer waits (sent, failed or cancelled)."""
        on_idle = None
        with self.lock:
            if self._waiting.pop(id(call), None) is None:
                return
            if not self._waiting:
                self._idle.notify_all()
                on_idle, self._on_idle = self._on_idle, None
        if on_idle is not None:
            on_idle()

    def waiting(self) -> int:
        """How many calls wait for their inputs."""
        with self.lock:
            return len(self._waiting)

    def cancel_waiting(self) -> None:
        """Cancels every call still waiting for its inputs."""
        with self.lock:
            calls = list(self._waiting.values())
        for call in calls:
            call.outer._pmp_cancelled()

    def shutdown(self, cancel: bool, wait: bool, close: Callable[[], None]) -> None:
        """No more submits.  With ``cancel`` the waiting calls are cancelled;
        the others are sent as their inputs finish.  ``close`` (the
        engine's close) runs now when none waits, after the last has been
        sent with ``wait`` (this blocks until then), or else from the thread
        that sends the last one."""
        with self.lock:
            self.closed = True
            self.direct = False
        if cancel:
            self.cancel_waiting()
        with self.lock:
            if self._waiting and not wait:
                self._on_idle = close
                return
            while self._waiting:
                self._idle.wait()
        close()


def _disabled_error() -> TypeError:
    return TypeError(
        "an argument is a Future and dependencies are disabled "
        "(disable_dependencies=True): it is pickled as it is, and a Future cannot "
        "be pickled; pass its result(), or leave dependencies enabled so that the "
        "call waits for it"
    )
