"""The workloads of the benchmark runner (bench/run.py), in table order.

A workload is a set of measures (one table row per measure and one of our
interfaces) and the contenders that produce them: ours (pympipool's
interfaces), peers (multiprocessing.Pool, ProcessPoolExecutor,
mpi4py.futures) and a limit (raw pyzmq + cloudpickle, or pympipool 0.5.3's
design).  Each contender is one function of the workload's module, run in a
child process of its own (bench/child.py) once per round; it returns one
value per measure.  The modules import nothing heavy at the top, so the
runner can read these descriptions without starting anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

#: Table columns of the peers and the limit, in order.
COLUMNS = ["multiprocessing.Pool", "ProcessPoolExecutor", "mpi4py.futures", "limit"]


@dataclass(frozen=True)
class Config:
    """What the command line sets for every workload."""

    quick: bool = False
    imap_n: int = 1_000_000
    budget: float = 20.0


@dataclass(frozen=True)
class Measure:
    key: str
    title: str
    unit: str
    higher_is_better: bool


@dataclass(frozen=True)
class Contender:
    """``label`` names the call measured; ``kind`` is ``ours``, ``peer`` or
    ``limit``; ``column`` is the table column of a peer or limit (one of
    COLUMNS); ``function`` runs in the child with the workload's params
    updated by ``params``; ``measures`` are the keys of the measures it
    produces (``None``: all of its workload's)."""

    label: str
    kind: str
    function: str
    column: Optional[str] = None
    params: Dict[str, Any] = field(default_factory=dict)
    measures: Optional[Tuple[str, ...]] = None

    def produces(self, key: str) -> bool:
        return self.measures is None or key in self.measures


@dataclass(frozen=True)
class Workload:
    name: str
    module: str
    doc: str
    measures: List[Measure]
    contenders: List[Contender]
    params: Dict[str, Any]
    budget: float = 120.0
    max_rounds: Optional[int] = None  # slow and steady workloads: fewer rounds


def ours(label: str, function: str, measures: Optional[Tuple[str, ...]] = None,
         **params: Any) -> Contender:
    return Contender(label, "ours", function, None, params, measures)


def peer(column: str, label: str, function: str, measures: Optional[Tuple[str, ...]] = None,
         **params: Any) -> Contender:
    kind = "limit" if column == "limit" else "peer"
    return Contender(label, kind, function, column, params, measures)


def all_workloads(cfg: Config) -> List[Workload]:
    from . import buffers, calls, flex, frontend, lazy, lifecycle, maps, ranks

    found: List[Workload] = []
    for module in (calls, maps, lazy, buffers, lifecycle, flex, frontend, ranks):
        found.extend(module.workloads(cfg))
    return found
