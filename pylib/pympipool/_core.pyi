# Type stub of pympipool._core, the C extension (pylib/_core.c: the module,
# Executor; pylib/_channel.c: Channel; pylib/_pmp_py.c: Frame;
# pylib/_pmp_shm_py.c: the shm_* functions and ShmView).  It is what
# mypy sees in place of the compiled module, for the package's own checks
# (lint.mypy) and for programs that use pympipool.  Keep it in step with the
# PyArg_ParseTupleAndKeywords lists, method tables and getters there.
#
# Buffers: "payload" and "buffers" take anything that supports the buffer
# protocol.  Frame supports it too (writable, zero-copy), but type checkers
# without PEP 688 do not know that, so the package hands frames on as
# Sequence[Any].

from typing import Any, Dict, Final, Iterable, Iterator, List, Optional, Sequence, Tuple, final, overload

from _typeshed import ReadableBuffer, StrOrBytesPath

# ---- message types and flags (protocol/pmp_protocol.h), completion kinds
# (frontend/pmp_executor.h) -------------------------------------------------

MSG_TASK: Final[int]
MSG_INIT: Final[int]
MSG_HELLO: Final[int]
MSG_RESULT: Final[int]
MSG_ERROR: Final[int]
MSG_SHUTDOWN: Final[int]
MSG_GOODBYE: Final[int]
MSG_DEFINE: Final[int]
MSG_FORGET: Final[int]

FLAG_FN_KEY: Final[int]
FLAG_CHUNK: Final[int]
FLAG_MAP: Final[int]
FLAG_STARMAP: Final[int]
FLAG_CALL_COMM: Final[int]
FLAG_ALL_RANKS: Final[int]
FLAG_PER_RANK: Final[int]
FLAG_SHM: Final[int]

DONE_RESULT: Final[int]
DONE_ERROR: Final[int]
DONE_BROKEN: Final[int]
DONE_LOST: Final[int]
DONE_TIMEOUT: Final[int]

EVENT_HELLO: Final[int]
EVENT_EXIT: Final[int]
EVENT_CLOSED: Final[int]
EVENT_RESTART: Final[int]

PROTOCOL_VERSION: Final[int]
LINK_VERSION: Final[int]
LINK_MORE_BIT: Final[int]
LINK_MAGIC: Final[str]

def name_thread(name: str) -> None: ...
def rank_table(table: Any, nframes: int) -> Tuple[int, ...]: ...
def decode_hello(text: bytes) -> Dict[str, Any]: ...

# ---- errors ---------------------------------------------------------------
# Both subclass ValueError, so that "except ValueError" still catches them.

class InvalidArgumentError(ValueError):
    """An argument the frontend (or the binding) refuses."""

class DestroyedError(ValueError):
    """The executor was destroyed: nothing can be done with it any more."""

#: Buffers of at least this many bytes are handed over without copying.
ZERO_COPY_THRESHOLD: Final[int]
OOB_THRESHOLD: Final[int]
DESTROY_GRACE_MS: Final[int]
#: 1 if libzmq supports CURVE, else 0.
CHANNEL_HAS_CURVE: Final[int]

@final
class Frame:
    """One received message frame; supports the buffer protocol (writable,
    zero-copy).  Made by the extension only."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

# ---- shared memory (pylib/_pmp_shm_py.c, protocol/pmp_shmref.h) -----------

SHM_DATA_OFFSET: Final[int]
SHM_SERIAL_OFFSET: Final[int]
SHM_MAGIC: Final[bytes]

def shm_table(refs: Sequence[Tuple[int, int, int, int, int, int]], /) -> bytes: ...
def shm_refs(
    table: ReadableBuffer, nframes: int, /
) -> List[Tuple[int, int, int, int, int, int]]: ...
def shm_count(mapping: ReadableBuffer, /) -> int: ...
def shm_add(mapping: ReadableBuffer, delta: int, /) -> int: ...
def shm_write(mapping: ReadableBuffer, offset: int, source: ReadableBuffer, /) -> int: ...

@final
class ShmView:
    """Bytes of a shared segment, a writable buffer; counts the segment's
    views down when the last buffer made from it is gone."""

    def __init__(self, mapping: ReadableBuffer, offset: int, length: int, release: bool) -> None: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class MapValues(Iterator[Any]):
    """The values of the lists that ``chunks`` yields, each taken out of its
    list as it is handed out (pylib/_core_values.c)."""

    def __init__(self, chunks: Iterable[List[Any]]) -> None: ...
    def __iter__(self) -> MapValues: ...
    def __next__(self) -> Any: ...
    def close(self) -> None: ...

@final
class Executor:
    """One frontend executor (frontend/pmp_executor.h)."""

    def __init__(
        self,
        ranks: int,
        ranks_per_group: int,
        pipeline_depth: int,
        launch: bool = True,
        oversubscribe: bool = False,
        flux: bool = False,
        mpi_flavour: Optional[str] = None,
        mpiexec: Optional[str] = None,
        runtime: Optional[str] = None,
        cwd: Optional[str] = None,
        runtime_args: Optional[Sequence[str]] = None,
        restart_limit: int = 0,
        run_time_max: float = 0.0,
        run_time_grace_ms: int = 0,
        hostname: Optional[str] = None,
        pipeline_depth_max: int = 0,
        srun: bool = False,
        srun_mpi: Optional[str] = None,
        srun_exact: bool = False,
        threads_per_core: int = 0,
        launcher_args: Optional[Sequence[str]] = None,
        hosts: Optional[Sequence[str]] = None,
        hostfile: Optional[str] = None,
    ) -> None: ...
    def submit(
        self,
        task_id: int,
        type: int,
        flags: int,
        payload: ReadableBuffer,
        buffers: Sequence[ReadableBuffer],
        ncalls: int = 1,
    ) -> None: ...
    def submit_to(
        self,
        task_ids: Sequence[int],
        groups: Sequence[int],
        flags: int,
        payload: ReadableBuffer,
        buffers: Sequence[ReadableBuffer],
    ) -> None: ...
    def broadcast(
        self,
        type: int,
        key: int,
        payload: Optional[ReadableBuffer] = None,
        buffers: Sequence[ReadableBuffer] = (),
    ) -> None: ...
    def cancel(self, task_id: int, /) -> bool: ...
    def cancel_all(self) -> List[int]: ...
    def pending(self) -> int: ...
    def close(self) -> None: ...
    def interrupt(self) -> int: ...
    # A completion: (kind, task_id, flags, frames, text, status).  Without a
    # timeout wait() returns only with one (or raises).
    @overload
    def wait(
        self, timeout: None = None
    ) -> Tuple[int, int, int, List[Frame], str, int]: ...
    @overload
    def wait(
        self, timeout: float
    ) -> Optional[Tuple[int, int, int, List[Frame], str, int]]: ...
    def wait_batch(
        self, timeout: Optional[float] = None
    ) -> List[Tuple[int, int, int, List[Frame], str, int]]: ...
    def destroy(self, grace_ms: int = 3000) -> None: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def command(self) -> List[str]: ...
    @property
    def pid(self) -> Optional[int]: ...
    @property
    def destroyed(self) -> bool: ...
    @property
    def restarts(self) -> int: ...
    @property
    def forked(self) -> bool: ...

@final
class Channel:
    """One point-to-point channel (frontend/pmp_channel.h): the server side;
    Channel.connect(...) makes the client side."""

    def __init__(self, interface: str = "127.0.0.1", curve: int = -1) -> None: ...
    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        server_key: Optional[str] = None,
        public_key: Optional[str] = None,
        secret_key: Optional[str] = None,
    ) -> Channel: ...
    def bind_random_port(self) -> int: ...
    def bootup(
        self,
        argv: Sequence[StrOrBytesPath],
        cwd: Optional[StrOrBytesPath] = None,
        env: Optional[Sequence[StrOrBytesPath]] = None,
    ) -> None: ...
    def send(
        self,
        type: int,
        task_id: int,
        flags: int,
        payload: ReadableBuffer,
        buffers: Sequence[ReadableBuffer],
        timeout: Optional[float] = None,
    ) -> bool: ...
    # A message: (type, task_id, flags, frames).  Without a timeout recv()
    # returns only with one (or raises).
    @overload
    def recv(self, timeout: None = None) -> Tuple[int, int, int, List[Frame]]: ...
    @overload
    def recv(self, timeout: float) -> Optional[Tuple[int, int, int, List[Frame]]]: ...
    def destroy(self, grace_ms: int = 3000, wait: bool = True) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def endpoint(self) -> Optional[str]: ...
    @property
    def curve(self) -> bool: ...
    @property
    def keys(self) -> Optional[Tuple[str, str, str]]: ...
    @property
    def pid(self) -> Optional[int]: ...
    @property
    def exit_status(self) -> Optional[int]: ...
    @property
    def exit_text(self) -> Optional[str]: ...
    @property
    def last_task_id(self) -> int: ...
    @property
    def forked(self) -> bool: ...
