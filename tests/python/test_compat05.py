"""Every pympipool 0.5 program runs unchanged.

A script written against pympipool 0.5.3's public API -- its positional
parameter orders, its keyword spellings, ``sleep_interval``, its queue
adapter contract (``submit_job(working_directory=, cores=, command=<one
string>, **queue_adapter_kwargs)``), ``SocketInterface(queue_adapter,
queue_adapter_kwargs)`` with ``bootup(command_lst, cwd, cores)``, the
functions of the socket's other end and ``cancel_items_in_queue`` -- runs
as it is, in a fresh interpreter, and prints what 0.5.3 printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    '''
    import queue
    import subprocess
    import sys
    import warnings
    from concurrent.futures import Future

    import numpy as np

    from pympipool import (
        Executor,
        MPISpawnPool,
        Pool,
        PoolExecutor,
        SocketInterface,
        cancel_items_in_queue,
    )

    BACKEND = sys.argv[1]


    def calc(i, j, k):
        return np.array([i, j, k])


    def init_k():
        return {"k": 3}


    def square(i):
        return i**2


    def with_comm(i, comm):
        return i, comm.Get_size(), comm.Get_rank()


    class ShellAdapter:
        """pysqa-like: submit_job gets the command as one shell string."""

        def __init__(self):
            self.calls = []
            self.jobs = []

        def submit_job(self, working_directory=None, cores=None, command=None, **kwargs):
            assert isinstance(command, str), type(command)
            self.calls.append(dict(working_directory=working_directory, cores=cores, **kwargs))
            self.jobs.append(subprocess.Popen(command, shell=True, cwd=working_directory))
            return len(self.jobs)


    # Executor(cores, oversubscribe, enable_flux_backend, init_function, cwd,
    #          queue_adapter, queue_adapter_kwargs)
    with Executor(2, False, False, init_k, None, None, None) as exe:
        fs = exe.submit(calc, 2, j=4)
        print("Executor", [a.tolist() for a in fs.result()])

    # PoolExecutor(max_workers, oversubscribe, enable_flux_backend, cwd,
    #              sleep_interval, queue_adapter, queue_adapter_kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pexe = PoolExecutor(2, False, False, None, 0.1, None, None)
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 1, [str(w.message) for w in caught]
    assert "sleep_interval" in str(deprecations[0].message)
    with pexe:
        fs = [pexe.submit(square, i=i) for i in range(4)]
        print("PoolExecutor", [f.result() for f in fs])
    with PoolExecutor(max_workers=1, sleep_interval=0.5) as pexe:
        print("PoolExecutor keyword", pexe.submit(square, 5).result())

    adapter = ShellAdapter()
    with PoolExecutor(2, False, False, None, 0.1, adapter, {"queue": "debug"}) as pexe:
        print("PoolExecutor adapter", pexe.submit(square, 6).result())
    assert adapter.calls[0]["cores"] == 2 and adapter.calls[0]["queue"] == "debug"
    assert adapter.jobs[0].wait(60) == 0

    # Pool(max_workers, oversubscribe, enable_flux_backend, cwd, queue_adapter,
    #      queue_adapter_kwargs); map/starmap(func=, iterable=, chunksize=)
    with Pool(2, False, False, None, None, None) as p:
        print("Pool", p.map(func=square, iterable=[1, 2, 3, 4]))
        print("Pool starmap", p.starmap(func=pow, iterable=[(2, 3), (3, 2)], chunksize=None))
    p = Pool(cores=2)
    print("Pool cores", p.map(func=square, iterable=[5]))
    p.shutdown(wait=True)

    # MPISpawnPool(max_ranks, ranks_per_task, oversubscribe, cwd, queue_adapter,
    #              queue_adapter_kwargs)
    with MPISpawnPool(2, 2, False, None, None, None) as p:
        print("MPISpawnPool", p.map(func=with_comm, iterable=[1, 2]))

    # SocketInterface(queue_adapter, queue_adapter_kwargs); bootup(command_lst, cwd, cores)
    interface = SocketInterface(None, None)
    port = interface.bind_to_random_port()
    interface.bootup([sys.executable, BACKEND, "--host", "127.0.0.1", "--port", str(port)], None, 1)
    print("SocketInterface", interface.send_and_receive_dict(input_dict={"fn": square, "args": (7,)}))
    interface.shutdown(wait=True)

    adapter = ShellAdapter()
    interface = SocketInterface(adapter, {"job_name": "backend"})
    port = interface.bind_to_random_port()
    interface.bootup(
        command_lst=[sys.executable, BACKEND, "--host", "127.0.0.1", "--port", str(port)],
        cwd=None,
        cores=1,
    )
    print("SocketInterface adapter", interface.send_and_receive_dict({"fn": square, "args": (8,)}))
    interface.shutdown(wait=True)
    assert adapter.calls == [dict(working_directory=None, cores=1, job_name="backend")]
    assert adapter.jobs[0].wait(60) == 0

    # cancel_items_in_queue(que)
    que = queue.Queue()
    futures = [Future() for _ in range(3)]
    for f in futures:
        que.put({"fn": square, "args": (), "kwargs": {}, "future": f})
    que.put({"shutdown": True, "wait": True})
    cancel_items_in_queue(que=que)
    print("cancel_items_in_queue", [f.cancelled() for f in futures], que.qsize())
    '''
)

EXPECTED = [
    "Executor [[2, 4, 3], [2, 4, 3]]",
    "PoolExecutor [0, 1, 4, 9]",
    "PoolExecutor keyword 25",
    "PoolExecutor adapter 36",
    "Pool [1, 4, 9, 16]",
    "Pool starmap [8, 9]",
    "Pool cores [25]",
    "MPISpawnPool [(1, 2, 0), (2, 2, 0)]",
    "SocketInterface 49",
    "SocketInterface adapter 64",
    "cancel_items_in_queue [True, True, True] 0",
]


def test_a_pympipool_05_script_runs_unchanged(tmp_path):
    script = tmp_path / "old_script.py"
    script.write_text(SCRIPT)
    backend = os.path.abspath(
        os.path.join(os.path.dirname(__file__), "..", "..", "examples", "backends", "socket_backend.py")
    )
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    proc = subprocess.run(
        [sys.executable, str(script), backend],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == EXPECTED, proc.stdout + proc.stderr


def test_keywords_added_since_05_are_keyword_only():
    import inspect

    from pympipool import SocketInterface
    from pympipool import Executor, MPISpawnPool, Pool, PoolExecutor

    positional = {
        Executor: ["cores", "oversubscribe", "enable_flux_backend", "init_function", "cwd",
                   "queue_adapter", "queue_adapter_kwargs"],
        PoolExecutor: ["max_workers", "oversubscribe", "enable_flux_backend", "cwd",
                       "sleep_interval", "queue_adapter", "queue_adapter_kwargs"],
        Pool: ["max_workers", "oversubscribe", "enable_flux_backend", "cwd", "queue_adapter",
               "queue_adapter_kwargs"],
        MPISpawnPool: ["max_ranks", "ranks_per_task", "oversubscribe", "cwd", "queue_adapter",
                       "queue_adapter_kwargs"],
        SocketInterface: ["queue_adapter", "queue_adapter_kwargs"],
    }
    for cls, names in positional.items():
        params = list(inspect.signature(cls).parameters.values())
        got = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert got == names, (cls.__name__, got)
        rest = [p for p in params if p.kind is not p.POSITIONAL_OR_KEYWORD]
        assert all(p.kind is p.KEYWORD_ONLY for p in rest), cls.__name__
