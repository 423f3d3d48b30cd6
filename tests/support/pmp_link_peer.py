"""Local links (protocol/pmp_link.h; docs/protocol.md, "Local links") in
Python, for tests that stand in for one end: a frontend that a runtime
connects to (``Server``, shaped like the ZeroMQ ROUTER it replaces) or a
peer that connects to an executor (``Link``).

A frame is an 8-byte little-endian word, its length with bit 63 set when
another frame of the same message follows, then the bytes.  A client's
first message is the greeting: ``PMPL``, the version (u16), two zero bytes
and the PLAIN password.  test_core.py checks these constants against the
C extension's, so that they cannot drift from protocol/pmp_link.h.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from typing import Dict, List, Optional

MORE = 1 << 63
MAGIC = b"PMPL"
VERSION = 1


def greeting(password: bytes) -> bytes:
    return MAGIC + struct.pack("<HH", VERSION, 0) + password


def encode(frames: List[bytes]) -> bytes:
    last = len(frames) - 1
    return b"".join(
        struct.pack("<Q", len(f) | (MORE if i < last else 0)) + bytes(f)
        for i, f in enumerate(frames)
    )


class Link:
    """One connection, either end."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.closed = False

    @classmethod
    def connect(cls, path: str) -> "Link":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return cls(sock)

    def send(self, frames: List[bytes]) -> None:
        self.sock.sendall(encode(frames))

    def _parse(self) -> Optional[List[bytes]]:
        frames, pos = [], 0
        while len(self.buf) - pos >= 8:
            (word,) = struct.unpack_from("<Q", self.buf, pos)
            size = word & (MORE - 1)
            if len(self.buf) - pos - 8 < size:
                return None
            frames.append(self.buf[pos + 8 : pos + 8 + size])
            pos += 8 + size
            if not word & MORE:
                self.buf = self.buf[pos:]
                return frames
        return None

    def feed(self) -> bool:
        """Reads what is there; False once the other end closed."""
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, BlockingIOError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def recv(self, timeout: float) -> Optional[List[bytes]]:
        """The next message's frames, or None if none came within timeout
        seconds or the other end closed (then ``closed`` is set)."""
        deadline = time.monotonic() + timeout
        while True:
            frames = self._parse()
            if frames is not None:
                return frames
            left = deadline - time.monotonic()
            if self.closed or left <= 0:
                return None
            if select.select([self.sock], [], [], left)[0] and not self.feed():
                return None

    def close(self) -> None:
        self.sock.close()


class Server:
    """A stand-in for the frontend's end: listens on path, takes every
    connection's greeting (kept in ``greetings``, not judged) and then
    hands out messages as ``[identity, frame, ...]`` like a ROUTER."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.links: Dict[bytes, Link] = {}
        self.greetings: Dict[bytes, bytes] = {}
        self.queue: List[List[bytes]] = []
        self.count = 0

    def _take(self, ident: bytes, link: Link) -> None:
        while True:
            frames = link._parse()
            if frames is None:
                return
            if ident not in self.greetings:
                self.greetings[ident] = frames[0]
            else:
                self.queue.append([ident] + frames)

    def poll(self, timeout_ms: int) -> bool:
        deadline = time.monotonic() + timeout_ms / 1000
        while not self.queue:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            socks = [self.listener] + [l.sock for l in self.links.values() if not l.closed]
            ready = select.select(socks, [], [], left)[0]
            for s in ready:
                if s is self.listener:
                    conn, _ = self.listener.accept()
                    self.count += 1
                    self.links[b"L%d" % self.count] = Link(conn)
                    continue
                for ident, link in self.links.items():
                    if link.sock is s:
                        link.feed()
                        self._take(ident, link)
        return True

    def recv_multipart(self) -> List[bytes]:
        self.poll(3_600_000)
        return self.queue.pop(0)

    def send_multipart(self, frames: List[bytes]) -> None:
        self.links[frames[0]].send(list(frames[1:]))

    def drop(self, ident: bytes) -> None:
        """Closes one connection, as a frontend that goes away does."""
        self.links.pop(ident).close()

    def close(self) -> None:
        for link in self.links.values():
            link.close()
        self.listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
