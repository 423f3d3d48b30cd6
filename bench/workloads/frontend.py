"""The frontend library at scale, without Python or MPI in the measured path.

``frontend-scale``
    The C program ``bench/frontend_scale`` (bench/frontend_scale.c, built
    with the package in ``<build>/bench/``) drives one executor of the
    frontend library (``pmp_executor.h``, launch = 0) with 10, 100 and
    1,000 simulated groups: fake group leaders, ZeroMQ DEALER sockets in a
    thread of the same process that authenticate as the runtime does, say
    HELLO and answer every TASK at once (a pack of replies for a pack of
    tasks).  One caller thread keeps 2 × groups × depth tasks of 8 bytes in
    flight through ``pmp_executor_submit_many`` (64 a call) and
    ``pmp_executor_wait_many``, with a
    pipeline depth of 4 and of 64 (a busy group is refilled at half its
    window, so depth 64 sends about 32 tasks a message); 500,000 tasks are
    timed (50,000 with ``--quick``) after a warm-up.  Measures per depth and
    number of groups: tasks/s, wall ns per task, and CPU ns per task of the
    frontend's I/O thread (``pympipool-io``).  The fakes share the machine with the
    frontend (the program prints how much CPU each side used).  The target
    is ≥ 500,000 tasks/s at 1,000 groups with a cost per task flat from 10
    to 1,000 groups.  At most 3 rounds.  The program is found next to the
    package of the build measured (``<build>/python`` → ``<build>/bench``)
    or named by ``PYMPIPOOL_FRONTEND_SCALE``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Dict, List, Tuple

from . import Config, Measure, Workload, ours

GROUPS = (10, 100, 1000)
DEPTHS = (4, 64)


def _program() -> str:
    named = os.environ.get("PYMPIPOOL_FRONTEND_SCALE")
    if named:
        return named
    from pympipool import _config  # only paths: starts nothing

    package = os.path.dirname(os.path.abspath(_config.__file__))
    build = os.path.dirname(os.path.dirname(package))  # <build>/python/pympipool
    path = os.path.join(build, "bench", "frontend_scale")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no {path} (run from a build tree, or set "
                           "PYMPIPOOL_FRONTEND_SCALE to the program)")
    return path


def frontend_scale(groups: List[int], tasks: int, depth: int) -> Dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pmp-bench-scale-") as tmp:
        out = os.path.join(tmp, "scale.json")
        subprocess.run([_program(), "--groups", ",".join(map(str, groups)), "--tasks", str(tasks),
                        "--depth", str(depth), "--json", out, "--quiet"],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        with open(out) as f:
            doc = json.load(f)
    values: Dict[str, float] = {}
    for r in doc["results"]:
        g = r["groups"]
        values[f"tasks_per_s_{g}_d{depth}"] = r["tasks_per_s"]
        values[f"ns_per_task_{g}_d{depth}"] = r["ns_per_task"]
        values[f"io_ns_{g}_d{depth}"] = r["cpu_ns_per_task"]["io"]
    return values


def _keys(depth: int) -> Tuple[str, ...]:
    return tuple(f"{k}_{g}_d{depth}" for g in GROUPS for k in ("tasks_per_s", "ns_per_task",
                                                                "io_ns"))


def workloads(cfg: Config) -> List[Workload]:
    tasks = 50_000 if cfg.quick else 500_000
    measures = []
    for d in DEPTHS:
        for g in GROUPS:
            measures += [
                Measure(f"tasks_per_s_{g}_d{d}",
                        f"Frontend at scale: {tasks:,} tasks, {g:,} fake groups, depth {d}",
                        "tasks/s", True),
                Measure(f"ns_per_task_{g}_d{d}", f"... wall time per task, {g:,} groups", "ns",
                        False),
                Measure(f"io_ns_{g}_d{d}", f"... CPU of the I/O thread per task, {g:,} groups",
                        "ns", False),
            ]
    return [
        Workload(
            "frontend-scale", __name__,
            "the frontend library (C) with 10, 100, 1,000 fake groups, depth 4 and 64: tasks/s, "
            "ns per task",
            measures,
            [ours(f"pmp_executor_submit_many / wait_many (C), depth {d}", "frontend_scale",
                  _keys(d), depth=d) for d in DEPTHS],
            {"groups": list(GROUPS), "tasks": tasks, "depth": 4},
            budget=400.0,  # 2 x 3 x 500,000 tasks take 20 to 80 s, more on a busy machine
            max_rounds=3,
        ),
    ]
