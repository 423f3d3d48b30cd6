"""The result cache: ``cache_directory=`` on ``Executor`` and ``PoolExecutor``,
and ``get_cache_data``.

A call is looked up here, in the caller, after its future arguments were
resolved (``_dependencies``) and before anything is sent: a hit completes
its future at once and the call never reaches a rank; a miss is sent as
usual and its result, once it is back, is written here before the future
the user holds completes (so ``result()`` followed by the same call is a
hit).  Nothing of this runs in the workers.

* The key.  Without a ``cache_key`` it is the SHA-256 of the call's pickle
  as the executor makes it (``_serialize.dumps_call``: the function's
  snapshot pickle, reused from ``_snapshot``, then the arguments, keyword
  arguments sorted by name) together with its out-of-band buffers (large
  arrays).  Two calls are the same when those bytes are: the same function
  (code, defaults, closure and the globals it uses, as pickled) and equal
  arguments that pickle alike.  What does not count: the executor, its
  ranks and workers, ``init_function`` and what it fills in, ``cwd`` and
  the other resources.  A ``cache_key`` in the call's ``resource_dict``
  names the entry instead (``<cache_key>.pmpc``), whatever the function
  and arguments are.
* The entry.  One file per call, ``<key>.pmpc``: a magic word, the SHA-256
  of the body and the body, a cloudpickle of a dict (function name,
  arguments, result, run time).  It is written atomically: to a temporary
  file in the same directory (``.tmp-*``, never read), flushed and
  ``fsync``-ed, then ``os.replace``-d into place; a process killed at any
  point leaves either no entry or a whole one.  A file that is truncated,
  corrupt or cannot be unpickled is a miss, logged at debug level on the
  ``pympipool`` logger.  Errors are not cached.
* Cost: a lookup is one extra pickle of the call, a hash and one
  ``open``; a miss adds one file write, in the thread that completes the
  call (the dispatcher).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
import time
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import cloudpickle  # type: ignore[import]  # ships no type information

from ._serialize import dumps_call

__all__ = ["ResultCache", "get_cache_data"]

_LOGGER = logging.getLogger("pympipool")
#: the first bytes of every entry (format version 1)
MAGIC = b"PMPCACH1"
SUFFIX = ".pmpc"
_TEMP_PREFIX = ".tmp-"
_DIGEST = 32


def _function_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}" if module else str(name)


class ResultCache:
    """The entries of one directory (made if missing).  Thread-safe: every
    entry is written under a name of its own and moved into place."""

    def __init__(self, directory: Union[str, "os.PathLike[str]"]) -> None:
        try:
            path = os.fspath(directory)
        except TypeError:
            raise TypeError(
                f"cache_directory must be a path or None, not {type(directory).__name__}"
            ) from None
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        os.makedirs(path, exist_ok=True)
        self.directory = os.path.abspath(path)

    def key(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Dict[str, Any],
        cache_key: Optional[str] = None,
    ) -> str:
        """The entry's name: ``cache_key``, or the hex SHA-256 of the call's
        pickle and buffers.  Raises what pickling raises."""
        if cache_key is not None:
            return cache_key
        payload, buffers = dumps_call(fn, tuple(args), dict(sorted(kwargs.items())))
        digest = hashlib.sha256(payload)
        for buffer in buffers:
            digest.update(len(buffer).to_bytes(8, "little"))
            digest.update(buffer)
        return digest.hexdigest()

    def path(self, key: str) -> str:
        return os.path.join(self.directory, key + SUFFIX)

    def load(self, key: str) -> Optional[Tuple[Any]]:
        """``(result,)`` of the entry, or None for a miss (no entry, or one
        that cannot be read: logged at debug level)."""
        entry = read_entry(self.path(key))
        if entry is None:
            return None
        return (entry["result"],)

    def store(
        self,
        key: str,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Dict[str, Any],
        result: Any,
        run_time: float,
    ) -> None:
        """Writes the entry atomically.  A failure (a full disk, a result
        that cannot be pickled) is logged and leaves no entry: the call's
        own result is not affected."""
        record = {
            "function": _function_name(fn),
            "args": tuple(args),
            "kwargs": dict(kwargs),
            "result": result,
            "run_time": run_time,
            "key": key,
        }
        target = self.path(key)
        temp: Optional[str] = None
        try:
            body = cloudpickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
            fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.directory)
            with os.fdopen(fd, "wb") as out:
                out.write(MAGIC + hashlib.sha256(body).digest())
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
            temp = None
        except Exception:
            _LOGGER.warning("pympipool: could not write the cache entry %s", target, exc_info=True)
        finally:
            if temp is not None:
                try:
                    os.unlink(temp)
                except OSError:
                    pass

    def store_outcome(
        self,
        key: str,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Dict[str, Any],
        start: float,
        future: "Future[Any]",
    ) -> None:
        """Writes the entry of a call sent at ``start`` (``time.monotonic``)
        whose future is done, if it succeeded (errors are not cached)."""
        if not future.cancelled() and future.exception() is None:
            self.store(key, fn, args, kwargs, future.result(), time.monotonic() - start)


def read_entry(path: str) -> Optional[Dict[str, Any]]:
    """The record of one entry file, or None (logged at debug level) when
    it is missing, truncated, corrupt or cannot be unpickled."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        _LOGGER.debug("pympipool: cache entry %s cannot be read (%s): a miss", path, exc)
        return None
    head = len(MAGIC) + _DIGEST
    if len(data) < head or not data.startswith(MAGIC):
        _LOGGER.debug("pympipool: cache entry %s is truncated or not an entry: a miss", path)
        return None
    body = data[head:]
    if hashlib.sha256(body).digest() != data[len(MAGIC) : head]:
        _LOGGER.debug("pympipool: cache entry %s is truncated or corrupt (checksum): a miss", path)
        return None
    try:
        record = pickle.loads(body)
    except Exception as exc:
        _LOGGER.debug("pympipool: cache entry %s cannot be unpickled (%r): a miss", path, exc)
        return None
    if not isinstance(record, dict) or "result" not in record:
        _LOGGER.debug("pympipool: cache entry %s holds no result: a miss", path)
        return None
    return record


def get_cache_data(directory: Union[str, "os.PathLike[str]"]) -> List[Dict[str, Any]]:
    """The entries of a cache directory (``cache_directory=`` of ``Executor``
    or ``PoolExecutor``), sorted by file name: one dict per entry with
    ``function`` (the function's module and qualified name), ``args`` (a
    tuple), ``kwargs`` (a dict), ``result``, ``run_time`` (seconds from
    sending the call to its result, as the caller measured it: its wait
    in the queue included), ``key``
    (the hash or ``cache_key``) and ``file`` (the entry's path).  Errors are
    never cached, so every entry has a result.  Entries that cannot be read
    (truncated, corrupt) and temporary files are left out; a missing
    directory has no entries."""
    path = os.fspath(directory)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    try:
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    entries = []
    for name in names:
        if not name.endswith(SUFFIX) or name.startswith("."):
            continue
        file = os.path.join(os.path.abspath(path), name)
        record = read_entry(file)
        if record is None:
            continue
        record["file"] = file
        entries.append(record)
    return entries
