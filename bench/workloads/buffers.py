"""Large buffers: the round trip of a numpy array that a call returns as it
came (``identity(a)``), 1 worker.

For an 8 MiB and a 128 MiB float64 array (4 and 16 MiB with ``--quick``):
the array's size divided by the median round trip (one echo to warm up,
then 5 resp. 2 timed), in GB/s (10^9 bytes/s); the array crosses twice, so
the bytes moved per second are twice that.  The warm-up echo's result is
compared with the array.  At most 3 rounds (the peers take long).  Ours: ``Executor(cores=1)``, ``PoolExecutor(1)``
(both out-of-band pickle 5 buffers, sent without a copy).  Peers:
``ProcessPoolExecutor(1)``, ``mpi4py.futures.MPIPoolExecutor(1)`` (Open
MPI).  Limit: the raw pyzmq + cloudpickle worker (buffers as frames of
their own, no copy).
"""

from __future__ import annotations

import time
from typing import Dict, List

from . import Config, Measure, Workload, ours, peer
from .common import identity, median, open_contender, warm_up


def echo(contender: str, sizes_mib: List[int], reps: List[int]) -> Dict[str, float]:
    import numpy as np

    adapter = open_contender(contender, 1)
    values: Dict[str, float] = {}
    try:
        warm_up(adapter, 1)
        for key, size, count in zip(("small", "large"), sizes_mib, reps):
            array = np.arange(size * 2**20 // 8, dtype=np.float64)
            out = adapter.call(identity, array)
            assert np.array_equal(out, array)
            del out
            samples = []
            for _ in range(count):
                start = time.perf_counter()
                adapter.call(identity, array)
                samples.append(time.perf_counter() - start)
            values[f"{key}_gbps"] = array.nbytes / median(samples) / 1e9
            values[f"{key}_rtt_s"] = median(samples)
    finally:
        adapter.close()
    return values


def workloads(cfg: Config) -> List[Workload]:
    sizes = [4, 16] if cfg.quick else [8, 128]
    reps = [2, 1] if cfg.quick else [5, 2]
    return [
        Workload(
            "buffers", __name__, "echo of a large numpy array, 1 worker",
            [
                Measure("small_gbps", f"{sizes[0]} MiB array echo: size / round trip",
                        "GB/s", True),
                Measure("large_gbps", f"{sizes[1]} MiB array echo: size / round trip",
                        "GB/s", True),
            ],
            [
                ours("Executor(cores=1)", "echo", contender="Executor"),
                ours("PoolExecutor(1)", "echo", contender="PoolExecutor"),
                peer("ProcessPoolExecutor", "ProcessPoolExecutor(1)", "echo",
                     contender="PPE"),
                peer("mpi4py.futures", "MPIPoolExecutor(1) (Open MPI)", "echo",
                     contender="mpi4py"),
                peer("limit", "pyzmq + cloudpickle, out-of-band frames, 1 worker", "echo",
                     contender="raw"),
            ],
            {"sizes_mib": sizes, "reps": reps},
            max_rounds=3,
        )
    ]
