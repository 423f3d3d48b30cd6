"""The raw limit: pyzmq + cloudpickle to plain ``python3`` worker processes,
with nothing else in the way (no MPI, no futures, no queue but ZeroMQ's).

A ROUTER socket here, bound on ``ipc://`` in a private directory; each
worker (bench/worker_zmq.py) connects a DEALER with identity ``w<i>``.
``submit`` pickles ``(fn, args, {})`` with cloudpickle, protocol 5, large
buffers out of band as extra frames (sent without a copy), and sends it to
the next worker in turn, without waiting: calls are pipelined as deep as
the caller submits.  ``result`` receives until that call's reply is there.
This is the least a serial caller must pay for a pickled call over ZeroMQ
to another process, the bound that pympipool's frontend and runtime add to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List

import cloudpickle
import zmq

from harness import BENCH_DIR, pdeathsig

WORKER = os.path.join(BENCH_DIR, "worker_zmq.py")


class RawPool:
    def __init__(self, workers: int) -> None:
        self._dir = tempfile.mkdtemp(prefix="pmp-bench-raw-")
        endpoint = f"ipc://{self._dir}/s"
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.SNDHWM, 0)
        self._sock.setsockopt(zmq.RCVHWM, 0)
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._sock.bind(endpoint)
        self._procs = [
            subprocess.Popen(
                [sys.executable, WORKER, endpoint, f"w{i}"],
                stdin=subprocess.DEVNULL,
                preexec_fn=pdeathsig,
            )
            for i in range(workers)
        ]
        self._ids: List[bytes] = []
        while len(self._ids) < workers:  # every worker says hello
            ident, _ = self._sock.recv_multipart()
            self._ids.append(ident)
        self._next = 0
        self._count = 0
        self._results: Dict[int, Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> "_Handle":
        buffers: List[Any] = []
        payload = cloudpickle.dumps((fn, args, {}), protocol=5, buffer_callback=buffers.append)
        tid = self._count
        self._count += 1
        ident = self._ids[self._next]
        self._next = (self._next + 1) % len(self._ids)
        frames = [ident, tid.to_bytes(8, "little"), payload]
        frames += [b.raw() for b in buffers]
        self._sock.send_multipart(frames, copy=len(frames) == 3)
        return _Handle(self, tid)

    def result(self, tid: int) -> Any:
        while tid not in self._results:
            frames = self._sock.recv_multipart(copy=False)
            done = int.from_bytes(frames[1].bytes, "little")
            ok, value = cloudpickle.loads(frames[2].buffer, buffers=[f.buffer for f in frames[3:]])
            self._results[done] = (ok, value)
        ok, value = self._results.pop(tid)
        if not ok:
            raise value
        return value

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        for ident in self._ids:
            self._sock.send_multipart([ident, b""])
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._sock.close(linger=0)
        self._ctx.term()
        shutil.rmtree(self._dir, ignore_errors=True)


class _Handle:
    """A pending raw call, shaped as a future: ``result()``."""

    def __init__(self, pool: RawPool, tid: int) -> None:
        self._pool = pool
        self._tid = tid

    def result(self) -> Any:
        return self._pool.result(self._tid)
