"""A throwaway SLURM cluster on this host for the SLURM tests: started once
per test session, stopped at its end, leaving nothing behind.

    slurm_cluster.py start|stop DIRECTORY

``start`` writes ``DIRECTORY/slurm.conf`` and starts one ``slurmctld`` and
two ``slurmd`` emulating the nodes ``n1`` and ``n2`` (both on 127.0.0.1,
each on a port of its own, ``NODE_CPUS`` CPUs each).  Two partitions:
``one`` (node ``n1`` alone, the default) and ``two`` (both nodes), so that
one cluster serves the one-node and the two-node tests.  Authentication is
``auth/none`` and every daemon runs as this user: a cluster for tests, on
loopback only.  The ports are chosen free at start, so that test runs of
several build trees at once do not meet.  It returns once both nodes are
idle (a few tenths of a second) or fails with the daemons' logs.

Both emulated nodes are this host, so whatever a real node keeps to itself
they would share.  Open MPI's shared-memory transport names its segments
after the host name and the node-local rank, so local rank 0 on ``n1`` and
local rank 0 on ``n2`` would open the same segment (and crash in
``MPI_Init``).  A task prolog gives every node a directory of its own for
them (``OMPI_MCA_btl_vader_backing_directory=DIRECTORY/tmp/<node>``), as
separate hosts have separate ``/dev/shm``.

A node fails when its slurmd is killed: ``SlurmdTimeout`` and
``MessageTimeout`` are short, so slurmctld declares it DOWN within about
12 s.  ``restart_node()`` (for the tests, not the command line) starts its
slurmd again and waits until the node is idle.

``stop`` cancels every job of the cluster, ends the daemons (SIGTERM) and
waits until every process of the cluster is gone: the daemons, their
slurmstepd and the tasks of any step (all carry the cluster's
``SLURM_CONF``).  One still alive 10 s later is killed, and ``stop`` fails
listing it, so that a test run that leaves a job behind does not pass.
Nothing else is removed: the logs stay in DIRECTORY for a failed run.  Clients use the cluster with
``SLURM_CONF=DIRECTORY/slurm.conf`` in their environment.

Needs the Debian packages slurmctld, slurmd and slurm-client (SLURM 22.05).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List

NODES = ("n1", "n2")
NODE_CPUS = 4
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
#: seconds without an answer from a node's slurmd before it is DOWN
SLURMD_TIMEOUT = 5


def _free_ports(n: int) -> List[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _conf(d: str, ports: List[int]) -> str:
    ctl, *node_ports = ports
    lines = [
        "ClusterName=pmptest",
        "SlurmctldHost=localhost",
        f"SlurmctldPort={ctl}",
        f"SlurmUser={pwd.getpwuid(os.getuid()).pw_name}",
        "AuthType=auth/none",
        "CredType=cred/none",
        f"StateSaveLocation={d}/state",
        f"SlurmdSpoolDir={d}/spool/%n",
        f"TmpFS={d}/tmp/%n",
        f"SlurmctldPidFile={d}/run/slurmctld.pid",
        f"SlurmdPidFile={d}/run/slurmd-%n.pid",
        f"SlurmctldLogFile={d}/log/slurmctld.log",
        f"SlurmdLogFile={d}/log/slurmd-%n.log",
        "SlurmdParameters=config_overrides",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "MpiDefault=none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MailProg=/bin/true",
        "ReturnToService=2",
        "KillWait=2",
        "MinJobAge=2",
        "InactiveLimit=0",
        # A node whose slurmd stops answering is DOWN within about 12 s, not
        # the default 5 minutes (slurm.node_failure kills one): slurmctld
        # pings every SlurmdTimeout/3 s, and a ping of a dead slurmd gives
        # up after MessageTimeout (default 10 s).  Local RPCs take
        # milliseconds, so a busy test machine does not reach either.
        f"SlurmdTimeout={SLURMD_TIMEOUT}",
        "MessageTimeout=4",
        f"TaskProlog={d}/taskprolog.sh",
    ]
    for name, port in zip(NODES, node_ports):
        lines.append(
            f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} "
            f"CPUs={NODE_CPUS} State=UNKNOWN"
        )
    lines.append(f"PartitionName=one Nodes={NODES[0]} Default=YES MaxTime=INFINITE State=UP")
    lines.append(f"PartitionName=two Nodes={','.join(NODES)} MaxTime=INFINITE State=UP")
    return "\n".join(line for line in lines if line) + "\n"


def _env(d: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["SLURM_CONF"] = os.path.join(d, "slurm.conf")
    return env


def _pids(d: str) -> List[int]:
    run = os.path.join(d, "run")
    pids = []
    for name in sorted(os.listdir(run)) if os.path.isdir(run) else []:
        try:
            with open(os.path.join(run, name)) as f:
                pids.append(int(f.read().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _logs(d: str) -> str:
    out = []
    logdir = os.path.join(d, "log")
    for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
        with open(os.path.join(logdir, name), errors="replace") as f:
            tail = f.read().splitlines()[-15:]
        out.append(f"--- {name}\n" + "\n".join(tail))
    return "\n".join(out)


def start(d: str) -> None:
    for prog in ("slurmctld", "slurmd", "sinfo"):
        if shutil.which(prog) is None:
            sys.exit(f"{prog} is not installed: apt-get install slurmctld slurmd slurm-client")
    stop(d)
    shutil.rmtree(d, ignore_errors=True)
    for sub in ("state", "log", "run"):
        os.makedirs(os.path.join(d, sub))
    for n in NODES:
        os.makedirs(os.path.join(d, "spool", n))
        os.makedirs(os.path.join(d, "tmp", n))
    prolog = os.path.join(d, "taskprolog.sh")
    with open(prolog, "w") as f:
        f.write(
            "#!/bin/sh\n"
            f'echo "export OMPI_MCA_btl_vader_backing_directory={d}/tmp/$SLURMD_NODENAME"\n'
        )
    os.chmod(prolog, 0o755)
    conf = os.path.join(d, "slurm.conf")
    with open(conf, "w") as f:
        f.write(_conf(d, _free_ports(1 + len(NODES))))
    env = _env(d)
    # -i: ignore state left from an earlier start (there is none: fresh dir)
    subprocess.run(["slurmctld", "-i", "-f", conf], env=env, check=True)
    for n in NODES:
        subprocess.run(["slurmd", "-f", conf, "-N", n], env=env, check=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        r = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %T"], env=env, capture_output=True, text=True
        )
        states = dict(line.split() for line in r.stdout.splitlines() if line.strip())
        if all(states.get(n) == "idle" for n in NODES):
            return
        time.sleep(0.1)
    stop(d)
    sys.exit(f"the SLURM cluster in {d} did not come up in {START_TIMEOUT:g} s\n{_logs(d)}")


def slurmd_pid(d: str, node: str) -> int:
    """The process id of the slurmd that emulates ``node``."""
    with open(os.path.join(d, "run", f"slurmd-{node}.pid")) as f:
        return int(f.read().split()[0])


def restart_node(d: str, node: str, timeout: float = START_TIMEOUT) -> None:
    """Starts ``node``'s slurmd again (after a test killed it) and returns
    once SLURM has the node idle again.  ``ReturnToService=2`` puts a node
    that was DOWN for not responding back into service when its slurmd
    registers; the new slurmd also ends what is left of the node's steps
    (slurmctld tells it those jobs are gone)."""
    env = _env(d)
    conf = env["SLURM_CONF"]
    if not _alive(slurmd_pid(d, node)):
        subprocess.run(["slurmd", "-f", conf, "-N", node], env=env, check=True)
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        r = subprocess.run(["sinfo", "-h", "-N", "-n", node, "-o", "%T"], env=env,
                           capture_output=True, text=True)
        state = (r.stdout.split() or [""])[0]
        if state == "idle":
            return
        time.sleep(0.1)
    raise RuntimeError(f"node {node} is {state!r}, not idle, {timeout:g} s after its "
                       f"slurmd was restarted\n{_logs(d)}")


def _cluster_processes(d: str) -> Dict[int, str]:
    """Every live process of the cluster: whatever has its slurm.conf in its
    environment (the daemons, slurmstepd, the steps' tasks), but this one."""
    mark = f"SLURM_CONF={os.path.join(d, 'slurm.conf')}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if mark in env and _alive(int(entry)):
            found[int(entry)] = cmd
    return found


def stop(d: str) -> None:
    """Stops the cluster; exits with status 1, listing them, if any of its
    processes was still alive 10 s after the daemons were told to stop (they
    are killed then)."""
    pids = [p for p in _pids(d) if _alive(p)]
    if pids:
        subprocess.run(
            ["scancel", "--quiet", "--full", f"--user={os.getuid()}"],
            env=_env(d),
            capture_output=True,
            timeout=30,
        )
        for p in pids:
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT
    left = _cluster_processes(d)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _cluster_processes(d)
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        listing = "\n".join(f"  {p}: {c}" for p, c in sorted(left.items()))
        sys.exit(f"processes of the SLURM cluster in {d} outlived it (killed):\n{listing}")


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: slurm_cluster.py start|stop DIRECTORY")
    d = os.path.abspath(sys.argv[2])
    start(d) if sys.argv[1] == "start" else stop(d)


if __name__ == "__main__":
    main()
