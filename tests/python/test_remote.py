"""A runtime on another host than its frontend (``hostname=``, TCP + CURVE).

Another host is emulated on this one: mpiexec runs inside fresh UTS, PID and
mount namespaces (``unshare --uts --pid --fork --mount-proc``), so the ranks
see another host name, another process-id space, and a ``/dev/shm`` and
temporary directory of their own, as on a real remote host.  There the frontend's process id means
nothing, and the leader must watch the connection itself (ZMTP heartbeats
and a socket monitor, runtime/pmp_leader.c):

* an idle executor keeps working beyond the leader's liveness checks;
* when the frontend's process is killed with SIGKILL, every rank of the
  "remote" job exits within seconds, with nothing left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pympipool import Executor, PoolExecutor, _config

from conftest import wait_until

REMOTE_HOST = "pmp-remote-host"


def _namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "true"],
        capture_output=True,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _namespaces_work(),
    reason="emulating another host needs root and unshare(1) with UTS/PID namespaces",
)


@pytest.fixture
def remote_mpiexec(tmp_path, monkeypatch):
    """An mpiexec whose job runs as if on another host.

    Besides its host name and process ids, a real host has its own
    ``/dev/shm`` and temporary directory.  Open MPI names its session
    directory, its PMIx rendezvous files and its shared-memory segments
    after the host name and mpiexec's process id, which is 1 in every
    namespace: two emulated hosts sharing ``/tmp`` and ``/dev/shm`` would
    overwrite each other's files while one job still shuts down as the next
    starts, and ranks crash in ``orte_init``.  Each job gets a fresh tmpfs
    on ``/dev/shm`` and a TMPDIR of its own.
    """
    real = shutil.which(_config.MPIEXEC) or _config.MPIEXEC
    host_tmp = tmp_path / "remote-tmp"
    host_tmp.mkdir()
    script = tmp_path / "remote-mpiexec"
    script.write_text(
        "#!/bin/sh\n"
        "exec unshare --uts --pid --fork --mount-proc /bin/sh -c "
        f"'hostname {REMOTE_HOST} "
        "&& mount -t tmpfs -o size=1g pmp-remote-shm /dev/shm "
        "&& TMPDIR=\"$(mktemp -d \"$0/job-XXXXXX\")\" && export TMPDIR "
        f"&& exec \"$@\"' {host_tmp} {real} \"$@\"\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PYMPIPOOL_MPIEXEC", str(script))
    return str(script)


def _gethostname():
    import socket

    return socket.gethostname()


KINDS = ["executor1", "executor2", "pool_executor2"]


def test_remote_runtime_outlives_the_liveness_checks(remote_mpiexec):
    # The three kinds idle side by side, so that they share one wait.
    make = {
        "executor1": lambda: Executor(cores=1, hostname="127.0.0.1"),
        "executor2": lambda: Executor(cores=2, hostname="127.0.0.1"),
        "pool_executor2": lambda: PoolExecutor(max_workers=2, hostname="127.0.0.1"),
    }
    executors = {}
    try:
        for kind in KINDS:
            executors[kind] = make[kind]()
        first = {}
        for kind, ex in executors.items():
            first[kind] = ex.submit(_gethostname).result(timeout=60)
            hosts = first[kind] if isinstance(first[kind], list) else [first[kind]]
            assert hosts and all(h == REMOTE_HOST for h in hosts), (kind, hosts)
        time.sleep(3.5)  # several idle checks of the leader
        for kind, ex in executors.items():
            again = ex.submit(_gethostname).result(timeout=30)
            assert again == first[kind], kind
            assert not ex.broken, kind
    finally:
        for ex in executors.values():
            ex.shutdown(wait=True)


def test_two_remote_hosts_at_once(remote_mpiexec):
    # Two jobs whose mpiexec is process 1 on a host of the same name: their
    # MPI start-up files must not meet (each host has its own /dev/shm and
    # TMPDIR), as they would not on two real hosts.
    executors = [Executor(cores=2, hostname="127.0.0.1") for _ in range(2)]
    try:
        futures = [ex.submit(_gethostname) for ex in executors]
        for future in futures:
            assert future.result(timeout=60) == [REMOTE_HOST, REMOTE_HOST]
    finally:
        for ex in executors:
            ex.shutdown(wait=True)


FRONTEND = textwrap.dedent(
    """
    import sys, time
    from pympipool import Executor, PoolExecutor
    kind = sys.argv[1]
    if kind == "pool_executor2":
        ex = PoolExecutor(max_workers=2, hostname="127.0.0.1")
    else:
        ex = Executor(cores=int(kind[-1]), hostname="127.0.0.1")
    ex.submit(sum, [1, 2]).result(timeout=60)
    print(ex._state.core.endpoint, flush=True)
    time.sleep(600)
    """
)


def _runtime_processes(endpoint: str) -> list:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z" and endpoint.encode() in args:
            found.append(int(entry))
    return found


def test_remote_runtime_exits_when_the_frontend_is_killed(remote_mpiexec):
    # One frontend process of each kind, killed together; every kind's ranks
    # are timed on their own.
    procs = {}
    endpoints = {}
    try:
        for kind in KINDS:
            procs[kind] = subprocess.Popen(
                [sys.executable, "-c", FRONTEND, kind],
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        for kind, proc in procs.items():
            endpoint = proc.stdout.readline().strip()
            assert endpoint.startswith("tcp://127.0.0.1:"), (kind, endpoint)
            endpoints[kind] = endpoint
            pids = _runtime_processes(endpoint)
            assert len(pids) >= 2, (kind, pids)  # mpiexec (or unshare) and the ranks
        for proc in procs.values():
            os.kill(proc.pid, signal.SIGKILL)
        for proc in procs.values():
            proc.wait(timeout=10)
        start = time.monotonic()
        took = {}

        def all_gone() -> bool:
            for kind, endpoint in endpoints.items():
                if kind not in took and not _runtime_processes(endpoint):
                    took[kind] = time.monotonic() - start
            return len(took) == len(endpoints)

        wait_until(all_gone, 30)
        for kind in KINDS:
            if kind in took:
                print(f"FAULT-TIME remote frontend SIGKILL {kind}: all ranks gone after "
                      f"{took[kind]:.2f} s")
        for kind, endpoint in endpoints.items():
            assert kind in took, (kind, _runtime_processes(endpoint))
            assert took[kind] < 20, (kind, took[kind])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for endpoint in endpoints.values():
            for pid in _runtime_processes(endpoint):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
