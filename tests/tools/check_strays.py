"""The test suite ends with no stray process: the two ends of a CTest fixture.

Every test that may start processes (cmake/PympipoolTesting.cmake wires all
but the lint and fuzz tests) requires the fixture ``pmp_no_strays``, whose
setup test (``stray.setup``) runs this script with ``setup`` before any of
them and whose cleanup test (``stray.check``) runs it with ``check`` after all
of them.

A process belongs to this test run when its environment holds
``PYMPIPOOL_TEST_SESSION=<tag>`` (every test gets it from pmp_add_test, and
mpiexec, its proxies and the ranks inherit it) or when it is an MPI launcher,
proxy or runtime (mpiexec, mpirun, orterun, orted, prted, prterun,
hydra_pmi_proxy, pympipool-runtime, fake_runtime) whose command line names
the tag (the build directory).  Other users' processes and other build
directories' test runs are not ours and are ignored, so that concurrent test
runs on one machine do not fail each other.

``setup`` records the processes of this run that already exist (leftovers of
an earlier, aborted run: not this run's fault).  ``check`` waits up to
``--grace`` seconds for stragglers to exit, then fails if any process of this
run that ``setup`` did not record is still alive, listing each one (pid,
name, command line), and kills them with SIGKILL so that whatever runs next
(CI's other builds) starts clean.

    check_strays.py setup|check STATE_FILE TAG [--grace SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

#: Process names (``/proc/<pid>/comm``) of MPI launchers and their daemons
#: (bench/harness.py tells them from workers with this set too).
LAUNCHERS = {
    "mpiexec",
    "mpiexec.hydra",
    "mpiexec.mpich",
    "mpiexec.openmpi",
    "mpirun",
    "orterun",
    "orted",
    "prted",
    "prterun",
    "hydra_pmi_proxy",
}
NAMES = LAUNCHERS | {
    "pympipool-runti",  # comm is cut to 15 characters
    "pympipool-runtime",
    "fake_runtime",
}
ENV_KEY = b"PYMPIPOOL_TEST_SESSION="


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, str, int, int] | None:
    """(comm, state, ppid, starttime) of a process, or None if it is gone."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    text = raw.decode(errors="replace")
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return comm, fields[0], int(fields[1]), int(fields[19])


def _own_lineage() -> set[int]:
    """This process and its ancestors (they carry the tag, and are not strays)."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        st = _stat(pid)
        if st is None:
            break
        pid = st[2]
    return pids


def processes(tag: str) -> dict[str, dict]:
    """Live processes of this test run, keyed by "pid:starttime"."""
    found = {}
    mine = _own_lineage()
    env_tag = ENV_KEY + os.fsencode(tag)
    # a path inside the build directory, not one of a sibling that merely
    # starts with its name (build-x versus build-x-asan)
    dir_tag = os.fsencode(tag.rstrip("/") + "/")
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine:
            continue
        pid = int(entry)
        st = _stat(pid)
        if st is None or st[1] in ("Z", "X"):
            continue  # gone, or a zombie (holds nothing; its parent reaps it)
        comm = st[0]
        cmdline = (_read(f"/proc/{pid}/cmdline") or b"").replace(b"\0", b" ").strip()
        environ = (_read(f"/proc/{pid}/environ") or b"").split(b"\0")
        ours = env_tag in environ or (
            comm in NAMES and dir_tag in cmdline
        )
        if ours:
            found[f"{pid}:{st[3]}"] = {
                "pid": pid,
                "name": comm,
                "cmdline": cmdline.decode(errors="replace")[:300],
            }
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("setup", "check"))
    parser.add_argument("state")
    parser.add_argument("tag")
    parser.add_argument("--grace", type=float, default=10.0)
    args = parser.parse_args()

    if args.mode == "setup":
        before = processes(args.tag)
        with open(args.state, "w") as f:
            json.dump(sorted(before), f)
        print(
            f"stray.setup: {len(before)} process(es) of an earlier run exist and "
            "will not be counted"
        )
        for p in before.values():
            print(f"  pid {p['pid']} {p['name']}: {p['cmdline']}")
        return 0

    try:
        with open(args.state) as f:
            known = set(json.load(f))
    except (OSError, ValueError):
        known = set()
    deadline = time.monotonic() + args.grace
    while True:
        strays = {k: v for k, v in processes(args.tag).items() if k not in known}
        if not strays or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    if not strays:
        print("stray.check: the test run left no process behind")
        return 0
    print(
        f"stray.check: FAILED: {len(strays)} process(es) started by this test run "
        f"outlived it by {args.grace:g} s:",
        file=sys.stderr,
    )
    for p in strays.values():
        print(f"  pid {p['pid']} {p['name']}: {p['cmdline']}", file=sys.stderr)
    for p in strays.values():
        try:
            os.kill(p["pid"], signal.SIGKILL)
        except OSError:
            pass
    print("stray.check: killed them (SIGKILL)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
