"""mpiexec on two hosts (``hosts=[...]``), emulated by two network
namespaces that this test creates, each a "host" with an address of its
own on a veth pair between them.

* ``pmp-host1`` (namespace ``pmpA<pid>``, 198.18.77.1) runs the caller: a
  Python script started with ``ip netns exec`` in a UTS namespace of its
  own, so ``gethostname()`` is ``pmp-host1``.
* ``pmp-host2`` (namespace ``pmpB<pid>``, 198.18.77.2) is entered by the
  launcher: ``launcher_args`` make hydra use its ssh launcher with
  ``-launcher-exec`` (Open MPI: ``--mca plm_rsh_agent``) set to a script
  that, for ``pmp-host2``, runs the command it is given under ``ip netns
  exec`` in a UTS namespace named ``pmp-host2``, with a ``/dev/shm`` tmpfs
  and a TMPDIR of its own (as on a separate host; see test_remote.py).
* Names resolve through ``/etc/netns/<namespace>/hosts``, which ``ip
  netns exec`` puts in place of ``/etc/hosts``.

What is checked: the ranks report both host names; the frontend chose TCP
with CURVE on host1's address by itself (``hosts`` given, no
``hostname``); a ZeroMQ client in host2's namespace that can reach the port
but holds no credentials (no security, PLAIN, CURVE keys of its own) gets
nothing, the refusals are logged, and the executor works on.  Network
traffic stays inside the two namespaces.  Namespaces, veths and the
``/etc/netns`` entries are removed whatever happens; a machine where they
cannot be made (no root, no ``ip``) skips with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from pympipool import _config

HOST1, HOST2 = "pmp-host1", "pmp-host2"
ADDR1, ADDR2 = "198.18.77.1", "198.18.77.2"  # RFC 2544 benchmarking range


def _run(*args: str) -> None:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")


def _cannot_make_namespaces() -> str:
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    for prog in ("ip", "unshare"):
        if shutil.which(prog) is None:
            return f"{prog} is not installed (iproute2, util-linux)"
    probe = f"pmpprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"ip netns add fails here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


_REASON = _cannot_make_namespaces()
pytestmark = pytest.mark.skipif(bool(_REASON), reason=_REASON)


class Hosts:
    """Two namespaces joined by a veth pair; ``exec_in(host)`` is the
    command prefix that runs a command on that host."""

    def __init__(self, tmp: str) -> None:
        tag = str(os.getpid())
        self.ns = {HOST1: f"pmpA{tag}", HOST2: f"pmpB{tag}"}
        self.tmp = tmp
        self.made: list = []

    def make(self) -> None:
        a, b = self.ns[HOST1], self.ns[HOST2]
        for host, ns in self.ns.items():
            _run("ip", "netns", "add", ns)
            self.made.append(ns)
            etc = f"/etc/netns/{ns}"
            os.makedirs(etc, exist_ok=True)
            with open(os.path.join(etc, "hosts"), "w") as f:
                f.write(f"127.0.0.1 localhost\n{ADDR1} {HOST1}\n{ADDR2} {HOST2}\n")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        va, vb = f"{a}v", f"{b}v"  # at most 15 bytes
        _run("ip", "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb,
             "netns", b)
        for ns, dev, addr in ((a, va, ADDR1), (b, vb, ADDR2)):
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")

    def exec_in(self, host: str) -> list:
        """``ip netns exec`` + UTS and mount namespaces: the host's name,
        its own /dev/shm and TMPDIR, then the command (``"$@"``)."""
        tmp = os.path.join(self.tmp, host)
        os.makedirs(tmp, exist_ok=True)
        return [
            "ip", "netns", "exec", self.ns[host], "unshare", "--uts", "--mount", "/bin/sh", "-c",
            f"hostname {host} && mount -t tmpfs -o size=512m pmp-shm /dev/shm"
            f' && TMPDIR="$(mktemp -d {tmp}/job-XXXXXX)" && export TMPDIR && exec "$@"',
            host,
        ]

    def launcher(self) -> str:
        """The ssh stand-in for hydra (``-launcher-exec``) and Open MPI
        (``plm_rsh_agent``): ``<script> [-x] <host> <command words>``.
        Like ssh, it hands the words to a shell on the host."""
        path = os.path.join(self.tmp, "netns-ssh")
        enter = " ".join(f"'{w}'" for w in self.exec_in(HOST2))
        with open(path, "w") as f:
            f.write(
                "#!/bin/sh\n"
                'while [ "${1#-}" != "$1" ]; do shift; done  # ssh options\n'
                'host="$1"; shift\n'
                f'[ "$host" = {HOST2} ] || [ "$host" = {ADDR2} ] || '
                '{ echo "netns-ssh: unknown host $host" >&2; exit 255; }\n'
                f'exec {enter} /bin/sh -c "$*"\n'
            )
        os.chmod(path, 0o755)
        return path

    def remove(self) -> None:
        for ns in self.made:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # and its veth end
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


@pytest.fixture
def hosts(tmp_path):
    h = Hosts(str(tmp_path))
    try:
        h.make()
        yield h
    finally:
        h.remove()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in left for ns in h.ns.values()), left


CALLER = textwrap.dedent(
    """
    import json, os, socket, sys, time
    from pympipool import Executor, PoolExecutor

    def where(x):
        time.sleep(0.2)  # long enough that both workers get calls
        return x * x, socket.gethostname()

    def all_hosts(comm):
        return comm.allgather(socket.gethostname())

    launcher_args = json.loads(sys.argv[1])
    hosts = ["pmp-host1:1", "pmp-host2:1"]
    out = {"caller": socket.gethostname()}
    with Executor(cores=2, hosts=hosts, launcher_args=launcher_args,
                  oversubscribe=True) as exe:
        out["executor"] = exe.submit(all_hosts).result(timeout=90)
    with PoolExecutor(max_workers=2, hosts=hosts, launcher_args=launcher_args,
                      oversubscribe=True) as exe:
        cmd = exe.command
        out["endpoint"] = cmd[cmd.index("--endpoint") + 1]
        while len(exe._state.hellos) < 2:  # both workers up
            time.sleep(0.05)
        out["pool"] = sorted(set(h for _, h in exe.map(where, range(8))))
        # every worker up; now the foreign client may try
        print(json.dumps(out), flush=True)
        assert sys.stdin.readline().strip() == "go on"
        out["after"] = [exe.submit(where, i).result(timeout=30) for i in range(4)]
    print(json.dumps(out), flush=True)
    """
)

INTRUDER = textwrap.dedent(
    """
    import json, socket, sys, time
    import zmq

    endpoint = sys.argv[1]
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)  # the port is reachable
    s.close()
    public, secret = zmq.curve_keypair()
    attempts = {
        "none": {},
        "plain": dict(plain_username=b"pympipool-runtime", plain_password=b"x" * 40),
        "curve": dict(curve_serverkey=zmq.curve_keypair()[0], curve_publickey=public,
                      curve_secretkey=secret),
    }
    ctx = zmq.Context()
    got = {}
    for name, options in attempts.items():
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        for k, v in options.items():
            setattr(sock, k, v)
        sock.connect(endpoint)
        try:
            sock.send_multipart([b"HELLO", b"pympipool"], flags=zmq.NOBLOCK)
        except zmq.Again:
            pass
        got[name] = [f.hex() for f in sock.recv_multipart()] if sock.poll(1500) else []
        sock.close(0)
    ctx.term()
    print(json.dumps({"host": socket.gethostname(), "got": got}))
    """
)


def _launcher_args(script: str) -> list:
    if _config.MPI_FLAVOUR == "mpich":
        return ["-launcher", "ssh", "-launcher-exec", script]
    return ["--mca", "plm_rsh_agent", script]


def test_two_hosts_tcp_curve_and_a_foreign_client(hosts, tmp_path):
    script = tmp_path / "caller.py"
    script.write_text(CALLER)
    intruder = tmp_path / "intruder.py"
    intruder.write_text(INTRUDER)
    env = dict(os.environ, PYMPIPOOL_LOG_LEVEL="warning")
    caller = subprocess.Popen(
        hosts.exec_in(HOST1) + [sys.executable, str(script),
                                json.dumps(_launcher_args(hosts.launcher()))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, start_new_session=True,
    )
    try:
        first = caller.stdout.readline()
        if not first:
            caller.wait(timeout=30)
            pytest.fail(f"the caller ended early: {caller.stderr.read()}")
        out = json.loads(first)
        assert out["caller"] == HOST1
        assert sorted(out["executor"][0]) == [HOST1, HOST2], out  # rank 0 sees both
        assert out["pool"] == [HOST1, HOST2], out
        assert out["endpoint"].startswith(f"tcp://{ADDR1}:"), out  # TCP (CURVE) by itself
        r = subprocess.run(hosts.exec_in(HOST2) + [sys.executable, str(intruder),
                                                   out["endpoint"]],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 0, r.stderr
        foreign = json.loads(r.stdout)
        assert foreign["host"] == HOST2
        assert foreign["got"] == {"none": [], "plain": [], "curve": []}, foreign
        caller.stdin.write("go on\n")
        caller.stdin.flush()
        final = json.loads(caller.stdout.readline())
        caller.wait(timeout=60)
        err = caller.stderr.read()
    finally:
        if caller.poll() is None:
            os.killpg(caller.pid, 9)
            caller.wait()
    assert caller.returncode == 0, err
    assert [x for x, _ in final["after"]] == [0, 1, 4, 9], final  # and works on
    # each of the three foreign connections was seen and refused
    assert err.count("refused a connection") >= 3, err
