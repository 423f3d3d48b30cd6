"""Resources: nothing accumulates over many executors or many calls.

* Create / submit / shutdown cycles (200 of ``Executor(cores=1)``, 20 of
  ``PoolExecutor(max_workers=2)``) leave no extra file descriptor
  (``/proc/self/fd``), thread (``/proc/self/task``) or process (descendants of
  this process and processes started for it, as conftest finds them),
  compared with the state after a warm-up cycle (which may create what lives
  for the whole process, such as imported modules).
* A soak of 50,000 calls keeps the frontend's RSS (this process) and the
  runtime's RSS (every pympipool-runtime rank started for this process) flat
  after a warm-up: growth below a generous bound (``RSS_BOUND_MB``), the
  measured numbers printed (visible in ``ctest -V`` output).

Every number measured is printed through ``capsys.disabled()``, so that it
appears in the CTest log, pass or fail.  A cycle costs about 0.13 s with MPICH
and 0.45 s with Open MPI (whose mpiexec starts slowly), so the 200 cycles
take about 25 s and 90 s: the cycle tests extend conftest's per-test deadline
in proportion to their count.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from pympipool import Executor, PoolExecutor

from conftest import our_processes, wait_until

EXECUTOR_CYCLES = int(os.environ.get("PMP_RESOURCE_CYCLES", "200"))
POOL_CYCLES = int(os.environ.get("PMP_RESOURCE_POOL_CYCLES", "20"))
SOAK_CALLS = int(os.environ.get("PMP_SOAK_CALLS", "50000"))
SOAK_WARMUP = 5000
SOAK_WINDOW = 1000
RSS_BOUND_MB = 20.0
# Threads and descriptors of a shut-down executor may take a moment to go
# (the dispatcher and ZeroMQ's threads are joined in shutdown, but give the
# check some slack rather than racing them).
SETTLE = 10.0


def one(x=1):
    return x


def fds() -> dict:
    """This process's open descriptors and what they point to."""
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # the descriptor of the listing itself, already closed
    return out


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def snapshot():
    return fds(), threads(), our_processes()


def report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n[resources] {text}", flush=True)


def run_cycles(make, n: int, capsys, label: str) -> None:
    # conftest's deadline (SIGALRM, reset after the test) is sized for
    # ordinary tests; allow up to 2 s per cycle here.
    signal.alarm(60 + 2 * n)
    # Warm-up: whatever lives for the whole process (modules, caches) now
    # exists.
    with make() as ex:
        assert ex.submit(one, 7).result(timeout=60) == 7
    assert wait_until(lambda: not our_processes(), SETTLE)
    base_fds, base_threads, base_procs = snapshot()
    max_fds, max_threads = len(base_fds), base_threads
    start = time.monotonic()
    for i in range(n):
        with make() as ex:
            assert ex.submit(one, i).result(timeout=60) == i
        max_fds = max(max_fds, len(fds()))
        max_threads = max(max_threads, threads())
    elapsed = time.monotonic() - start

    state = {}

    def settled() -> bool:
        state["fds"], state["threads"], state["procs"] = snapshot()
        return (
            set(state["fds"]) <= set(base_fds)
            and state["threads"] <= base_threads
            and not (set(state["procs"]) - set(base_procs))
        )

    wait_until(settled, SETTLE, 0.1)
    report(
        capsys,
        f"{label}: {n} create/submit/shutdown cycles in {elapsed:.1f} s "
        f"({1000 * elapsed / n:.0f} ms each); fds {len(base_fds)} -> {len(state['fds'])} "
        f"(max {max_fds} after a shutdown); threads {base_threads} -> {state['threads']} "
        f"(max {max_threads}); processes {len(base_procs)} -> {len(state['procs'])}",
    )
    extra_fds = {fd: target for fd, target in state["fds"].items() if fd not in base_fds}
    assert not extra_fds, f"{label}: descriptors left open after {n} cycles: {extra_fds}"
    assert state["threads"] <= base_threads, (
        f"{label}: {state['threads'] - base_threads} extra thread(s) after {n} cycles: "
        f"{[t.name for t in threading.enumerate()]}"
    )
    extra = {p: c for p, c in state["procs"].items() if p not in base_procs}
    assert not extra, f"{label}: processes left after {n} cycles: {extra}"


def test_executor_cycles_leave_nothing(capsys):
    run_cycles(lambda: Executor(cores=1), EXECUTOR_CYCLES, capsys, "Executor(cores=1)")


def test_pool_executor_cycles_leave_nothing(capsys):
    run_cycles(
        lambda: PoolExecutor(max_workers=2), POOL_CYCLES, capsys, "PoolExecutor(max_workers=2)"
    )


def rss_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def runtime_ranks() -> list:
    """The pids of the pympipool-runtime processes started for this process."""
    ranks = []
    for pid, cmdline in our_processes().items():
        argv0 = cmdline.split(" ", 1)[0]
        if os.path.basename(argv0) == "pympipool-runtime":
            ranks.append(pid)
    return sorted(ranks)


def calls(ex, n: int) -> None:
    """n trivial calls, half by submit in windows, half by map."""
    done = 0
    while done < n:
        k = min(SOAK_WINDOW, n - done)
        if (done // SOAK_WINDOW) % 2 == 0:
            futures = [ex.submit(one, i) for i in range(k)]
            assert [f.result(timeout=60) for f in futures] == list(range(k))
        else:
            assert list(ex.map(one, range(k), timeout=60)) == list(range(k))
        done += k


def test_soak_keeps_memory_flat(capsys):
    with Executor(cores=1) as ex:
        calls(ex, SOAK_WARMUP)
        ranks = runtime_ranks()
        assert len(ranks) == 1, f"expected one runtime rank, found {our_processes()}"
        front0 = rss_kb()
        ranks0 = {pid: rss_kb(pid) for pid in ranks}
        start = time.monotonic()
        trace = []
        for step in range(5):
            calls(ex, SOAK_CALLS // 5)
            trace.append(
                f"{rss_kb() / 1024:.1f}/" + ",".join(f"{rss_kb(p) / 1024:.1f}" for p in ranks)
            )
        elapsed = time.monotonic() - start
        front1 = rss_kb()
        ranks1 = {pid: rss_kb(pid) for pid in ranks}
    front_growth = (front1 - front0) / 1024
    rank_growth = {pid: (ranks1[pid] - ranks0[pid]) / 1024 for pid in ranks}
    report(
        capsys,
        f"soak: {SOAK_CALLS} calls after {SOAK_WARMUP} warm-up calls in {elapsed:.1f} s "
        f"({SOAK_CALLS / elapsed:.0f} calls/s); frontend RSS {front0 / 1024:.1f} -> "
        f"{front1 / 1024:.1f} MB (growth {front_growth:+.2f} MB); runtime RSS "
        + ", ".join(
            f"rank pid {pid} {ranks0[pid] / 1024:.1f} -> {ranks1[pid] / 1024:.1f} MB "
            f"(growth {rank_growth[pid]:+.2f} MB)"
            for pid in ranks
        )
        + f"; after each fifth (frontend/ranks MB): {' '.join(trace)}",
    )
    assert front_growth < RSS_BOUND_MB, (
        f"the frontend's RSS grew by {front_growth:.1f} MB over {SOAK_CALLS} calls"
    )
    for pid, growth in rank_growth.items():
        assert growth < RSS_BOUND_MB, (
            f"runtime rank {pid}'s RSS grew by {growth:.1f} MB over {SOAK_CALLS} calls"
        )


def test_soak_parallel_ranks_flat(capsys):
    """A shorter soak of Executor(cores=2): every rank's RSS stays flat too
    (the non-leader rank receives each task over MPI, not ZeroMQ)."""
    cores = 2
    n = SOAK_CALLS // 5
    with Executor(cores=cores) as ex:

        def calls_all(k):
            return [f.result(timeout=60) for f in [ex.submit(one, i) for i in range(k)]]

        for _ in range(SOAK_WARMUP // SOAK_WINDOW):
            calls_all(SOAK_WINDOW)
        ranks = runtime_ranks()
        assert len(ranks) == cores, f"expected {cores} runtime ranks, found {our_processes()}"
        front0 = rss_kb()
        ranks0 = {pid: rss_kb(pid) for pid in ranks}
        start = time.monotonic()
        for _ in range(n // SOAK_WINDOW):
            results = calls_all(SOAK_WINDOW)
            assert results[5] == [5] * cores
        elapsed = time.monotonic() - start
        front1 = rss_kb()
        ranks1 = {pid: rss_kb(pid) for pid in ranks}
    front_growth = (front1 - front0) / 1024
    rank_growth = {pid: (ranks1[pid] - ranks0[pid]) / 1024 for pid in ranks}
    report(
        capsys,
        f"soak Executor(cores={cores}): {n} calls in {elapsed:.1f} s; frontend growth "
        f"{front_growth:+.2f} MB; ranks "
        + ", ".join(f"pid {pid} {g:+.2f} MB" for pid, g in rank_growth.items()),
    )
    assert front_growth < RSS_BOUND_MB
    for pid, growth in rank_growth.items():
        assert growth < RSS_BOUND_MB, f"runtime rank {pid}'s RSS grew by {growth:.1f} MB"
