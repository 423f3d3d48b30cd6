"""Large lazy maps and many pending calls: what a caller pays in time and
memory before any work is done.

``lazy``
    ``Pool(2).imap(identity, range(N))``: the time until ``imap``
    returns its iterator, and the peak RSS growth of the caller's process
    (``VmHWM``, reset through ``/proc/self/clear_refs`` just before the
    call) until the first result has arrived.  N is 1,000,000
    (``--imap-n``), and N / 10.  multiprocessing's ``imap`` is lazy: it
    returns at once and feeds the workers from a thread.  Each contender
    has the time budget of ``--budget`` (20 s) a round; one that exceeds it
    is killed, shows ``n/a (>20 s)`` and is not run again.
``pending``
    Memory per pending call: a pool of 1 worker is held by a blocked call,
    then 100,000 calls are queued behind it (``submit`` / ``apply_async``);
    RSS growth of the caller's process divided by the calls, in bytes (the
    futures the caller keeps included), and the time of one queued submit.
    Ours: ``PoolExecutor(1)``, ``Pool(1)``; peers: ``ProcessPoolExecutor(1)``,
    ``multiprocessing.Pool(1)``.

Both run at most 3 rounds: their figures hardly vary, and ours take long.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from typing import Dict, List

from harness import status_kib

from . import Config, Measure, Workload, ours, peer
from .common import block, identity, open_contender, warm_up


def imap(contender: str, items: int, key: str) -> Dict[str, float]:
    workers = 2
    adapter = open_contender(contender, workers)
    try:
        warm_up(adapter, workers)
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        rss0 = status_kib("VmRSS")
        start = time.perf_counter()
        iterator = adapter.obj.imap(identity, range(items))
        returned = time.perf_counter() - start
        assert next(iterator) == 0
        first = time.perf_counter() - start
        peak = status_kib("VmHWM")
    finally:
        adapter.abort()
    return {
        f"{key}_return_ms": returned * 1e3,
        f"{key}_first_ms": first * 1e3,
        f"{key}_rss_mb": (peak - rss0) / 1024,
    }


def pending(contender: str, calls: int) -> Dict[str, float]:
    adapter = open_contender(contender, 1)
    with tempfile.TemporaryDirectory(prefix="pmp-bench-") as tmp:
        flag = os.path.join(tmp, "go")
        try:
            warm_up(adapter, 1)
            adapter.submit(block, flag)
            time.sleep(0.3)  # the blocker runs
            gc.collect()
            rss0 = status_kib("VmRSS")
            start = time.perf_counter()
            handles = [adapter.submit(identity, i) for i in range(calls)]
            elapsed = time.perf_counter() - start
            gc.collect()
            rss1 = status_kib("VmRSS")
            assert len(handles) == calls
        finally:
            open(flag, "w").close()
            adapter.abort()
    return {
        "pending_bytes": (rss1 - rss0) * 1024 / calls,
        "queued_submit_us": elapsed / calls * 1e6,
    }


def workloads(cfg: Config) -> List[Workload]:
    n = 10_000 if cfg.quick else cfg.imap_n
    small = n // 10
    calls = 2_000 if cfg.quick else 100_000
    budget = cfg.budget

    def pair(items: int, key: str) -> list:
        keys = (f"{key}_return_ms", f"{key}_rss_mb")
        return [
            ours("Pool(2).imap", "imap", keys, contender="Pool", items=items, key=key),
            peer("multiprocessing.Pool", "multiprocessing.Pool(2).imap", "imap", keys,
                 contender="mp.Pool", items=items, key=key),
        ]

    return [
        Workload(
            "lazy", __name__, "time and memory until a large imap returns",
            [
                Measure("big_return_ms", f"imap(range({n:,})): until it returns", "ms", False),
                Measure("big_rss_mb", f"imap(range({n:,})): peak RSS growth", "MB", False),
                Measure("small_return_ms", f"imap(range({small:,})): until it returns", "ms",
                        False),
                Measure("small_rss_mb", f"imap(range({small:,})): peak RSS growth", "MB",
                        False),
            ],
            pair(n, "big") + pair(small, "small"),
            {},
            budget=budget,
            max_rounds=3,
        ),
        Workload(
            "pending", __name__, "memory per queued call behind a blocked worker",
            [
                Measure("pending_bytes", f"{calls:,} calls queued behind a blocked worker: "
                        "memory per call", "bytes", False),
                Measure("queued_submit_us", "... time of one queued submit", "µs", False),
            ],
            [
                ours("PoolExecutor(1).submit", "pending", contender="PoolExecutor"),
                ours("Pool(1).apply_async", "pending", contender="Pool"),
                peer("multiprocessing.Pool", "multiprocessing.Pool(1).apply_async", "pending",
                     contender="mp.Pool"),
                peer("ProcessPoolExecutor", "ProcessPoolExecutor(1).submit", "pending",
                     contender="PPE"),
            ],
            {"calls": calls},
            max_rounds=3,
        ),
    ]
