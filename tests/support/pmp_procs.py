"""Processes of a test: which are ours, whether they are alive, waiting.

Shared by tests/python/conftest.py and tests/faults/conftest.py (tests/support
is on every suite's path: pyproject.toml for pytest, PYTHONPATH for the
scripts CTest runs).  Only /proc is read; nothing is changed.
"""

from __future__ import annotations

import os
import time
from typing import Dict, Set


def _read_stat(pid: int):
    """(state, ppid) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces.
    rest = data[data.rfind(")") + 2 :].split()
    return rest[0], int(rest[1])


def _cmdline(pid: int) -> list:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0")]
    except OSError:
        return []


def process_alive(pid: int) -> bool:
    """Whether pid exists and is not a zombie."""
    stat = _read_stat(pid)
    return stat is not None and stat[0] != "Z"


def our_processes(root: int | None = None) -> Dict[int, str]:
    """Live (non-zombie) descendants of ``root`` (default: this process) plus
    every process started with ``--frontend-pid root``, with their command
    lines."""
    root = os.getpid() if root is None else root
    parents: Dict[int, int] = {}
    states: Dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None:
                states[int(entry)] = stat[0]
                parents[int(entry)] = stat[1]
    found: Set[int] = set()
    frontier = {root}
    while frontier:
        children = {pid for pid, ppid in parents.items() if ppid in frontier}
        children -= found
        found |= children
        frontier = children
    marker = str(root)
    for pid in parents:
        args = _cmdline(pid)
        for i, arg in enumerate(args[:-1]):
            if arg == "--frontend-pid" and args[i + 1] == marker:
                found.add(pid)
    return {
        pid: " ".join(_cmdline(pid))
        for pid in found
        if states.get(pid) != "Z" and pid != root
    }


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
