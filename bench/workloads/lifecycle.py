"""Start, stop and idling of an executor with 2 workers (or ranks).

``start-stop``
    ``start``: seconds from the constructor (with the contender's imports;
    for mpi4py.futures that includes ``MPI_Init`` of the singleton) to the
    first result of ``trivial()``.  ``stop``: the orderly shutdown of the
    idle executor, ms: ``shutdown(wait=True)``, or ``close()`` +
    ``join()`` for the pools.  Ours: ``Executor(cores=2)``,
    ``PoolExecutor(2)``, ``Pool(2)``; peers: ``ProcessPoolExecutor(2)``,
    ``multiprocessing.Pool(2)``, ``MPIPoolExecutor(2)``; limit: pympipool
    0.5.3's design (mpiexec.openmpi -n 2).
``idle``
    CPU used while nothing is asked of the executor, over 3 s (0.5 s with
    ``--quick``) after its first result and a settling pause (0.5 s, 0.2 s
    with ``--quick``): utime + stime from ``/proc/<pid>/stat`` of every
    descendant of the contender's process.  ``worker``: per worker process (the ranks, the pool's
    processes), % of one core; ``launcher``: mpiexec, hydra's proxies or
    orted together, % of one core; ``caller``: the caller's own process
    (the executor's threads; its main thread sleeps), % of one core.  At
    most 3 rounds (each takes its 3 s per contender).
"""

from __future__ import annotations

import os
import time
from typing import Dict, List

from harness import cpu_seconds, cpu_split

from . import Config, Measure, Workload, ours, peer
from .common import open_contender, trivial


def start_stop(contender: str, workers: int) -> Dict[str, float]:
    start = time.perf_counter()
    adapter = open_contender(contender, workers)
    try:
        adapter.call(trivial)
        started = time.perf_counter() - start
        time.sleep(0.2)
    except BaseException:
        adapter.close()
        raise
    start = time.perf_counter()
    adapter.close()
    return {"start_s": started, "stop_ms": (time.perf_counter() - start) * 1e3}


def idle(contender: str, workers: int, seconds: float, settle: float) -> Dict[str, float]:
    me = os.getpid()
    adapter = open_contender(contender, workers)
    try:
        adapter.call(trivial)
        time.sleep(settle)
        workers0, launchers0 = cpu_split(me)
        caller0 = cpu_seconds(me) or 0.0
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        workers1, launchers1 = cpu_split(me)
        caller1 = cpu_seconds(me) or 0.0
    finally:
        adapter.close()

    def used(before: Dict[int, float], after: Dict[int, float]) -> List[float]:
        return [after[p] - before[p] for p in after if p in before]

    per_worker = used(workers0, workers1)
    if not per_worker:
        raise RuntimeError("no worker process found below the caller")
    return {
        "worker_pct": 100 * sum(per_worker) / len(per_worker) / elapsed,
        "launcher_pct": 100 * sum(used(launchers0, launchers1)) / elapsed,
        "caller_pct": 100 * (caller1 - caller0) / elapsed,
        "workers_found": float(len(per_worker)),
    }


def _contenders(function: str, with_limit: bool) -> list:
    found = [
        ours("Executor(cores=2)", function, contender="Executor"),
        ours("PoolExecutor(2)", function, contender="PoolExecutor"),
        ours("Pool(2)", function, contender="Pool"),
        peer("multiprocessing.Pool", "multiprocessing.Pool(2)", function,
             contender="mp.Pool"),
        peer("ProcessPoolExecutor", "ProcessPoolExecutor(2)", function, contender="PPE"),
        peer("mpi4py.futures", "MPIPoolExecutor(2) (Open MPI)", function,
             contender="mpi4py"),
    ]
    if with_limit:
        found.append(peer("limit", "pympipool 0.5.3 design: mpiexec.openmpi -n 2", function,
                          contender="mpi053"))
    return found


def workloads(cfg: Config) -> List[Workload]:
    seconds = 0.5 if cfg.quick else 3.0
    return [
        Workload(
            "start-stop", __name__, "start to first result, shutdown when idle, 2 workers",
            [
                Measure("start_s", "Start → first result, 2 workers/ranks", "s", False),
                Measure("stop_ms", "Shutdown of an idle executor, 2 workers/ranks", "ms",
                        False),
            ],
            _contenders("start_stop", True),
            {"workers": 2},
        ),
        Workload(
            "idle", __name__, "CPU of an idle executor, 2 workers",
            [
                Measure("worker_pct", f"Idle CPU over {seconds:g} s, per worker/rank",
                        "% core", False),
                Measure("launcher_pct", "... the launcher (mpiexec, proxies)", "% core", False),
                Measure("caller_pct", "... the caller's process (executor threads)",
                        "% core", False),
            ],
            _contenders("idle", True),
            {"workers": 2, "seconds": seconds, "settle": 0.2 if cfg.quick else 0.5},
            max_rounds=3,
        ),
    ]
