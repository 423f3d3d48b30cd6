"""The benchmark runner of pympipool: every workload, ours against the peers
(multiprocessing.Pool, concurrent.futures.ProcessPoolExecutor,
mpi4py.futures) and a limit, in one run.

    PYTHONPATH=build-mpich/python /usr/bin/python3 bench/run.py [--rounds 5] [--quick]
        [--only WORKLOAD ...] [--json bench-results.json] [--build DIR]
        [--build-mpi mpich|openmpi] [--imap-n N] [--budget S]

Workloads (bench/workloads/*.py, whose docstrings say exactly what each
measures): tiny, latency, sleep, mpi-call (calls.py), maps (maps.py), lazy,
pending (lazy.py), buffers (buffers.py), start-stop, idle (lifecycle.py),
frontend-scale (frontend.py: the C program bench/frontend_scale),
ranks-scale (ranks.py: start, shutdown and memory per rank from 1 to 64
ranks).

Interleaved rounds: for each workload, every round runs each contender in
turn (starting one further along each round), so that slow phases of the
machine hit all of them alike; the table shows the median over the rounds.
Each measurement runs in a process of its own (bench/harness.py) and is
killed when it exceeds the workload's time budget; a contender that fails or
times out is shown as n/a and not run again.  Nothing is left running.

Prints a Markdown table (ours ÷ best peer, ours ÷ limit; ↑ higher is
better, ↓ lower is better) and writes every sample to the JSON file.
CTest runs it as ``bench.all`` (label ``bench``, not part of the default
test run): ``ctest --test-dir build-mpich -L bench -V``.  See
docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import sys
import time
from typing import Any, Dict, List

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

import harness  # noqa: E402
import report  # noqa: E402
from workloads import Config, Workload, all_workloads  # noqa: E402


def _parse(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, help="rounds per workload (default 5, --quick 1)")
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes and one round: a smoke test (under a minute)")
    p.add_argument("--only", nargs="+", metavar="WORKLOAD",
                   help="run only these workloads (names or comma-separated lists)")
    p.add_argument("--json", default="bench-results.json",
                   help="where to write the results (default: ./bench-results.json)")
    p.add_argument("--build", help="a build directory: use its package (DIR/python)")
    p.add_argument("--build-mpi", choices=["mpich", "openmpi"],
                   help="the MPI of the measured build, checked against the package")
    p.add_argument("--imap-n", type=int, default=1_000_000,
                   help="items of the large imap (default 1,000,000)")
    p.add_argument("--budget", type=float, default=20.0,
                   help="seconds a lazy-map contender may take a round (default 20)")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def _environment(args: argparse.Namespace) -> Dict[str, str]:
    env = dict(os.environ)
    paths = [BENCH_DIR]
    if args.build:
        paths.insert(0, os.path.join(os.path.abspath(args.build), "python"))
        sys.path.insert(0, paths[0])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if os.geteuid() == 0:  # Open MPI refuses root without these
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def _first(path: str, prefix: str, default: str = "?") -> str:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split("=" if "=" in prefix else ":", 1)[1].strip().strip('"')
    except OSError:
        pass
    return default


def _meta(args: argparse.Namespace) -> Dict[str, Any]:
    from pympipool import _config as c  # only paths and versions: starts nothing

    mib = int(_first("/proc/meminfo", "MemTotal:", "0").split()[0]) // 1024
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _first("/proc/cpuinfo", "model name"),
            "memory_mib": mib,
            "os": _first("/etc/os-release", "PRETTY_NAME="),
            "kernel": platform.release(),
        },
        "python": sys.version.split()[0],
        "pympipool": {"version": c.VERSION, "mpi": c.MPI_FLAVOUR, "mpi_version": c.RUNTIME_MPI,
                      "runtime": c.RUNTIME, "mpiexec": c.MPIEXEC,
                      "package": os.path.dirname(os.path.abspath(c.__file__))},
        "mpi4py": {"version": c.MPI4PY_VERSION, "mpi": c.MPI4PY_MPI},
        "libraries": _versions(),
        "loadavg": os.getloadavg(),
        "rounds": args.rounds,
        "quick": args.quick,
        "argv": sys.argv[1:],
    }


def _versions() -> Dict[str, str]:
    import importlib

    found = {}
    for name in ("zmq", "cloudpickle", "numpy"):
        try:
            found[name] = importlib.import_module(name).__version__
        except ImportError:
            found[name] = "missing"
    if found["zmq"] != "missing":
        import zmq

        found["libzmq"] = zmq.zmq_version()
    return found


def _select(workloads: List[Workload], only: List[str]) -> List[Workload]:
    if not only:
        return workloads
    names = [n for item in only for n in item.split(",") if n]
    known = {w.name for w in workloads}
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"bench: unknown workload(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [w for w in workloads if w.name in names]


def _measure(w: Workload, rounds: int, env: Dict[str, str]) -> List[report.Tally]:
    tallies = [report.Tally(c) for c in w.contenders]
    rounds = min(rounds, w.max_rounds or rounds)
    for r in range(rounds):
        shift = r % len(tallies)
        for t in tallies[shift:] + tallies[:shift]:
            if t.reason:
                continue
            params = dict(w.params, **t.contender.params)
            start = time.monotonic()
            outcome = harness.run_child(w.module.rsplit(".", 1)[-1], t.contender.function,
                                        params, w.budget, env)
            took = time.monotonic() - start
            if outcome.values is None:
                t.reason = outcome.reason
                shown = f"n/a ({outcome.reason})"
            else:
                t.add(outcome.values)
                shown = ", ".join(f"{k}={report.number(v)}" for k, v in outcome.values.items()
                                  if any(m.key == k for m in w.measures))
            print(f"bench: {w.name} round {r + 1}/{rounds}: {t.contender.label}: {shown} "
                  f"[{took:.1f} s]", file=sys.stderr, flush=True)
    return tallies


def main(argv: List[str]) -> int:
    args = _parse(argv)
    cfg = Config(quick=args.quick, imap_n=args.imap_n, budget=args.budget)
    workloads = _select(all_workloads(cfg), args.only or [])
    if args.list:
        for w in workloads:
            print(f"{w.name:12} {w.doc}")
        return 0
    env = _environment(args)
    meta = _meta(args)
    if args.build_mpi and args.build_mpi != meta["pympipool"]["mpi"]:
        sys.exit(f"bench: --build-mpi {args.build_mpi}, but the package at "
                 f"{meta['pympipool']['package']} is built for {meta['pympipool']['mpi']}")
    harness.become_subreaper()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    start = time.monotonic()
    tallies: Dict[str, List[report.Tally]] = {}
    try:
        for w in workloads:
            tallies[w.name] = _measure(w, args.rounds, env)
    finally:
        harness.kill_current()
        harness.reap_orphans(grace=10.0)
    meta["duration_s"] = round(time.monotonic() - start, 1)
    meta["loadavg_after"] = os.getloadavg()

    rows = [row for w in workloads for row in report.rows(w, tallies[w.name])]
    p = meta["pympipool"]
    m = meta["machine"]
    print(f"pympipool {p['version']} on {p['mpi_version']} ({p['package']}); "
          f"mpi4py {meta['mpi4py']['version']} on {meta['mpi4py']['mpi']}")
    lib = meta["libraries"]
    print(f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_mib']:,} MiB, {m['os']}, "
          f"Linux {m['kernel']}, Python {meta['python']}, pyzmq {lib['zmq']} "
          f"(libzmq {lib.get('libzmq', '?')}), cloudpickle {lib['cloudpickle']}, "
          f"numpy {lib['numpy']}; {meta['date']}")
    capped = [f"{w.name} {w.max_rounds}" for w in workloads
              if w.max_rounds and w.max_rounds < args.rounds]
    print(f"median of {args.rounds} round(s){' (' + ', '.join(capped) + ')' if capped else ''}"
          f"{' (--quick)' if args.quick else ''}, "
          f"{meta['duration_s']:.0f} s; load average {meta['loadavg'][0]:.2f} before, "
          f"{meta['loadavg_after'][0]:.2f} after; ↑ higher is better, ↓ lower is better")
    print()
    budgets = {w.name: w.budget for w in workloads}
    print(report.markdown(rows, budgets))
    legend = report.limits(workloads)
    if legend:
        print("\nlimit column:")
    for line in legend:
        print(f"- {line}")
    stopped = report.failures(tallies, budgets)
    if stopped:
        print("\nnot measured, or not after the round that failed:")
    for line in stopped:
        print(f"- {line}")
    document = {
        "meta": meta,
        "workloads": {
            w.name: {
                "doc": w.doc,
                "params": w.params,
                "budget_s": w.budget,
                "rounds": min(args.rounds, w.max_rounds or args.rounds),
                "measures": {mm.key: {"title": mm.title, "unit": mm.unit,
                                      "higher_is_better": mm.higher_is_better}
                             for mm in w.measures},
                "contenders": {t.contender.label + _suffix(t): t.as_json()
                               for t in tallies[w.name]},
            }
            for w in workloads
        },
        "rows": rows,
    }
    with open(args.json, "w") as f:
        json.dump(document, f, indent=1, ensure_ascii=False)
    print(f"\nbench: wrote {os.path.abspath(args.json)}", file=sys.stderr)
    return 0


def _suffix(t: report.Tally) -> str:
    items = t.contender.params.get("items")
    return f" [{items:,} items]" if items is not None else ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
