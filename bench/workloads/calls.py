"""Single calls: throughput of tiny calls, the round trip of one call, and
the round trip of one MPI-parallel call.

``tiny``
    5,000 calls of ``identity(i)`` submitted at once, then every result
    collected, 2 workers: calls per second (median of 3 repetitions in one
    process, after every worker has answered).  Ours: ``PoolExecutor(2)
    .submit``, ``Pool(2).apply_async`` and ``Executor(cores=1).submit``
    (an ``Executor`` is one group of ranks that runs one call at a time,
    so it has one worker whatever its ``cores``).  Peers:
    ``multiprocessing.Pool(2).apply_async``, ``ProcessPoolExecutor(2)
    .submit``.  Limit: pyzmq + cloudpickle to 2 plain worker processes,
    pipelined (workloads/raw.py).
``latency``
    The median round trip of ``trivial()``, one call at a time, 1 worker
    (500 calls after 50 to warm up).  Ours: ``PoolExecutor(1)``,
    ``Executor(cores=1)``, ``Pool(1).apply``.  Peers:
    ``ProcessPoolExecutor(1)``, ``multiprocessing.Pool(1).apply``,
    ``mpi4py.futures.MPIPoolExecutor(1)`` (Open MPI).  Limit: the raw
    pyzmq + cloudpickle worker.
``sleep``
    4 calls of ``time.sleep(0.5)`` (0.1 with ``--quick``) submitted at once
    to 2 workers, seconds until all have returned: ideally 1.0 s, every
    worker busy, none of them
    spent as a broker.  Ours: ``PoolExecutor(2).submit``,
    ``Pool(2).apply_async``; peers: ``ProcessPoolExecutor(2).submit``,
    ``multiprocessing.Pool(2).apply_async``.  At most 3 rounds.
``mpi-call``
    The median round trip of ``trivial()`` on 2 ranks, every call on both
    (``Executor(cores=2)``) against pympipool 0.5.3's design: mpiexec.openmpi
    -n 2 python3, ZeroMQ PAIR to rank 0, ``bcast`` / ``gather``
    (workloads/mpi053.py).  The target is ours / that <= 1.3.
"""

from __future__ import annotations

import time
from typing import Dict, List

from . import Config, Measure, Workload, ours, peer
from .common import identity, median, nap, open_contender, trivial, warm_up


def tiny(contender: str, workers: int, calls: int, reps: int) -> Dict[str, float]:
    adapter = open_contender(contender, workers)
    try:
        warm_up(adapter, workers)
        rates: List[float] = []
        for _ in range(reps):
            start = time.perf_counter()
            handles = [adapter.submit(identity, i) for i in range(calls)]
            for h in handles:
                adapter.result(h)
            rates.append(calls / (time.perf_counter() - start))
    finally:
        adapter.close()
    return {"calls_per_s": median(rates)}


def naps(contender: str, workers: int, calls: int, seconds: float) -> Dict[str, float]:
    adapter = open_contender(contender, workers)
    try:
        warm_up(adapter, workers)
        start = time.perf_counter()
        handles = [adapter.submit(nap, seconds) for _ in range(calls)]
        for h in handles:
            adapter.result(h)
        elapsed = time.perf_counter() - start
    finally:
        adapter.close()
    return {"sleep_s": elapsed}


def round_trips(contender: str, workers: int, calls: int) -> Dict[str, float]:
    adapter = open_contender(contender, workers)
    try:
        for _ in range(50):
            adapter.call(trivial)
        samples: List[float] = []
        for _ in range(calls):
            start = time.perf_counter()
            adapter.call(trivial)
            samples.append(time.perf_counter() - start)
    finally:
        adapter.close()
    return {"rtt_us": median(samples) * 1e6}


def workloads(cfg: Config) -> List[Workload]:
    q = cfg.quick
    tiny_params = {"workers": 2, "calls": 500 if q else 5000, "reps": 1 if q else 3}
    rtt_calls = 100 if q else 500
    nap = 0.1 if q else 0.5
    return [
        Workload(
            "tiny", __name__, "tiny calls submitted at once, then collected",
            [Measure("calls_per_s", f"Tiny calls: {tiny_params['calls']:,} submitted, then "
                     "collected, 2 workers", "calls/s", True)],
            [
                ours("PoolExecutor(2).submit", "tiny", contender="PoolExecutor"),
                ours("Pool(2).apply_async", "tiny", contender="Pool"),
                ours("Executor(cores=1).submit (1 worker)", "tiny", contender="Executor",
                     workers=1),
                peer("multiprocessing.Pool", "multiprocessing.Pool(2).apply_async", "tiny",
                     contender="mp.Pool"),
                peer("ProcessPoolExecutor", "ProcessPoolExecutor(2).submit", "tiny",
                     contender="PPE"),
                peer("limit", "pyzmq + cloudpickle, 2 workers, pipelined", "tiny",
                     contender="raw"),
            ],
            tiny_params,
        ),
        Workload(
            "latency", __name__, "round trip of one trivial call, one at a time",
            [Measure("rtt_us", "Latency: one trivial call at a time, 1 worker, median",
                     "µs", False)],
            [
                ours("PoolExecutor(1).submit().result()", "round_trips",
                     contender="PoolExecutor"),
                ours("Executor(cores=1).submit().result()", "round_trips",
                     contender="Executor"),
                ours("Pool(1).apply", "round_trips", contender="Pool"),
                peer("multiprocessing.Pool", "multiprocessing.Pool(1).apply", "round_trips",
                     contender="mp.Pool"),
                peer("ProcessPoolExecutor", "ProcessPoolExecutor(1).submit().result()",
                     "round_trips", contender="PPE"),
                peer("mpi4py.futures", "MPIPoolExecutor(1).submit().result() (Open MPI)",
                     "round_trips", contender="mpi4py"),
                peer("limit", "pyzmq + cloudpickle, 1 worker", "round_trips",
                     contender="raw"),
            ],
            {"workers": 1, "calls": rtt_calls},
        ),
        Workload(
            "sleep", __name__, "4 sleeping calls on 2 workers",
            [Measure("sleep_s", f"4 x sleep({nap:g}) submitted at once, 2 workers "
                     f"(ideal {2 * nap:.1f} s)", "s", False)],
            [
                ours("PoolExecutor(2).submit", "naps", contender="PoolExecutor"),
                ours("Pool(2).apply_async", "naps", contender="Pool"),
                peer("multiprocessing.Pool", "multiprocessing.Pool(2).apply_async", "naps",
                     contender="mp.Pool"),
                peer("ProcessPoolExecutor", "ProcessPoolExecutor(2).submit", "naps",
                     contender="PPE"),
            ],
            {"workers": 2, "calls": 4, "seconds": nap},
            max_rounds=3,
        ),
        Workload(
            "mpi-call", __name__, "round trip of one call on 2 ranks",
            [Measure("rtt_us", "MPI-parallel call: trivial() on 2 ranks, median round trip",
                     "µs", False)],
            [
                ours("Executor(cores=2).submit().result()", "round_trips",
                     contender="Executor"),
                peer("limit", "pympipool 0.5.3 design: mpiexec.openmpi -n 2, "
                     "PAIR + bcast/gather", "round_trips", contender="mpi053"),
            ],
            {"workers": 2, "calls": rtt_calls},
        ),
    ]
