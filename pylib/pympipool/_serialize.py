"""Payload conventions of the frontend side (docs/protocol.md, "Payloads").

Encoding: calls are pickled with cloudpickle, protocol 5.  Contiguous buffers
of at least ``OOB_THRESHOLD`` bytes (numpy arrays, bytearrays, ...) are kept
out of band: they travel as their own frames and are neither copied into the
pickle nor, by ``_core.submit``, into the message.

The function of a ``TASK`` is pickled on its own, at every submit, and its
pickle (``bytes``) takes the function's place in the call tuple.  Pickling at
every submit keeps cloudpickle's semantics (a by-value function carries a
snapshot of the globals it uses, taken now); sending the bytes lets a worker
recognise a snapshot it has already unpickled and reuse that function (and
its signature) instead of rebuilding it: identical bytes, identical snapshot.
Each thread reuses one ``cloudpickle.Pickler`` (``_PicklerSlot``, a
``_payload.ReusedPickler``): building one costs about as much as pickling a
small call; and it skips cloudpickle's per-object check for cloudpickle's own
helper functions (``_Pickler``).  The conventions the workers share (flags,
the out-of-band threshold, plain types, the error record) are in
``_payload``, which the runtime embeds.

Decoding: a ``RESULT`` is unpickled from the received frames without copying
(out-of-band buffers are the frames themselves, writable, or with ``SHM``
views of the leader's shared segments, ``_shm``); a ``RESULT`` with
``PER_RANK`` holds a rank table and is decoded into the list of every rank's
value.  An ``ERROR`` becomes the original exception (same class) with a
``RemoteTraceback`` as ``__cause__``; if the exception cannot be rebuilt, a
``RuntimeError`` named after its type.  A ``SystemExit`` (the task called
``sys.exit(n)``) becomes a ``TaskExitError``, a ``SystemExit`` with the same
``code`` that also names the rank and host: ``result()`` raises it as
``ProcessPoolExecutor`` raises the ``SystemExit`` itself.

Snapshots and zero copy.  A function's own pickle (``TASK`` function slot,
``DEFINE``, ``INIT``) is always made in band: the bytes are a complete
snapshot of the function and the globals it uses, taken at submit, even when
it captured a large array (which is then copied into the pickle).  The
arguments of a call keep their large buffers out of band, without a copy:
the frontend reads them until the call's future is done, unless the
executor was made with ``zero_copy=False`` (docs/interfaces.md, "Large
arrays").

Pickling by value.  cloudpickle pickles functions *by reference* (module name
plus qualified name) whenever their module can be imported, which fails on the
workers when the module is only importable here: a test module that pytest put
on ``sys.path``, a sibling module of a script, a file a notebook imported after
the executor started.  So before pickling a call, the function's module is
registered with ``cloudpickle.register_pickle_by_value`` unless one of these
holds (``should_pickle_by_value`` implements exactly this rule):

* it is ``__main__`` (cloudpickle already pickles that by value);
* it is built in or frozen (no ``__file__``);
* it belongs to pympipool or cloudpickle themselves;
* its file lies in the standard library (``sysconfig`` paths ``stdlib`` and
  ``platstdlib``) or in any directory named ``site-packages`` or
  ``dist-packages`` (installed packages, which the workers import like we do).

Everything else (user code outside installed locations) is sent by value,
together with the classes and functions of that module it uses.
"""

from __future__ import annotations

import os
import pickle
import sys
import sysconfig
import threading
import types
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Set, Tuple, Union

import cloudpickle  # type: ignore[import]  # ships no type information

from . import _core, _shm
from ._payload import (
    ERROR_TAG,
    ERROR_VERSION,
    PICKLE_PROTOCOL,
    PLAIN_TYPES,
    ReusedPickler,
)
from ._snapshot import cached_pickle


_OWN_PACKAGES = ("pympipool", "cloudpickle")
#: The mappings of the ranks' result segments, one set for the process
#: (keyed by the owner's pid; an executor forgets its ranks' at its end).
SHM_RESULTS = _shm.Receiver(_core, count_self=False)
_INSTALL_DIR_NAMES = ("site-packages", "dist-packages")


class RemoteTraceback(Exception):
    """The traceback of an exception raised on a worker rank.

    Attached as ``__cause__`` of the re-raised exception, so that it is
    printed above the local traceback.  Its text starts with
    ``"Rank {rank} of {size} on {host}:"``.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class TaskExitError(SystemExit):
    """A task called ``sys.exit(n)`` (or raised ``SystemExit``) on a worker.

    ``result()`` raises it where the task raised ``SystemExit``, as
    ``ProcessPoolExecutor`` and ``mpi4py.futures`` do: it *is* a
    ``SystemExit`` (``except SystemExit`` catches it) with the task's
    ``code`` (``sys.exit(3)`` gives 3, ``sys.exit()`` gives None), so left
    uncaught it ends the caller's program with that status.  It also says
    where: ``rank`` and ``host``, and its text reads "the task called
    sys.exit(3) on rank 0 (host h)".  The worker caught the exit and keeps
    serving.
    """

    def __init__(
        self, message: str, code: Any = None, rank: int = -1, host: str = ""
    ) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.rank = rank
        self.host = host

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        return (type(self), (self.message, self.code, self.rank, self.host))


def _task_exit(exception: Any, message: str, rank: Any, host: Any) -> TaskExitError:
    """The TaskExitError for a SystemExit that came back from a worker."""
    if isinstance(exception, SystemExit):
        code = exception.code
    else:  # not unpickled: the code is only in the message
        code = message if message else None
        try:
            code = int(message)
        except (TypeError, ValueError):
            pass
    return TaskExitError(
        f"the task called sys.exit({'' if code is None else repr(code)}) on rank {rank} "
        f"(host {host})",
        code,
        rank,
        host,
    )


def _stdlib_dirs() -> List[str]:
    dirs = []
    for key in ("stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.append(os.path.realpath(path))
    return dirs


_STDLIB_DIRS = _stdlib_dirs()


def should_pickle_by_value(module_name: str | None) -> bool:
    """Whether functions of module ``module_name`` must be pickled by value.

    See the module docstring for the rule.
    """
    if not module_name or module_name == "__main__":
        return False
    if module_name.split(".", 1)[0] in _OWN_PACKAGES:
        return False
    module = sys.modules.get(module_name)
    if module is None:
        return False
    filename = getattr(module, "__file__", None)
    if not filename:
        return False
    path = os.path.realpath(filename)
    parts = path.split(os.sep)
    if any(name in parts for name in _INSTALL_DIR_NAMES):
        return False
    for directory in _STDLIB_DIRS:
        if path == directory or path.startswith(directory + os.sep):
            return False
    return True


_registered: Set[str] = set()


def _register_module_of(obj: Any) -> None:
    module_name = getattr(obj, "__module__", None)
    if not isinstance(module_name, str) or module_name in _registered:
        return
    if should_pickle_by_value(module_name):
        cloudpickle.register_pickle_by_value(sys.modules[module_name])
        _registered.add(module_name)


def _cloudpickle_helpers() -> FrozenSet[int]:
    """ids of cloudpickle's own module-level functions (``_make_function``,
    ``_function_setstate``, ``_builtin_type``, ...): the reconstructors its
    reductions name, several in every function it pickles by value.  They
    are importable, so cloudpickle pickles them by reference, but only after
    asking, in Python, whether they are: ``_Pickler`` answers at once."""
    ids: Set[int] = set()
    for name in ("cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast"):
        module = sys.modules.get(name)
        for value in vars(module).values() if module is not None else ():
            if not isinstance(value, types.FunctionType):
                continue
            home = sys.modules.get(value.__module__)
            if home is not None and getattr(home, value.__qualname__, None) is value:
                ids.add(id(value))
    return frozenset(ids)


_CLOUDPICKLE_HELPERS = _cloudpickle_helpers()
_base_reducer_override: Any = getattr(cloudpickle.Pickler, "reducer_override", None)


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle is untyped
    """cloudpickle's Pickler, minus the detour for its own helpers; the
    output is byte for byte that of ``cloudpickle.dumps``."""

    if _base_reducer_override is not None:

        def reducer_override(self, obj: Any) -> Any:
            if id(obj) in _CLOUDPICKLE_HELPERS:
                return NotImplemented  # pickled by reference, by name
            return _base_reducer_override(self, obj)


class _PicklerSlot(threading.local):
    """One reused pickler per thread (``_payload.ReusedPickler`` of the
    ``_Pickler`` above): it keeps large buffers out of band (calls), unless
    ``in_band`` is asked for the dump (function snapshots)."""

    def __init__(self) -> None:
        self.reused = ReusedPickler(_Pickler)


_slot = _PicklerSlot()


def _dumps(obj: Any, in_band: bool = False) -> Tuple[bytes, List[memoryview]]:
    """cloudpickle.dumps(obj, protocol 5) with large contiguous buffers out
    of band, or every buffer in band with ``in_band``: (payload, buffers)."""
    return _slot.reused.dumps(obj, in_band)


def _dump_in_band(fn: Callable[..., Any]) -> bytes:
    return _dumps(fn, in_band=True)[0]


def _dumps_snapshot(fn: Callable[..., Any]) -> Tuple[bytes, List[memoryview]]:
    """A function's pickle, in band: the bytes alone are the whole snapshot
    of fn and the globals it uses (a captured array is copied into them), so
    a change made after this call never reaches the workers, and the workers
    can cache the function by these bytes.  Made once for as long as it
    cannot differ (``_snapshot.cached_pickle``)."""
    return cached_pickle(fn, _dump_in_band), []




def dumps_call(
    fn: Callable[..., Any], args: Sequence[Any], kwargs: Dict[str, Any]
) -> Tuple[bytes, List[memoryview]]:
    """Pickles a ``TASK``: ``(fn_bytes, args, kwargs)`` with ``fn_bytes`` the
    in-band pickle of fn alone (``_dumps_snapshot``); the payload and the
    out-of-band buffers of the arguments.  fn's pickle is made again
    unless nothing it depends on can have changed, so a changed global it
    refers to is always seen.  Arguments that are all numbers, strings,
    bytes or None need nothing from cloudpickle: the C pickler writes the
    same bytes three times faster.  Raises whatever pickle raises for an
    unpicklable function or argument."""
    _register_module_of(fn)
    fn_bytes, _ = _dumps_snapshot(fn)
    return _dumps_args(fn_bytes, args, kwargs)


def _dumps_args(
    slot: Union[int, bytes], args: Sequence[Any], kwargs: Dict[str, Any]
) -> Tuple[bytes, List[memoryview]]:
    """The payload ``(slot, args, kwargs)``: by the C pickler when every
    argument is plain (``PLAIN_TYPES``), else by cloudpickle."""
    if (
        type(args) is tuple
        and PLAIN_TYPES.issuperset(map(type, args))
        and (not kwargs or PLAIN_TYPES.issuperset(map(type, kwargs.values())))
    ):
        return pickle.dumps((slot, args, dict(kwargs)), PICKLE_PROTOCOL), []
    return _dumps((slot, tuple(args), dict(kwargs)))


def dumps_init(fn: Callable[..., Any]) -> Tuple[bytes, List[memoryview]]:
    """Pickles an ``init_function`` for an ``INIT`` (a snapshot, in band)."""
    _register_module_of(fn)
    return _dumps_snapshot(fn)


def dumps_function(fn: Callable[..., Any]) -> Tuple[bytes, List[memoryview]]:
    """Pickles the function of a ``DEFINE`` (kept by key on the workers; a
    snapshot, in band)."""
    _register_module_of(fn)
    return _dumps_snapshot(fn)


def dumps_keyed(key: Union[int, bytes], *call: Any) -> Tuple[bytes, List[memoryview]]:
    """Pickles a task of a map, whose function is either kept by the key
    of a ``DEFINE`` (``key`` an int, flag ``FN_KEY``) or carried as its
    pickle (``key`` the bytes of ``dumps_function``, as in a ``TASK``):
    ``dumps_keyed(key, args, kwargs)`` gives ``(key, args, kwargs)``,
    ``dumps_keyed(key, calls)`` gives ``(key, calls)`` with calls a list
    (flag ``CHUNK``): of ``(args, kwargs)`` pairs, each a tuple and a dict
    (the pairs may share one kwargs dict: the worker never changes it);
    with ``MAP`` of plain items, each one call's only argument; with
    ``STARMAP`` of argument tuples.  A map's items are pickled as they are,
    one list per chunk, as ``multiprocessing`` does."""
    if len(call) == 2:
        args, kwargs = call
        return _dumps_args(key, args, kwargs)
    (calls,) = call  # the list itself: no copy of a long map
    if type(calls) is range or (
        type(calls) is list and PLAIN_TYPES.issuperset(map(type, calls))
    ):
        return pickle.dumps((key, calls), PICKLE_PROTOCOL), []
    return _dumps((key, calls))


def loads_message(frames: Sequence[Any]) -> Any:
    """Unpickles a message of one pickle: ``frames[0]``, with the other
    frames as its out-of-band buffers.  Frames are ``_core.Frame`` objects or
    anything else with the buffer protocol (typed ``Any``: type checkers
    without PEP 688 do not know ``Frame`` as a buffer)."""
    return pickle.loads(frames[0], buffers=frames[1:])


def loads_result(flags: int, frames: Sequence[Any], per_rank_flag: int) -> Any:
    """Decodes a ``RESULT``: the value, or the list of every rank's value when
    ``flags`` has the per-rank flag."""
    if not frames:
        raise ValueError("result message without payload")
    if flags & _core.FLAG_SHM:  # the leader's large buffers are in its segments
        return pickle.loads(frames[0], buffers=SHM_RESULTS.buffers(frames))
    if not flags & per_rank_flag:
        return pickle.loads(frames[0], buffers=frames[1:])
    # the C decoder checks the table against the frames that arrived
    counts = _core.rank_table(frames[0], len(frames))
    results = []
    position = 1
    for count in counts:
        oob = frames[position + 1 : position + 1 + count]
        results.append(pickle.loads(frames[position], buffers=oob))
        position += 1 + count
    return results


def drop_result(flags: int, frames: Sequence[Any]) -> None:
    """A ``RESULT`` nobody waits for: with ``SHM``, its segments are let go
    (made into views that end at once), so that the leader reuses them."""
    if flags & _core.FLAG_SHM:
        try:
            SHM_RESULTS.buffers(frames)
        except (OSError, ValueError):
            pass  # not mapped: nothing to let go here


def loads_error(frames: Sequence[Any], where: Optional[str] = None) -> BaseException:
    """Decodes an ``ERROR`` into the exception to raise from ``result()``;
    its cause's first line says where it was raised: ``Rank r of n on
    host:``, or ``where`` followed by the host (``SocketInterface``'s peer)."""
    try:
        record = pickle.loads(frames[0])
        tag, version, exc_bytes, type_name, message, tb_text, rank, size, host = record
        if tag != ERROR_TAG or version != ERROR_VERSION:
            raise ValueError(f"unknown error record {tag!r} version {version!r}")
    except BaseException as exc:  # a malformed record must not kill the dispatcher
        return RuntimeError(f"pympipool: cannot decode the error of a task: {exc!r}")
    exception = None
    if exc_bytes is not None:
        try:
            exception = pickle.loads(exc_bytes)
        except BaseException:  # even SystemExit from a hostile __reduce__
            exception = None
    if isinstance(exception, SystemExit) or type_name == "SystemExit":
        # Re-raised as it is, it would end the caller's program.
        exception = _task_exit(exception, message, rank, host)
    elif not isinstance(exception, BaseException):
        exception = RuntimeError(f"{type_name}: {message}")
    header = f"Rank {rank} of {size} on {host}:" if where is None else f"{where} on {host}:"
    exception.__cause__ = RemoteTraceback(f"{header}\n{tb_text}")
    return exception
