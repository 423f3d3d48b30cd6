"""Side-by-side timings of pympipool.Executor and its peers, in one run.

    PYTHONPATH=<build>/python /usr/bin/python3 bench/bench_executor.py [--calls N]

Measures, for each executor that is available here:
  start   construction to the first result of a trivial call (2 workers/ranks)
  stop    shutdown(wait=True) of an idle executor
  rtt     median round trip of a trivial call, submitted one at a time (1 worker)
  big     round trip of a 128 MiB numpy array (1 worker)
Peers: concurrent.futures.ProcessPoolExecutor (multiprocessing) and, where
mpi4py is importable, mpi4py.futures.MPIPoolExecutor.
"""
import argparse
import concurrent.futures
import os
import statistics
import sys
import time

import numpy as np


def trivial():
    return 1


def echo(a):
    return a


def _pympipool(workers):
    from pympipool import Executor

    return Executor(cores=workers)


def _process_pool(workers):
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers)


def _mpi4py(workers):
    # MPIPoolExecutor spawns its workers from a singleton; Open MPI refuses to
    # spawn more processes than the singleton's one slot unless told it may.
    os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    from mpi4py.futures import MPIPoolExecutor

    return MPIPoolExecutor(max_workers=workers)


def measure(factory, calls, big):
    row = {}
    t0 = time.perf_counter()
    exe = factory(2)
    exe.submit(trivial).result()
    row["start"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    exe.shutdown(wait=True)
    row["stop"] = time.perf_counter() - t0

    exe = factory(1)
    exe.submit(trivial).result()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        exe.submit(trivial).result()
        samples.append(time.perf_counter() - t0)
    row["rtt"] = statistics.median(samples)
    t0 = time.perf_counter()
    out = exe.submit(echo, big).result()
    row["big"] = time.perf_counter() - t0
    assert np.array_equal(out, big)
    exe.shutdown(wait=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    big = np.arange(128 * 2**20 // 8, dtype=np.float64)
    peers = [
        ("pympipool.Executor", _pympipool),
        ("ProcessPoolExecutor", _process_pool),
        ("mpi4py.futures", _mpi4py),
    ]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.calls} calls")
    print(f"{'executor':22} {'start [s]':>10} {'stop [s]':>10} {'rtt [us]':>10} {'128MiB [s]':>11}")
    for name, factory in peers:
        try:
            row = measure(factory, args.calls, big)
        except Exception as exc:  # a peer that cannot run here is reported, not fatal
            print(f"{name:22} unavailable: {type(exc).__name__}: {exc}".splitlines()[0])
            continue
        print(
            f"{name:22} {row['start']:10.3f} {row['stop']:10.3f} "
            f"{row['rtt'] * 1e6:10.1f} {row['big']:11.3f}"
        )


if __name__ == "__main__":
    main()
