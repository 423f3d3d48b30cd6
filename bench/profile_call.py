"""Where one call's time goes: CPU and wake-ups per call, thread by thread.

    PYTHONPATH=<build>/python /usr/bin/python3 bench/profile_call.py [--calls N]
        [--interface pool_executor|executor|executor2] [--one-at-a-time]

Runs N trivial calls (all submitted, then collected; or one at a time with
``--one-at-a-time``) and reads, before and after, every thread of this
process and of the MPI job it started from ``/proc/<pid>/task/<tid>/``:
``stat`` (user + system CPU) and ``status`` (voluntary context switches,
i.e. the times the thread went to sleep and was woken).  Divided by N this
gives, per thread, the CPU each call costs and how many times each call
makes it sleep and wake up.  The threads carry names (``pympipool-io``,
``pympipool-disp``; ``ZMQbg/IO/0`` is libzmq's own I/O thread,
``pympipool-runti`` a rank), so the table reads as the path of a call.
Compare only figures of one run: the machine's noise moves all of them.
"""

from __future__ import annotations

import argparse
import glob
import os
import time
from typing import Dict, List, Tuple

_TICK = os.sysconf("SC_CLK_TCK")

Key = Tuple[int, int, str]  # pid, tid, thread name


def trivial(x: int) -> int:
    return x


def _threads(pid: int) -> Dict[Key, Tuple[float, int]]:
    """(cpu seconds, voluntary context switches) of every thread of pid."""
    out: Dict[Key, Tuple[float, int]] = {}
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(task + "/stat") as f:
                stat = f.read()
            with open(task + "/status") as f:
                status = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICK
        switches = 0
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                switches = int(line.split()[1])
        out[(pid, int(task.rsplit("/", 1)[1]), name)] = (cpu, switches)
    return out


def _descendants(pid: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.split("/")[2]))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _snapshot() -> Dict[Key, Tuple[float, int]]:
    me = os.getpid()
    out = _threads(me)
    for pid in _descendants(me):
        out.update(_threads(pid))
    return out


def _make(kind: str):  # type: ignore[no-untyped-def]
    import pympipool

    if kind == "pool_executor":
        return pympipool.PoolExecutor(max_workers=2)
    if kind == "executor2":
        return pympipool.Executor(cores=2)
    return pympipool.Executor(cores=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument(
        "--interface", default="pool_executor", choices=["pool_executor", "executor", "executor2"]
    )
    parser.add_argument("--one-at-a-time", action="store_true")
    args = parser.parse_args()
    n = args.calls
    with _make(args.interface) as exe:
        exe.submit(trivial, 0).result()
        time.sleep(0.5)  # start-up is over
        before = _snapshot()
        start = time.perf_counter()
        if args.one_at_a_time:
            for i in range(n):
                exe.submit(trivial, i).result()
        else:
            futures = [exe.submit(trivial, i) for i in range(n)]
            for future in futures:
                future.result()
        took = time.perf_counter() - start
        after = _snapshot()
    mode = "one at a time" if args.one_at_a_time else "submitted, then collected"
    print(f"{args.interface}: {n} trivial calls, {mode}: {n / took:,.0f} calls/s, "
          f"{took / n * 1e6:.1f} us per call (wall)")
    print()
    print("| process | thread | CPU µs per call | sleeps per call |")
    print("|---|---|--:|--:|")
    me = os.getpid()
    total_cpu = total_sleeps = 0.0
    for key in sorted(after, key=lambda k: (k[0] != me, k[0], k[1])):
        cpu0, sw0 = before.get(key, (0.0, 0))
        cpu1, sw1 = after[key]
        cpu, sleeps = (cpu1 - cpu0) / n * 1e6, (sw1 - sw0) / n
        if cpu < 0.5 and sleeps < 0.05 and not key[2].startswith("pympipool"):
            continue  # an idle helper thread (libzmq's reaper, ...); ours always show
        total_cpu += cpu
        total_sleeps += sleeps
        who = "caller" if key[0] == me else f"pid {key[0]}"
        print(f"| {who} | {key[2]} | {cpu:.1f} | {sleeps:.2f} |")
    print(f"| all | | {total_cpu:.1f} | {total_sleeps:.2f} |")


if __name__ == "__main__":
    main()
