"""How soon a call with its own ranks starts: a warm ``FlexExecutor`` against
a fresh ``mpiexec -n 2`` per call.

``flex-start``
    ``start_us``: from right before ``submit`` to the moment the function
    body runs on both ranks of a 2-rank call (the later of the two ranks'
    ``time.monotonic()``, a clock all processes of the host share), µs,
    median over the calls.  The function takes ``comm``, so the call's
    communicator (``MPI_Comm_create_group`` by its two ranks) is made
    before it runs.  Ours: ``FlexExecutor(max_cores=2)``, started and
    warmed up (20 calls) before the calls are timed, 200 calls (30 with
    ``--quick``), one at a time.  Limit: what running each call as its own
    MPI job costs (as executorlib does, one ``mpiexec -n 2`` per call):
    ``Executor(cores=2)`` created for the call, its ``mpiexec -n 2
    pympipool-runtime`` launched, the call run and the job shut down, 5
    calls (2 with ``--quick``); the time is from the constructor to the
    function's start on both ranks, so the shutdown is not counted.
    ``rtt_us``: ours only, ``submit`` to ``result()`` of the same 2-rank
    call.  docs/interfaces.md ("FlexExecutor") quotes the figures.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Dict, List

from . import Config, Measure, Workload, ours, peer


def stamp(comm: Any = None) -> float:
    """When the call started on this rank (a host-wide clock)."""
    return time.monotonic()


def flex_start(calls: int) -> Dict[str, float]:
    import pympipool

    starts: List[float] = []
    rtts: List[float] = []
    with pympipool.FlexExecutor(max_cores=2) as exe:
        for _ in range(20):  # warm: job up, functions cached on the ranks
            exe.submit(stamp, resource_dict={"cores": 2}).result(timeout=120)
        for _ in range(calls):
            begin = time.monotonic()
            values = exe.submit(stamp, resource_dict={"cores": 2}).result(timeout=120)
            rtts.append(time.monotonic() - begin)
            starts.append(max(values) - begin)
    return {
        "start_us": statistics.median(starts) * 1e6,
        "rtt_us": statistics.median(rtts) * 1e6,
    }


def fresh_start(calls: int) -> Dict[str, float]:
    import pympipool

    starts: List[float] = []
    for _ in range(calls):
        begin = time.monotonic()
        with pympipool.Executor(cores=2) as exe:
            values = exe.submit(stamp).result(timeout=120)
        starts.append(max(values) - begin)
    return {"start_us": statistics.median(starts) * 1e6}


def workloads(cfg: Config) -> List[Workload]:
    return [
        Workload(
            "flex-start", __name__,
            "submit → start of a 2-rank call: warm FlexExecutor vs a fresh mpiexec -n 2",
            [
                Measure("start_us", "2-rank call: submit → start on both ranks", "µs", False),
                Measure("rtt_us", "... submit → result()", "µs", False),
            ],
            [
                ours("FlexExecutor(2), warm, cores=2", "flex_start",
                     calls=30 if cfg.quick else 200),
                peer("limit", "a fresh mpiexec -n 2 per call (Executor(cores=2))",
                     "fresh_start", ("start_us",), calls=2 if cfg.quick else 5),
            ],
            {},
            budget=120.0,
            max_rounds=3,
        ),
    ]
