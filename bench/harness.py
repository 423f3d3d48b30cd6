"""Processes of the benchmark runner: one child process per measurement, a
time budget for each, and nothing left behind.

Every measurement (one contender of one workload in one round) runs in a
fresh ``python3 bench/child.py`` process, in its own session, so that

* memory figures (RSS growth) belong to that contender alone,
* mpi4py's ``MPI_Init`` (an Open MPI singleton) never meets a
  ``fork()`` of multiprocessing or another MPI in the same process,
* a contender that exceeds its budget is killed with its whole process
  group, and the next one starts clean.

The runner makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``): a
process its child leaves behind (an ``orted``, an ``mpiexec`` whose parent
died, a multiprocessing worker) is re-parented to the runner instead of
init, so ``reap_orphans`` can wait for it and, after a grace period, kill
it.  Helpers that a child launches itself get ``PR_SET_PDEATHSIG``
(``pdeathsig``), so that they die with it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(BENCH_DIR, "child.py")

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Process names of MPI launchers and their daemons (one list, kept by the
#: test suite's stray-process check); every other descendant of an
#: executor's process is one of its workers.
sys.path.insert(0, os.path.join(BENCH_DIR, os.pardir, "tests", "tools"))
from check_strays import LAUNCHERS  # noqa: E402


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl failed")


def become_subreaper() -> None:
    """Orphans of our children become our children (see module docstring)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def pdeathsig() -> None:
    """``preexec_fn``: the new process gets SIGKILL when its parent dies."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# -- /proc


def _stat_fields(pid: int) -> Optional[List[str]]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    return data[data.rfind(")") + 2 :].split()


def parent_of(pid: int) -> Optional[int]:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def comm_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def cpu_seconds(pid: int) -> Optional[float]:
    """utime + stime of a process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    if not fields:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def children_of(pid: int) -> List[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and parent_of(int(name)) == pid:
            found.append(int(name))
    return found


def descendants(pid: int) -> List[int]:
    """Every process below ``pid``, parents before their children."""
    table: Dict[int, List[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ppid = parent_of(int(name))
            if ppid is not None:
                table.setdefault(ppid, []).append(int(name))
    out: List[int] = []
    todo = [pid]
    while todo:
        for child in table.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def status_kib(field: str, pid: str = "self") -> int:
    """A ``/proc/<pid>/status`` field in KiB (``VmRSS``, ``VmHWM``)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


# -- orphans


def reap_orphans(grace: float) -> List[str]:
    """Waits up to ``grace`` seconds for the processes re-parented to us to
    exit, then kills what is left (with its descendants).  Returns a line
    for each process that had to be killed."""
    me = os.getpid()
    deadline = time.monotonic() + grace
    killed: List[str] = []
    while True:
        orphans = children_of(me)
        for pid in orphans:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        orphans = [p for p in children_of(me) if _alive(p)]
        if not orphans:
            return killed
        if time.monotonic() >= deadline:
            for pid in orphans:
                for victim in [pid] + descendants(pid):
                    killed.append(f"{victim} {comm_of(victim)}")
                    try:
                        os.kill(victim, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + 5.0
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


# -- one measurement


class Outcome:
    """What one child process delivered: ``values`` (measure -> number) or
    ``reason`` why not (``"timeout"`` when it exceeded its budget)."""

    def __init__(self, values: Optional[Dict[str, float]], reason: Optional[str]):
        self.values = values
        self.reason = reason


_current: Optional[subprocess.Popen[bytes]] = None


def run_child(
    module: str, function: str, params: Dict[str, Any], budget: float, env: Dict[str, str]
) -> Outcome:
    """Runs ``workloads.<module>.<function>(**params)`` in a child process
    with ``budget`` seconds; its stdout and stderr are kept in a file and
    their tail becomes the reason of a failure."""
    global _current
    with tempfile.TemporaryDirectory(prefix="pmp-bench-") as tmp:
        out_path = os.path.join(tmp, "out.json")
        log_path = os.path.join(tmp, "log.txt")
        command = [sys.executable, CHILD, module, function, json.dumps(params), out_path]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=pdeathsig,
            )
            _current = proc
            try:
                proc.wait(timeout=budget)
                timed_out = False
            except subprocess.TimeoutExpired:
                kill_group(proc)
                timed_out = True
            finally:
                _current = None
        killed = reap_orphans(grace=10.0)
        if killed:
            print(f"bench: killed leftovers of {module}.{function}: {', '.join(killed)}",
                  file=sys.stderr)
        if timed_out:
            return Outcome(None, "timeout")
        if proc.returncode == 0 and os.path.exists(out_path):
            with open(out_path) as f:
                return Outcome(json.load(f), None)
        with open(log_path, "rb") as f:
            lines = f.read().decode(errors="replace").strip().splitlines()
        tail = lines[-1] if lines else f"exit status {proc.returncode}"
        return Outcome(None, tail.strip()[:200])


def kill_group(proc: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def kill_current() -> None:
    """On an interrupt of the runner: the running child goes too."""
    proc = _current
    if proc is not None and proc.poll() is None:
        kill_group(proc)


def cpu_split(root: int) -> Tuple[Dict[int, float], Dict[int, float]]:
    """CPU seconds of the descendants of ``root``: (workers, launchers)."""
    workers: Dict[int, float] = {}
    launchers: Dict[int, float] = {}
    for pid in descendants(root):
        seconds = cpu_seconds(pid)
        if seconds is None:
            continue
        (launchers if comm_of(pid) in LAUNCHERS else workers)[pid] = seconds
    return workers, launchers
