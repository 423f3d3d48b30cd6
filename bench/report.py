"""Results of the benchmark runner: medians, ratios, the Markdown table and
the JSON document.

One table row per measure and per contender of ours: our median, each
peer's median in its column (multiprocessing.Pool, ProcessPoolExecutor,
mpi4py.futures), the limit's, and two ratios: ours / the best peer and ours
/ the limit.  The best peer is the highest value of a measure where higher
is better (↑: rates) and the lowest where lower is better (↓: times,
memory, CPU); so a ratio above 1 is ours ahead for ↑ and behind for ↓.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Optional

from workloads import COLUMNS, Contender, Workload


class Tally:
    """Every round's values of one contender of one workload."""

    def __init__(self, contender: Contender) -> None:
        self.contender = contender
        self.samples: Dict[str, List[float]] = {}
        self.reason: Optional[str] = None  # why it stopped being measured

    def add(self, values: Dict[str, float]) -> None:
        for key, value in values.items():
            self.samples.setdefault(key, []).append(float(value))

    def median(self, key: str) -> Optional[float]:
        values = self.samples.get(key)
        return statistics.median(values) if values else None

    def as_json(self) -> Dict[str, Any]:
        c = self.contender
        return {
            "kind": c.kind,
            "column": c.column,
            "function": c.function,
            "params": c.params,
            "status": "ok" if self.samples else "n/a",
            "reason": self.reason,
            "samples": self.samples,
            "median": {k: self.median(k) for k in self.samples},
        }


def _ratio(ours: Optional[float], other: Optional[float]) -> Optional[float]:
    if ours is None or other is None or other == 0:
        return None
    return ours / other


def rows(workload: Workload, tallies: List[Tally]) -> List[Dict[str, Any]]:
    found = []
    for m in workload.measures:
        relevant = [t for t in tallies if t.contender.produces(m.key)]
        columns: Dict[str, Dict[str, Any]] = {}
        for t in relevant:
            if t.contender.kind != "ours":
                columns[t.contender.column or "?"] = {
                    "label": t.contender.label, "value": t.median(m.key), "reason": t.reason}
        peers = [v["value"] for k, v in columns.items() if k != "limit" and v["value"] is not None]
        best = (max if m.higher_is_better else min)(peers) if peers else None
        limit = columns.get("limit", {}).get("value")
        for t in relevant:
            if t.contender.kind != "ours":
                continue
            value = t.median(m.key)
            found.append({
                "workload": workload.name,
                "measure": m.key,
                "title": m.title,
                "unit": m.unit,
                "higher_is_better": m.higher_is_better,
                "ours": t.contender.label,
                "value": value,
                "reason": t.reason if value is None else None,
                "peers": columns,
                "best_peer": best,
                "ratio_best_peer": _ratio(value, best),
                "ratio_limit": _ratio(value, limit),
            })
    return found


def number(value: Optional[float]) -> str:
    """Three significant digits (at least the integer part), never in
    scientific notation; thousands separated."""
    if value is None:
        return "—"
    v = abs(value)
    if v >= 100:
        return f"{value:,.0f}"
    if v == 0:
        return "0"
    digits = 2 - math.floor(math.log10(v))
    return f"{value:.{digits}f}"


def ratio(value: Optional[float]) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _cell(value: Optional[float], reason: Optional[str], budget: float) -> str:
    if value is not None:
        return number(value)
    if reason == "timeout":
        return f"n/a (>{budget:g} s)"
    return "n/a" if reason else "—"


def markdown(all_rows: List[Dict[str, Any]], budgets: Dict[str, float]) -> str:
    head = ["measure", "unit", "ours", "value"] + COLUMNS + ["ours ÷ best peer", "ours ÷ limit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 4 + "--:|" * (len(head) - 4)]
    previous = None
    for r in all_rows:
        budget = budgets[r["workload"]]
        title = r["title"] if (r["workload"], r["measure"]) != previous else ""
        previous = (r["workload"], r["measure"])
        arrow = "↑" if r["higher_is_better"] else "↓"
        cells = [title, f"{r['unit']} {arrow}", f"`{r['ours']}`",
                 "**" + _cell(r["value"], r["reason"], budget) + "**"]
        for column in COLUMNS:
            p = r["peers"].get(column)
            cells.append(_cell(p["value"], p["reason"], budget) if p else "")
        for value in (r["ratio_best_peer"], r["ratio_limit"]):
            cells.append(ratio(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def limits(workloads: List[Workload]) -> List[str]:
    """The legend of the limit column: one line per workload that has one."""
    return [f"{w.name}: {c.label}" for w in workloads for c in w.contenders
            if c.kind == "limit"]


def failures(tallies: Dict[str, List[Tally]], budgets: Dict[str, float]) -> List[str]:
    out = []
    for name, ts in tallies.items():
        for t in ts:
            if t.reason:
                items = t.contender.params.get("items")
                label = t.contender.label + (f" ({items:,} items)" if items else "")
                reason = (f"exceeded its budget of {budgets[name]:g} s"
                          if t.reason == "timeout" else t.reason)
                rounds = len(next(iter(t.samples.values()), []))
                after = f" (after {rounds} good round(s))" if rounds else ""
                out.append(f"{name}: {label}: {reason}{after}")
    return out
