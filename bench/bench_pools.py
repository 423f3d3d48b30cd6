"""Side-by-side timings of pympipool's pools and their peers, in one run.

    PYTHONPATH=<build>/python /usr/bin/python3 bench/bench_pools.py [--tasks N] [--workers W]

Measures, with W workers (default 2) each:
  sleep      4 calls of time.sleep(0.5) submitted at once (ideal: 2 x 0.5 s = 1 s
             with 2 workers: every worker does work, nothing waits on a broker)
  map        map(identity, range(N)) with the interface's default chunksize
  map/c1     the same with chunksize=1 (one task per item)
  submit     N x submit(identity, i), then every result
All timings exclude start-up (each pool first answers one call).  Peers:
concurrent.futures.ProcessPoolExecutor and multiprocessing.Pool.
"""

import argparse
import concurrent.futures
import multiprocessing
import time


def identity(x):
    return x


def nap(seconds):
    time.sleep(seconds)
    return seconds


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _executor_row(exe, tasks):
    exe.submit(identity, 0).result()  # started
    row = {}
    row["sleep"] = _timed(
        lambda: [f.result() for f in [exe.submit(nap, 0.5) for _ in range(4)]]
    )
    row["map"] = _timed(lambda: list(exe.map(identity, range(tasks))))
    row["map/c1"] = _timed(lambda: list(exe.map(identity, range(tasks), chunksize=1)))
    row["submit"] = _timed(
        lambda: [f.result() for f in [exe.submit(identity, i) for i in range(tasks)]]
    )
    exe.shutdown(wait=True)
    return row


def _pool_row(pool, tasks):
    pool.apply(identity, (0,))  # started
    row = {}
    row["sleep"] = _timed(
        lambda: [r.get() for r in [pool.apply_async(nap, (0.5,)) for _ in range(4)]]
    )
    row["map"] = _timed(lambda: pool.map(identity, range(tasks)))
    row["map/c1"] = _timed(lambda: pool.map(identity, range(tasks), chunksize=1))
    row["submit"] = _timed(
        lambda: [r.get() for r in [pool.apply_async(identity, (i,)) for i in range(tasks)]]
    )
    pool.terminate()
    pool.join()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    n, w = args.tasks, args.workers

    import pympipool

    rows = {}
    rows["pympipool.PoolExecutor"] = _executor_row(
        pympipool.PoolExecutor(max_workers=w, oversubscribe=w > 2), n
    )
    rows["ProcessPoolExecutor"] = _executor_row(
        concurrent.futures.ProcessPoolExecutor(max_workers=w), n
    )
    rows["pympipool.Pool"] = _pool_row(pympipool.Pool(max_workers=w, oversubscribe=w > 2), n)
    rows["multiprocessing.Pool"] = _pool_row(multiprocessing.Pool(processes=w), n)

    columns = ["sleep", "map", "map/c1", "submit"]
    print(f"{w} workers, {n} tiny tasks; seconds (lower is better); "
          f"submit = apply_async for the Pools")
    print(f"{'':24}" + "".join(f"{c:>10}" for c in columns) + f"{'tasks/s (map)':>16}")
    for name, row in rows.items():
        cells = "".join(f"{row[c]:>10.3f}" for c in columns)
        print(f"{name:24}{cells}{n / row['map']:>16.0f}")


if __name__ == "__main__":
    main()
