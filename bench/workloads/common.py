"""What every workload shares: the task functions and one adapter per
contender, so that a workload is written once for all of them.

The task functions live in this importable module (bench/ is on every
process's ``PYTHONPATH``), so each contender ships them the same way: by
reference.

``open_contender(name, workers)`` starts one of

=====================  ======================================================
``Executor``           ``pympipool.Executor(cores=workers)`` (one group of
                       ``workers`` ranks; every call runs on all of them)
``PoolExecutor``       ``pympipool.PoolExecutor(max_workers=workers)``
``Pool``               ``pympipool.Pool(max_workers=workers)``
``mp.Pool``            ``multiprocessing.Pool(workers)``
``PPE``                ``concurrent.futures.ProcessPoolExecutor(workers)``
``mpi4py``             ``mpi4py.futures.MPIPoolExecutor(max_workers=workers)``
                       (spawned from this process, an Open MPI singleton)
``raw``                the raw pyzmq + cloudpickle limit (``workloads.raw``)
``mpi053``             pympipool 0.5.3's design (``workloads.mpi053``)
=====================  ======================================================

and returns an ``Adapter``: ``submit`` / ``result`` (asynchronous calls),
``call`` (one blocking call: ``apply`` for the pools), ``map`` (the
interface's own map, as a list), ``close`` (the interface's orderly
shutdown: ``shutdown(wait=True)``, or ``close()`` + ``join()`` for pools)
and ``abort`` (drop what is queued: ``cancel_futures`` / ``terminate``).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, List, Optional

# -- task functions


def trivial() -> int:
    return 1


def identity(x: Any) -> Any:
    return x


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def block(flag: str, limit: float = 120.0) -> None:
    """Holds its worker until the file ``flag`` exists (or ``limit`` s)."""
    end = time.monotonic() + limit
    while not os.path.exists(flag) and time.monotonic() < end:
        time.sleep(0.01)


# -- adapters


class Adapter:
    def __init__(self, name: str, obj: Any, pool: bool) -> None:
        self.name = name
        self.obj = obj
        self.pool = pool  # multiprocessing.pool.Pool interface

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.pool:
            return self.obj.apply_async(fn, args)
        return self.obj.submit(fn, *args)

    def result(self, handle: Any) -> Any:
        return handle.get() if self.pool else handle.result()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.pool:
            return self.obj.apply(fn, args)
        return self.obj.submit(fn, *args).result()

    def map(self, fn: Callable[..., Any], items: Iterable[Any], chunksize: Optional[int]) -> List[Any]:
        if self.pool:
            return list(self.obj.map(fn, items, chunksize=chunksize))
        return list(self.obj.map(fn, items, chunksize=chunksize or 1))

    def close(self) -> None:
        if self.pool:
            self.obj.close()
            self.obj.join()
        else:
            self.obj.shutdown(wait=True)

    def abort(self) -> None:
        if self.pool:
            self.obj.terminate()
            self.obj.join()
        else:
            self.obj.shutdown(wait=True, cancel_futures=True)


def open_contender(name: str, workers: int) -> Adapter:
    """Starts contender ``name`` with ``workers`` workers (or ranks).
    Everything it needs is imported here, so that a start-up timing that
    wraps this call includes the contender's own imports (mpi4py's
    ``MPI_Init`` among them)."""
    if name in ("Executor", "PoolExecutor", "Pool"):
        import pympipool

        over = workers > (os.cpu_count() or 1)
        if name == "Executor":
            return Adapter(name, pympipool.Executor(cores=workers, oversubscribe=over), False)
        if name == "PoolExecutor":
            exe = pympipool.PoolExecutor(max_workers=workers, oversubscribe=over)
            return Adapter(name, exe, False)
        return Adapter(name, pympipool.Pool(max_workers=workers, oversubscribe=over), True)
    if name == "mp.Pool":
        import multiprocessing

        return Adapter(name, multiprocessing.Pool(workers), True)
    if name == "PPE":
        from concurrent.futures import ProcessPoolExecutor

        return Adapter(name, ProcessPoolExecutor(max_workers=workers), False)
    if name == "mpi4py":
        # The singleton has one slot; spawning more workers needs this.
        os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
        from mpi4py.futures import MPIPoolExecutor

        return Adapter(name, MPIPoolExecutor(max_workers=workers), False)
    if name == "raw":
        from .raw import RawPool

        return Adapter(name, RawPool(workers), False)
    if name == "mpi053":
        from .mpi053 import Mpi053

        return Adapter(name, Mpi053(workers), False)
    raise ValueError(f"unknown contender {name!r}")


def warm_up(adapter: Adapter, workers: int) -> None:
    """Every worker has started and answered: a few rounds of calls."""
    handles = [adapter.submit(identity, i) for i in range(4 * workers)]
    for h in handles:
        adapter.result(h)


def median(values: List[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start
