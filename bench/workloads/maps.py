"""Maps: ``map(identity, range(n))`` with 2 workers.

One contender process measures, after every worker has answered:

``default``
    items/s of a map of 20,000 items with the default chunking of
    multiprocessing (``len / (4 x workers)`` = 2,500 items a chunk): the
    Pools' default ``chunksize``, given explicitly to the executors (whose
    default is 1).  Median of 5 maps.
``chunk1``
    items/s of a map of 5,000 items with ``chunksize=1``: one task per
    item (fewer items, since that is 100 times slower).
``fixed``
    the fixed cost of a map call: a map of 2 items (median of 9), ms.
``per_item``
    the cost of one more item, µs: (time of the default map - fixed cost)
    / 20,000.

Ours: ``Pool(2).map`` and ``PoolExecutor(2).map`` (as a list).  Peers:
``multiprocessing.Pool(2).map`` and ``ProcessPoolExecutor(2).map``.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional

from . import Config, Measure, Workload, ours, peer
from .common import identity, median, open_contender, warm_up


def maps(contender: str, items: int, items_chunk1: int, reps: int) -> Dict[str, float]:
    workers = 2
    adapter = open_contender(contender, workers)
    default: Optional[int] = None if adapter.pool else max(1, items // (4 * workers))

    def run(n: int, chunksize: Optional[int]) -> float:
        start = time.perf_counter()
        out = adapter.map(identity, range(n), chunksize)
        elapsed = time.perf_counter() - start
        assert len(out) == n and out[-1] == n - 1
        return elapsed

    try:
        warm_up(adapter, workers)
        run(100, None if adapter.pool else 1)
        big: List[float] = [run(items, default) for _ in range(reps)]
        chunk1 = run(items_chunk1, 1)
        fixed = median([run(2, default) for _ in range(9)])
    finally:
        adapter.close()
    t_big = median(big)
    return {
        "default_items_per_s": items / t_big,
        "chunk1_items_per_s": items_chunk1 / chunk1,
        "fixed_ms": fixed * 1e3,
        "per_item_us": max(0.0, t_big - fixed) / items * 1e6,
    }


def workloads(cfg: Config) -> List[Workload]:
    n = 2000 if cfg.quick else 20000
    n1 = 500 if cfg.quick else 5000
    chunk = n // 8
    return [
        Workload(
            "maps", __name__, "map(identity, range(n)), 2 workers",
            [
                Measure("default_items_per_s", f"map of {n:,} items, default chunks "
                        f"({chunk:,} a chunk)", "items/s", True),
                Measure("chunk1_items_per_s", f"map of {n1:,} items, chunksize=1",
                        "items/s", True),
                Measure("fixed_ms", "map: fixed cost (a map of 2 items)", "ms", False),
                Measure("per_item_us", f"map: cost per item (from {n:,} items)", "µs",
                        False),
            ],
            [
                ours("Pool(2).map", "maps", contender="Pool"),
                ours("PoolExecutor(2).map", "maps", contender="PoolExecutor"),
                peer("multiprocessing.Pool", "multiprocessing.Pool(2).map", "maps",
                     contender="mp.Pool"),
                peer("ProcessPoolExecutor", "ProcessPoolExecutor(2).map", "maps",
                     contender="PPE"),
            ],
            {"items": n, "items_chunk1": n1, "reps": 2 if cfg.quick else 5},
        )
    ]
