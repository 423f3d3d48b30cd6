"""The payload conventions the caller and the workers share (docs/protocol.md,
"Payloads"): the flags and the out-of-band threshold of the wire, the
pickler that is reused for every message, the arguments that need nothing
from cloudpickle, and the error record.

This one module is used on both sides: by the package (``_serialize``,
``_socket``) and, embedded into the runtime as ``_pympipool_payload``
(runtime/CMakeLists.txt), by the worker (runtime/pmp_worker.py).  The
numbers come from the C definitions in protocol/pmp_protocol.h, through
the native module of the side it runs on (``_pympipool_runtime`` in a rank,
``pympipool._core`` in the caller; pylib/_pmp_wire_py.c adds them to both),
so nothing here can drift from the C code.  It imports nothing of the
package but the native module, and that only in the caller.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, List, Optional, Tuple

import cloudpickle  # type: ignore[import]  # ships no type information

try:  # in a rank of the runtime
    import _pympipool_runtime as _native  # type: ignore[import]
except ImportError:  # in the caller
    from pympipool import _core as _native

PICKLE_PROTOCOL = 5
#: Contiguous buffers of at least this many bytes travel out of band.
OOB_THRESHOLD: int = _native.OOB_THRESHOLD
#: Task flags (TASK, INIT) and the result flag of a rank table.
FLAG_ALL_RANKS: int = _native.FLAG_ALL_RANKS
FLAG_FN_KEY: int = _native.FLAG_FN_KEY
FLAG_CHUNK: int = _native.FLAG_CHUNK
FLAG_MAP: int = _native.FLAG_MAP
FLAG_STARMAP: int = _native.FLAG_STARMAP
FLAG_CALL_COMM: int = _native.FLAG_CALL_COMM
FLAG_PER_RANK: int = _native.FLAG_PER_RANK

#: Types whose pickle is the same from ``pickle`` and from cloudpickle, and
#: never has an out-of-band buffer: arguments, a map's items and results of
#: only these types are pickled by the C pickler alone, three times faster.
PLAIN_TYPES = frozenset({int, float, complex, bool, str, bytes, type(None)})

#: The ERROR payload: a pickled tuple (ERROR_TAG, ERROR_VERSION, the
#: exception's cloudpickle or None, its type's name, its message, the
#: traceback's text, rank, size, host).
ERROR_TAG = "pympipool-error"
ERROR_VERSION = 1


def keep_out_of_band(buffers: List[memoryview], pickle_buffer: pickle.PickleBuffer) -> bool:
    """buffer_callback: contiguous buffers of at least OOB_THRESHOLD bytes go
    to buffers (out of band: returns False), the others stay in the pickle."""
    try:
        view = pickle_buffer.raw()  # raises BufferError if not contiguous
    except BufferError:
        return True
    if view.nbytes < OOB_THRESHOLD:
        return True
    buffers.append(view)
    return False


class ReusedPickler:
    """One pickler of ``pickler_class`` (cloudpickle's or a subclass) reused
    for every dump: building one (its BytesIO, its dispatch tables) costs
    about as much as pickling a small call.  Between dumps the memo is
    cleared and cloudpickle's ``globals_ref`` (which maps
    ``id(fn.__globals__)`` to the globals shared by the functions of *one*
    dump) starts empty, so every dump is exactly what ``cloudpickle.dumps``
    would produce.  A re-entrant dump (an object whose reduction pickles
    again) gets a fresh pickler.  For one thread at a time."""

    def __init__(self, pickler_class: Any = cloudpickle.Pickler) -> None:
        self.file = io.BytesIO()
        self.buffers: List[memoryview] = []
        self.pickler = pickler_class(
            self.file, protocol=PICKLE_PROTOCOL, buffer_callback=self._callback
        )
        self.in_band = False
        self.busy = False

    def _callback(self, pickle_buffer: pickle.PickleBuffer) -> bool:
        if self.in_band:
            return True
        return keep_out_of_band(self.buffers, pickle_buffer)

    def dumps(self, obj: Any, in_band: bool = False) -> Tuple[bytes, List[memoryview]]:
        """(pickle, out-of-band buffers) of obj; with ``in_band`` every
        buffer stays in the pickle."""
        if self.busy:
            buffers: List[memoryview] = []
            payload = cloudpickle.dumps(
                obj,
                protocol=PICKLE_PROTOCOL,
                buffer_callback=None if in_band else lambda b: keep_out_of_band(buffers, b),
            )
            return payload, buffers
        self.busy = True
        self.in_band = in_band
        try:
            self.pickler.dump(obj)
            return self.file.getvalue(), self.buffers
        finally:
            self.file.seek(0)
            self.file.truncate()
            self.pickler.clear_memo()
            self.pickler.globals_ref = {}
            self.buffers = []
            self.in_band = False
            self.busy = False


def type_name(exc: BaseException) -> str:
    """``ValueError`` for a builtin, ``module.Qualified`` otherwise."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def error_record(
    exc: BaseException,
    traceback_text: str,
    message: Optional[str],
    rank: int,
    size: int,
    host: str,
) -> bytes:
    """The ERROR payload for exc (message None: ``str(exc)``, or a stand-in
    when that fails)."""
    try:
        exc_bytes: Optional[bytes] = cloudpickle.dumps(exc, protocol=PICKLE_PROTOCOL)
    except Exception:
        exc_bytes = None
    if message is None:
        try:
            message = str(exc)
        except Exception:
            message = f"<unprintable {type_name(exc)}>"
    record = (
        ERROR_TAG,
        ERROR_VERSION,
        exc_bytes,
        type_name(exc),
        message,
        traceback_text,
        rank,
        size,
        host,
    )
    return pickle.dumps(record, protocol=PICKLE_PROTOCOL)
