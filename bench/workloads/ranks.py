"""How start-up, shutdown and memory grow with the number of ranks.

``ranks-scale``
    ``PoolExecutor(max_workers=n)`` (n groups of one rank, oversubscribed
    beyond the machine's cores) for n = 1, 2, 4, 8, 16, 32, 64 (1, 4, 16
    with ``--quick``), one after the other in one child process.  Per n:
    ``start_s_<n>``, seconds from the constructor to the first result of
    ``trivial()`` (one worker is enough for it); ``ready_s_<n>``, to the
    moment every group has said hello (every rank is up: the start-up that
    grows with n); ``stop_ms_<n>``, ``shutdown(wait=True)`` of the idle
    executor, ms; ``rss_mib_<n>``, the ranks' resident memory (``VmRSS``
    of every ``pympipool-runtime`` process below this one, summed, divided
    by n), MiB, and ``pss_mib_<n>``, the same with the proportional set
    size (``Pss`` of ``/proc/<pid>/smaps_rollup``: shared pages, the
    interpreter's and MPI's code, counted once over the processes that
    share them), measured after every rank has run calls.  The launcher
    (mpiexec, hydra's proxy or Open MPI's prterun) is not counted.  No
    peers: this is a curve, not a race.  At most 3 rounds.  Run it for
    each MPI build (``--build build-mpich``, ``--build build-openmpi``);
    docs/scaling.md has the figures.
"""

from __future__ import annotations

import os
import time
from typing import Dict, List

from harness import descendants, status_kib

from . import Config, Measure, Workload, ours
from .common import identity, trivial

FULL = (1, 2, 4, 8, 16, 32, 64)
QUICK = (1, 4, 16)
RUNTIME_COMM = "pympipool-runtime"[:15]  # /proc/<pid>/comm keeps 15 bytes


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _ranks() -> List[int]:
    found = []
    for pid in descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == RUNTIME_COMM:
                    found.append(pid)
        except OSError:
            pass
    return found


def ranks_scale(counts: List[int]) -> Dict[str, float]:
    import pympipool

    values: Dict[str, float] = {}
    cpus = os.cpu_count() or 1
    for n in counts:
        start = time.perf_counter()
        exe = pympipool.PoolExecutor(max_workers=n, oversubscribe=n > cpus)
        try:
            exe.submit(trivial).result(timeout=300)
            values[f"start_s_{n}"] = time.perf_counter() - start
            while len(exe._state.hellos) < n:  # every group said hello
                if time.perf_counter() - start > 300:
                    raise RuntimeError(f"only {len(exe._state.hellos)} of {n} groups started")
                time.sleep(0.005)
            values[f"ready_s_{n}"] = time.perf_counter() - start
            # every rank runs calls before its memory is read
            list(exe.map(identity, range(8 * n)))
            ranks = _ranks()
            if len(ranks) != n:
                raise RuntimeError(f"{len(ranks)} runtime processes below the caller, not {n}")
            values[f"rss_mib_{n}"] = sum(status_kib("VmRSS", str(p)) for p in ranks) / n / 1024
            values[f"pss_mib_{n}"] = sum(_pss_kib(p) for p in ranks) / n / 1024
            time.sleep(0.2)
        except BaseException:
            exe.shutdown(wait=True, cancel_futures=True)
            raise
        start = time.perf_counter()
        exe.shutdown(wait=True)
        values[f"stop_ms_{n}"] = (time.perf_counter() - start) * 1e3
    return values


def workloads(cfg: Config) -> List[Workload]:
    counts = QUICK if cfg.quick else FULL
    measures = []
    for n in counts:
        measures += [
            Measure(f"start_s_{n}", f"Ranks at scale: start → first result, {n} ranks", "s",
                    False),
            Measure(f"ready_s_{n}", f"... start → every rank up, {n} ranks", "s", False),
            Measure(f"stop_ms_{n}", f"... shutdown of the idle executor, {n} ranks", "ms",
                    False),
            Measure(f"rss_mib_{n}", f"... resident memory per rank (RSS), {n} ranks", "MiB",
                    False),
            Measure(f"pss_mib_{n}", f"... proportional memory per rank (PSS), {n} ranks",
                    "MiB", False),
        ]
    return [
        Workload(
            "ranks-scale", __name__,
            "PoolExecutor(max_workers=n), n = 1 ... 64: start, shutdown, memory per rank",
            measures,
            [ours("PoolExecutor(n)", "ranks_scale")],
            {"counts": list(counts)},
            budget=600.0,  # 64 oversubscribed ranks start in 10-20 s on 2 cores
            max_rounds=3,
        ),
    ]
