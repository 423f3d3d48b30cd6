"""The benchmark runner (bench/run.py) keeps working: a quick run of two
cheap workloads prints the Markdown table and writes the JSON document with
the keys docs/performance.md describes.  The full run is the CTest test
bench.all (label bench), which the default test run leaves out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

RUN = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "bench", "run.py")


def test_quick_run_writes_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, RUN, "--quick", "--only", "latency,mpi-call", "--json", str(out)],
        capture_output=True, text=True, timeout=100, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| measure | unit | ours | value |" in proc.stdout
    doc = json.loads(out.read_text())
    assert set(doc) == {"meta", "workloads", "rows"}
    meta = doc["meta"]
    for key in ("date", "machine", "python", "pympipool", "mpi4py", "rounds", "quick",
                "duration_s", "loadavg"):
        assert key in meta, key
    assert meta["quick"] is True and meta["rounds"] == 1
    assert meta["pympipool"]["mpi"] in ("mpich", "openmpi")
    assert set(doc["workloads"]) == {"latency", "mpi-call"}
    latency = doc["workloads"]["latency"]
    assert set(latency) == {"doc", "params", "budget_s", "rounds", "measures", "contenders"}
    assert set(latency["measures"]) == {"rtt_us"}
    for label, entry in latency["contenders"].items():
        assert {"kind", "column", "status", "reason", "samples", "median"} <= set(entry)
        if entry["kind"] == "ours":  # ours must run; a missing peer is n/a
            assert entry["status"] == "ok", (label, entry["reason"])
            assert entry["median"]["rtt_us"] > 0
    rows = [r for r in doc["rows"] if r["workload"] == "latency"]
    assert {r["ours"] for r in rows} == {
        "PoolExecutor(1).submit().result()",
        "Executor(cores=1).submit().result()",
        "Pool(1).apply",
    }
    for r in doc["rows"]:
        assert {"workload", "measure", "title", "unit", "higher_is_better", "ours", "value",
                "peers", "best_peer", "ratio_best_peer", "ratio_limit"} <= set(r)
    (call,) = [r for r in doc["rows"] if r["workload"] == "mpi-call"]
    assert call["ours"] == "Executor(cores=2).submit().result()" and call["value"] > 0


PROFILE = os.path.join(os.path.dirname(RUN), "profile_call.py")


def test_profile_call_names_the_threads_of_a_call(tmp_path):
    proc = subprocess.run(
        [sys.executable, PROFILE, "--calls", "3000", "--interface", "executor"],
        capture_output=True, text=True, timeout=100, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "executor: 3000 trivial calls, submitted, then collected" in proc.stdout
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| ")]
    threads = {cells[1].strip() for cells in rows[1:]}
    # the frontend's I/O thread and the dispatcher carry their names; a rank
    # shows up as the runtime; the last row adds everything up
    assert {"pympipool-io", "pympipool-disp", "pympipool-runti"} <= threads, proc.stdout
    total = [cells for cells in rows if cells[0].strip() == "all"]
    assert len(total) == 1 and float(total[0][2]) > 0
