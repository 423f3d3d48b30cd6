"""Shared memory for large buffers between the caller and the ranks on its host.

One module, two homes: the pympipool package uses it in the caller
(``pympipool._shm``, with ``pympipool._core`` as its native half) and the
runtime embeds it for the worker (``_pympipool_shm``, with
``_pympipool_runtime``); both native halves are pylib/_pmp_shm_py.c.  So it
imports nothing from pympipool, and every function takes the native module.

Why.  An out-of-band buffer sent as a ZeroMQ frame arrives in fresh memory,
whose pages fault in at about 0.7 GB/s here, where a copy into memory
already touched runs at 14-30 GB/s.  Between two processes on one host the
sender therefore copies a buffer of at least ``THRESHOLD`` bytes into a
shared segment it keeps and reuses; the message names the place (a segment
table, docs/protocol.md "Shared memory") and the receiver maps the segment
once and wraps the bytes, writable and without a copy.

How.  A segment is one memfd, one buffer at a time, owned by the process
that writes it (``Owner``): the caller owns the segments of arguments, a
group leader those of its results.  Nothing ever has a name in a file
system, so nothing can be left behind: the kernel frees a segment when the
last process that maps it or holds its descriptor is gone.  A receiver
(``Receiver``) opens it as ``/proc/<owner pid>/fd/<fd>`` (the same user's
process), maps it whole, checks the magic and the serial in its header and
keeps the mapping for the next message (a few, least recently used first
out).  Each buffer it hands to pickle is a ``ShmView``, whose end (the last
numpy array or memoryview made from it gone) counts the segment's view
count down by one.  The owner reuses a segment only when that count is back
to zero and, for the caller, the call that carried it is done:

* a task's receivers are every rank of the group; each counts itself up
  when it maps the segment, before it runs the call, so once the call's
  reply is in, a count of zero means every rank has let its view go;
* a result's receiver is the caller alone: the leader sets the count to
  one before it sends, and the caller's view counts it down.

A receiver that dies never counts down: its segments stay lent until the
executor closes (the caller) or the job ends (a rank).  Segments idle
beyond ``IDLE_BYTES`` are closed.
"""

from __future__ import annotations

import collections
import itertools
import mmap
import os
import socket
import stat
import struct
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

#: Buffers of at least this many bytes travel in shared segments.
THRESHOLD = 1 << 20
#: Free segments beyond this many bytes (least recently used first) are closed.
IDLE_BYTES = 1 << 30
#: A receiver keeps at most this many mappings of segments that no view uses.
MAPPINGS_KEPT = 8
#: Segments grow in steps of this many bytes, so that similar sizes share one.
_GRAIN = 1 << 21

_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
_serials = itertools.count(1)


def local_host() -> str:
    """This host's name, as the runtime's hello names the ranks' hosts."""
    return socket.gethostname()


def rank_pids(hellos: Sequence[Dict[str, Any]]) -> List[int]:
    """The process ids of every rank the hellos (decoded by
    ``_core.decode_hello``) name."""
    pids: List[int] = []
    for hello in hellos:
        if hello.get("ranks"):
            pids += [pid for _, pid, _ in hello["ranks"]]
        elif "pid" in hello:
            pids.append(hello["pid"])
    return pids


def all_local(hellos: Sequence[Dict[str, Any]], host: str) -> bool:
    """Whether every rank of the job is on host: every group said hello
    (as many hellos as ``ngroups``) and each names its ranks' hosts (the
    ``ranks`` line, or ``host`` for a group of one)."""
    if not hellos or len(hellos) < hellos[-1].get("ngroups", 1 << 30):
        return False
    for hello in hellos:
        if hello.get("ranks"):
            hosts = [rank_host for _, _, rank_host in hello["ranks"]]
        elif hello.get("group_size") == 1:
            hosts = [hello.get("host")]
        else:
            return False
        if any(h != host for h in hosts):
            return False
    return True


class _Segment:
    """One memfd mapped by its owner."""

    __slots__ = ("fd", "serial", "size", "map", "lent", "done")

    def __init__(self, native: Any, size: int) -> None:
        self.fd = os.memfd_create("pympipool-shm", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, size)
            self.map = mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED | _MAP_POPULATE)
        except BaseException:
            os.close(self.fd)
            raise
        self.serial = next(_serials)
        self.size = size
        self.map[0:4] = native.SHM_MAGIC
        struct.pack_into("=Q", self.map, native.SHM_SERIAL_OFFSET, self.serial)
        self.lent = False
        self.done: Optional[Callable[[], bool]] = None

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


#: What ``Owner.lend`` returns: the buffers to send, the segments lent.
Lent = Tuple[List[Any], List[_Segment]]


class Owner:
    """The segments this process writes and lends (thread-safe).

    ``preset`` is the view count a lent segment starts with: 0 in the
    caller (the ranks count themselves), 1 on a leader (for the caller)."""

    def __init__(self, native: Any, preset: int) -> None:
        self._native = native
        self._preset = preset
        self._lock = threading.Lock()
        self._segments: List[_Segment] = []  # least recently used first
        self._closed = False

    def lend(self, buffers: Sequence[Any]) -> Optional[Lent]:
        """The buffers of a message with each one of at least THRESHOLD
        bytes copied into a segment and replaced by an empty frame, the
        segment table appended: (buffers, segments lent), or None when no
        buffer is that large (or this owner is closed).  The segments stay
        lent until ``hold`` says how long, and then until their view count
        is back to zero."""
        if not any(memoryview(b).nbytes >= THRESHOLD for b in buffers):
            return None
        native = self._native
        out: List[Any] = []
        refs: List[Tuple[int, int, int, int, int, int]] = []
        lent: List[_Segment] = []
        pid = os.getpid()
        with self._lock:
            if self._closed:
                return None
            try:
                for index, buffer in enumerate(buffers):
                    nbytes = memoryview(buffer).nbytes
                    if nbytes < THRESHOLD:
                        out.append(buffer)
                        continue
                    segment = self._take(nbytes)
                    lent.append(segment)
                    native.shm_write(segment.map, native.SHM_DATA_OFFSET, buffer)
                    native.shm_add(segment.map, self._preset - native.shm_count(segment.map))
                    refs.append(
                        (index + 1, segment.fd, pid, segment.serial, native.SHM_DATA_OFFSET, nbytes)
                    )
                    out.append(b"")
            except BaseException:
                for segment in lent:
                    segment.lent = False
                raise
        out.append(native.shm_table(refs))
        return out, lent

    def hold(self, segments: Sequence[_Segment], done: Optional[Callable[[], bool]]) -> None:
        """Keeps segments lent until done() is true (None: no condition
        beyond the view count)."""
        for segment in segments:
            segment.done = done

    def unsent(self, segments: Sequence[_Segment]) -> None:
        """The message never left: its segments are free again."""
        native = self._native
        with self._lock:
            for segment in segments:
                if not self._closed:
                    native.shm_add(segment.map, -native.shm_count(segment.map))
                segment.done = None
                segment.lent = False

    def unsent_table(self, table: Any) -> None:
        """The message that carried this segment table (made by ``lend``)
        never left: its segments are free again."""
        serials = {ref[3] for ref in self._native.shm_refs(table, 1 << 16)}
        with self._lock:
            segments = [s for s in self._segments if s.serial in serials]
        self.unsent(segments)

    def _free(self, segment: _Segment) -> bool:
        if not segment.lent:
            return True
        done = segment.done
        if done is not None and not done():
            return False
        if self._native.shm_count(segment.map) > 0:
            return False
        segment.lent = False
        segment.done = None
        return True

    def _take(self, nbytes: int) -> _Segment:
        """A free segment that fits nbytes (the smallest), or a new one.
        Closes free segments beyond IDLE_BYTES.  Under the lock."""
        need = self._native.SHM_DATA_OFFSET + nbytes
        best: Optional[_Segment] = None
        idle = 0
        for segment in self._segments:
            if self._free(segment):
                idle += segment.size
                if need <= segment.size <= 2 * need and (best is None or segment.size < best.size):
                    best = segment
        if best is None:
            size = -(-need // _GRAIN) * _GRAIN
            best = _Segment(self._native, size)
            self._segments.append(best)
        else:
            self._segments.remove(best)
            self._segments.append(best)
            idle -= best.size
        best.lent = True
        best.done = lambda: False  # until hold() says otherwise
        if idle > IDLE_BYTES:
            for segment in list(self._segments):
                if idle <= IDLE_BYTES:
                    break
                if not segment.lent:
                    self._segments.remove(segment)
                    idle -= segment.size
                    segment.close()
        return best

    def stats(self) -> Tuple[int, int]:
        """(segments, of which lent) as of the last look."""
        with self._lock:
            return len(self._segments), sum(1 for s in self._segments if not self._free(s))

    def close(self) -> None:
        """Closes every segment: once no peer uses them any more (the job is
        gone), they are freed; a peer that still maps one keeps it alive
        until it lets go, and nothing else does."""
        with self._lock:
            self._closed = True
            segments, self._segments = self._segments, []
        for segment in segments:
            segment.close()


class Receiver:
    """Mappings of the segments of other processes (thread-safe).

    ``count_self``: each view counts itself up on the segment when made (a
    task's ranks) or inherits the count the owner set (the caller)."""

    def __init__(self, native: Any, count_self: bool) -> None:
        self._native = native
        self._count_self = count_self
        self._lock = threading.Lock()
        self._maps: "collections.OrderedDict[Tuple[int, int], mmap.mmap]" = (
            collections.OrderedDict()
        )

    def buffers(self, frames: Sequence[Any]) -> List[Any]:
        """The out-of-band buffers of a message whose frames after the
        header are ``frames`` (payload first, segment table last): every
        buffer the table names as a writable ShmView of its segment, the
        others as they came.  Raises ValueError for a malformed table and
        OSError for a segment that cannot be mapped."""
        native = self._native
        refs = native.shm_refs(frames[-1], len(frames))
        out = list(frames[1:-1])
        for frame, fd, pid, serial, offset, length in refs:
            if memoryview(frames[frame]).nbytes != 0:
                raise ValueError(f"segment table names frame {frame}, which is not empty")
            mapping = self._map(pid, fd, serial)
            if offset < native.SHM_DATA_OFFSET or offset + length > len(mapping):
                raise ValueError(
                    f"bytes {offset}..{offset + length} are not in segment {serial} of "
                    f"process {pid} ({len(mapping)} bytes)"
                )
            if self._count_self:
                native.shm_add(mapping, 1)
            out[frame - 1] = native.ShmView(mapping, offset, length, True)
        return out

    def _map(self, pid: int, fd: int, serial: int) -> mmap.mmap:
        key = (pid, serial)
        with self._lock:
            mapping = self._maps.get(key)
            if mapping is not None:
                self._maps.move_to_end(key)
                return mapping
        path = f"/proc/{pid}/fd/{fd}"
        try:
            handle = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot open the shared segment {serial} of process {pid} ({path}): "
                f"{exc.strerror}"
            ) from None
        try:
            info = os.fstat(handle)
            if not stat.S_ISREG(info.st_mode) or info.st_size < self._native.SHM_DATA_OFFSET:
                raise ValueError(f"{path} is not a shared segment")
            mapping = mmap.mmap(handle, info.st_size, flags=mmap.MAP_SHARED | _MAP_POPULATE)
        finally:
            os.close(handle)
        found = struct.unpack_from("=Q", mapping, self._native.SHM_SERIAL_OFFSET)[0]
        if mapping[0:4] != self._native.SHM_MAGIC or found != serial:
            mapping.close()
            raise ValueError(f"{path} is not segment {serial} of process {pid}")
        with self._lock:
            self._maps[key] = mapping
            while len(self._maps) > MAPPINGS_KEPT:
                self._maps.popitem(last=False)  # unmapped once no view uses it
        return mapping

    def forget(self, pids: Optional[Sequence[int]] = None) -> None:
        """Drops the mappings of these processes' segments (all: None);
        views still in use keep theirs."""
        with self._lock:
            for key in list(self._maps):
                if pids is None or key[0] in pids:
                    del self._maps[key]

    def mapped(self) -> int:
        """How many mappings are kept."""
        with self._lock:
            return len(self._maps)
