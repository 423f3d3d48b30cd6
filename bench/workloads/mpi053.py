"""The design of pympipool 0.5.3, reproduced as the limit of an MPI-parallel
call (0.5.3 itself is pure Python and not packaged here).

0.5.3's ``Executor(cores=N)`` started ``mpiexec -n N python <backend>``;
rank 0 of the job connected a ZeroMQ ``PAIR`` socket over TCP to the
caller, received a cloudpickled ``{"fn", "args", "kwargs"}`` dict,
``comm.bcast`` it to every rank (mpi4py pickling with cloudpickle), each
rank ran it, ``comm.gather`` collected the values on rank 0, which sent the
list back.  ``Mpi053`` is that caller, and bench/worker_mpi053.py that
backend.  Debian's mpi4py is built for Open MPI, so the job always runs
under ``mpiexec.openmpi``, whichever MPI the measured pympipool uses.

It is only a ``submit(...).result()`` round trip, one call at a time (the
reply is received at once): enough for round trips and start-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any, Callable

import cloudpickle
import zmq

from harness import BENCH_DIR, pdeathsig

WORKER = os.path.join(BENCH_DIR, "worker_mpi053.py")
MPIEXEC = "mpiexec.openmpi"


class Mpi053:
    def __init__(self, ranks: int) -> None:
        mpiexec = shutil.which(MPIEXEC)
        if mpiexec is None:
            raise RuntimeError(f"{MPIEXEC} not found")
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PAIR)
        port = self._sock.bind_to_random_port("tcp://127.0.0.1")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        command = [mpiexec, "--oversubscribe", "-n", str(ranks), sys.executable, WORKER,
                   "--host", "127.0.0.1", "--port", str(port)]
        self._proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                      preexec_fn=pdeathsig)

    def submit(self, fn: Callable[..., Any], *args: Any) -> "_Done":
        self._sock.send(cloudpickle.dumps({"fn": fn, "args": args, "kwargs": {}}))
        reply = cloudpickle.loads(self._sock.recv())
        if "error" in reply:
            raise reply["error"]
        return _Done(reply["result"])

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._sock.send(cloudpickle.dumps({"shutdown": True}))
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._sock.close(linger=0)
        self._ctx.term()


class _Done:
    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value
