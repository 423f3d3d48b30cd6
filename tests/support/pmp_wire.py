"""The message header of protocol/pmp_protocol.h in Python, for tests that
stand in for one end of a connection (a frontend, a runtime, a peer).

A header is 24 bytes, little-endian: the magic ``PMPX``, the protocol
version (u16), the message type (u16), the task id (u64), the flags (u32)
and the number of frames that follow it (u32).  test_core.py checks these
constants against the C extension's, so that they cannot drift from the C
definitions.  Pure Python: the runtime's own checks use it without the
pympipool package.
"""

from __future__ import annotations

import struct
from typing import Tuple

MAGIC = b"PMPX"
VERSION = 1
HEADER = struct.Struct("<4sHHQII")
HEADER_SIZE = HEADER.size

HELLO, TASK, INIT, RESULT, ERROR, SHUTDOWN, GOODBYE, DEFINE, FORGET = range(1, 10)


def header(kind: int, task_id: int = 0, flags: int = 0, nframes: int = 1, version: int = VERSION) -> bytes:
    """The header frame of a message of this type with nframes frames after it."""
    return HEADER.pack(MAGIC, version, kind, task_id, flags, nframes)


def parse_header(frame: bytes) -> Tuple[int, int, int, int, int]:
    """(version, kind, task_id, flags, nframes) of a header frame; ValueError
    when it is not one (size or magic)."""
    if len(frame) != HEADER_SIZE or frame[:4] != MAGIC:
        raise ValueError("not a pympipool header: %r" % (bytes(frame[:8]),))
    _, version, kind, task_id, flags, nframes = HEADER.unpack(frame)
    return version, kind, task_id, flags, nframes
