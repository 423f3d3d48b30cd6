"""Who can talk to an executor's socket (docs/security.md).

* A foreign peer that connects to the frontend's endpoint without the
  executor's credentials, or with wrong ones, is never admitted: it cannot
  say hello, take a task or inject a result, and the executor's results are
  unaffected.  Over ipc:// the runtime connects over a local link and greets
  with the PLAIN password (foreign peers here: hand-made links, and ZeroMQ
  peers, which do not even speak the link's format); over TCP
  (``hostname=``) it authenticates with CURVE (foreign peers: pyzmq).
* Another user of the host cannot connect to the ipc:// socket nor read the
  credentials file (a child that drops privileges to ``nobody``; root only).
* ``hostname="127.0.0.1"``: the runtime connects over TCP + CURVE and works;
  the credentials file is removed after start-up; wildcards and addresses
  that are not this host's are refused with an error that names them.
* Every refusal is logged (PYMPIPOOL_LOG_LEVEL=warning).
"""

from __future__ import annotations

import os
import pickle
import pwd
import shlex
import socket
import stat
import subprocess
import sys
import textwrap
import time

import pytest

import pmp_link_peer
import pmp_wire
from pmp_link_peer import Link, greeting
from pympipool import Executor, MPISpawnPool, Pool, PoolExecutor

zmq = pytest.importorskip("zmq")

HELLO, RESULT, ERROR = pmp_wire.HELLO, pmp_wire.RESULT, pmp_wire.ERROR
LOOPBACK = "127.0.0.1"


def header(kind: int, task_id: int = 0, nframes: int = 1) -> bytes:
    return pmp_wire.header(kind, task_id, nframes=nframes)


HELLO_TEXT = (
    "group=0\nngroups=1\ngroup_size=1\nworld_size=1\nworld_rank=0\n"
    "pid=%d\nhost=intruder\npython=%d.%d.%d\nmpi=none\nruntime=0\n"
    % ((os.getpid(),) + tuple(sys.version_info[:3]))
).encode()


def slow_double(x, seconds=0.0):
    time.sleep(seconds)
    return 2 * x


def ranks_double(x, comm=None):
    return 2 * x + 0 * comm.Get_rank()


def credentials_path(executor) -> str:
    command = list(executor._state.core.command)
    return command[command.index("--credentials") + 1]


def read_credentials(path: str) -> dict:
    with open(path) as f:
        return dict(line.split("=", 1) for line in f.read().split() if "=" in line)


def wait_gone(path: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not os.path.exists(path)


class Hold:
    """A queue adapter that starts nothing: the executor waits, its
    credentials file stays until a runtime says hello."""

    command = None

    def submit_job(self, working_directory=None, cores=None, command=None, **kwargs):
        self.command = command


class Intruder:
    """A raw DEALER with some (or no) credentials that tries everything:
    hello, waiting for a task, a RESULT for a pending task id."""

    def __init__(self, endpoint: str, **options) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        for name, value in options.items():
            setattr(self.sock, name, value)
        self.sock.connect(endpoint)

    def attack(self, task_id: int) -> None:
        # queued by ZeroMQ until a handshake succeeds, which never happens
        for frames in (
            [header(HELLO), HELLO_TEXT],
            [header(RESULT, task_id), pickle.dumps("INJECTED")],
            [header(ERROR, task_id), pickle.dumps("INJECTED")],
        ):
            try:
                self.sock.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                pass  # no connection to queue on: the handshake was refused already

    def received(self, timeout: float) -> list:
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1):
                return got
            got.append(self.sock.recv_multipart())

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


class LinkIntruder:
    """A hand-made local link (tests/support/pmp_link_peer.py) that greets
    with password (None: no greeting at all) and then tries the same as
    Intruder."""

    def __init__(self, endpoint: str, password) -> None:
        self.link = Link.connect(endpoint[len("ipc://") :])
        self.password = password

    def attack(self, task_id: int) -> None:
        messages = [
            [header(HELLO), HELLO_TEXT],
            [header(RESULT, task_id), pickle.dumps("INJECTED")],
            [header(ERROR, task_id), pickle.dumps("INJECTED")],
        ]
        if self.password is not None:
            messages.insert(0, [greeting(self.password)])
        for frames in messages:
            try:
                self.link.send(frames)
            except OSError:
                return  # refused and closed already

    def received(self, timeout: float) -> list:
        got = []
        while True:
            frames = self.link.recv(timeout)
            if frames is None:
                return got
            got.append(frames)

    def close(self) -> None:
        self.link.close()


def plain_wrong(password: bytes = b"x" * 40) -> dict:
    return dict(plain_username=b"pympipool-runtime", plain_password=password)


def curve_foreign(server_key: bytes = None) -> dict:
    public, secret = zmq.curve_keypair()
    if server_key is None:
        server_key = zmq.curve_keypair()[0]
    return dict(
        curve_serverkey=server_key, curve_publickey=public, curve_secretkey=secret
    )


def check_intruders_get_nothing(executor, intruder_options: list, passwords=()) -> None:
    """While a task is running and another is queued, intruders try to
    say hello, take the queued task and answer the running one; they get
    nothing and the results are the real ones.  intruder_options: ZeroMQ
    peers; passwords: link peers (ipc:// only)."""
    assert executor.submit(slow_double, 1).result(timeout=60) == 2  # started
    running = executor.submit(slow_double, 21, 2.0)
    queued = [executor.submit(slow_double, i) for i in range(4)]
    endpoint = executor._state.core.endpoint
    intruders = [Intruder(endpoint, **options) for options in intruder_options]
    intruders += [LinkIntruder(endpoint, password) for password in passwords]
    try:
        for intruder in intruders:
            intruder.attack(running._pmp_task_id)
            intruder.attack(queued[-1]._pmp_task_id)
        for intruder in intruders:
            assert intruder.received(0.5) == []
        assert running.result(timeout=60) == 42
        assert [f.result(timeout=60) for f in queued] == [0, 2, 4, 6]
        for intruder in intruders:
            assert intruder.received(0.1) == []
    finally:
        for intruder in intruders:
            intruder.close()
    assert executor.submit(slow_double, 5).result(timeout=60) == 10


# ---- foreign peers ------------------------------------------------------------


@pytest.mark.parametrize("make", ["executor1", "pool2"])
def test_foreign_peer_on_ipc_gets_nothing(make):
    if make == "executor1":
        executor = Executor(cores=1)
    else:
        executor = PoolExecutor(max_workers=2)
    with executor:
        assert executor._state.core.endpoint.startswith("ipc://")
        check_intruders_get_nothing(
            executor,
            [
                {},  # no credentials at all
                plain_wrong(),  # the right user name, a wrong password
                dict(plain_username=b"root", plain_password=b"x" * 40),  # another user
                curve_foreign(),  # another mechanism
            ],
            [
                None,  # no greeting, straight to the hello
                b"x" * 40,  # a wrong password
                b"",  # none
            ],
        )


def test_foreign_peer_on_tcp_gets_nothing():
    with Executor(cores=1, hostname=LOOPBACK) as executor:
        assert executor._state.core.endpoint.startswith("tcp://127.0.0.1:")
        check_intruders_get_nothing(
            executor,
            [
                {},  # no keys
                curve_foreign(),  # keys of its own, a server key it made up
                plain_wrong(),  # PLAIN instead of CURVE
            ],
        )


def test_tcp_with_queue_adapter_refuses_foreign_client_key_then_admits_runtime():
    """With a queue adapter the credentials file is written at creation and
    stays until start-up is over.  Knowing the server's public key is not
    enough: a client key other than the runtime's is refused; the real
    runtime (started here by hand, as a queuing system would) gets in, and
    then the file is gone."""
    hold = Hold()
    executor = Executor(cores=1, hostname=LOOPBACK, queue_adapter=hold)
    job = None
    try:
        path = credentials_path(executor)
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        cred = read_credentials(path)
        assert cred["mechanism"] == "curve"
        future = executor.submit(slow_double, 4)
        endpoint = executor._state.core.endpoint
        intruders = [
            Intruder(endpoint, **curve_foreign(cred["server-public-key"].encode())),
            Intruder(endpoint, **curve_foreign()),
            Intruder(endpoint),
        ]
        try:
            for intruder in intruders:
                intruder.attack(future._pmp_task_id)
            for intruder in intruders:
                assert intruder.received(0.7) == []
            assert not future.done()
            assert os.path.exists(path)  # nobody said hello
        finally:
            for intruder in intruders:
                intruder.close()
        job = subprocess.Popen(shlex.split(hold.command), stdin=subprocess.DEVNULL)
        assert future.result(timeout=60) == 8
        assert wait_gone(path)
    finally:
        executor.shutdown(wait=True)
        if job is not None:
            job.wait(timeout=30)
    assert not os.path.exists(os.path.dirname(path))


def test_refusals_are_logged():
    script = textwrap.dedent(
        """
        import time, zmq
        from pympipool import Executor

        class Hold:
            def submit_job(self, **kwargs):
                pass

        from pmp_link_peer import Link, greeting

        with Executor(cores=1, queue_adapter=Hold()) as executor:
            path = executor._state.core.endpoint[len("ipc://"):]
            for first in ([b"hello?"], [greeting(b"wrong")]):
                link = Link.connect(path)
                link.send(first)
                link.recv(5.0)  # until it is closed
                link.close()
        """
    )
    support = os.path.dirname(os.path.abspath(pmp_link_peer.__file__))
    env = dict(os.environ, PYMPIPOOL_LOG_LEVEL="warning")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (support, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    # a first frame that is no greeting, then a wrong password
    assert proc.stderr.count("refused a connection") >= 2, proc.stderr
    assert "not a pympipool link greeting" in proc.stderr
    assert "wrong PLAIN password" in proc.stderr


# ---- another user on the same host -------------------------------------------


def as_nobody(socket_path: str, cred_path: str) -> dict:
    """In a child that has become ``nobody``: what happens on connecting to
    the socket, reading the credentials and listing their directory."""
    nobody = pwd.getpwnam("nobody")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only system calls, then _exit
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            outcome = {"uid": str(os.getuid())}

            def attempt(name, action):
                try:
                    action()
                    outcome[name] = "ok"
                except BaseException as e:  # noqa: B902 - reported to the parent
                    outcome[name] = type(e).__name__

            def connect():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(socket_path)
                finally:
                    s.close()

            attempt("connect", connect)
            attempt("read", lambda: open(cred_path, "rb").read())
            attempt("list", lambda: os.listdir(os.path.dirname(cred_path)))
            os.write(wfd, repr(outcome).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    data = b""
    while True:
        chunk = os.read(rfd, 4096)
        if not chunk:
            break
        data += chunk
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    return eval(data.decode())  # a dict of str, written by our own child


@pytest.mark.skipif(
    os.geteuid() != 0, reason="dropping privileges to nobody needs root"
)
def test_another_user_can_neither_connect_nor_read_the_credentials():
    executor = Executor(cores=1, queue_adapter=Hold())  # the file stays
    try:
        endpoint = executor._state.core.endpoint
        socket_path = endpoint[len("ipc://") :]
        cred = credentials_path(executor)
        assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
        assert os.path.exists(cred)
        # the owner can connect (so the child's failure is about permission)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(socket_path)
        s.close()
        outcome = as_nobody(socket_path, cred)
        assert outcome["uid"] == str(pwd.getpwnam("nobody").pw_uid)
        assert outcome["connect"] == "PermissionError"
        assert outcome["read"] == "PermissionError"
        assert outcome["list"] == "PermissionError"
    finally:
        executor.shutdown(wait=True)


# ---- hostname= ---------------------------------------------------------------


@pytest.mark.parametrize("make", ["executor1", "executor2", "pool2"])
def test_tcp_on_loopback_works_and_removes_the_credentials(make):
    if make == "pool2":
        executor = PoolExecutor(max_workers=2, hostname=LOOPBACK)
    else:
        executor = Executor(cores=int(make[-1]), hostname=LOOPBACK)
    with executor:
        endpoint = executor._state.core.endpoint
        assert endpoint.startswith("tcp://127.0.0.1:")
        assert int(endpoint.rsplit(":", 1)[1]) > 0
        path = credentials_path(executor)
        futures = [executor.submit(slow_double, i) for i in range(6)]
        got = [f.result(timeout=60) for f in futures]
        if make == "executor2":
            assert got == [[2 * i, 2 * i] for i in range(6)]
        else:
            assert got == [2 * i for i in range(6)]
        assert wait_gone(path)
        assert os.listdir(os.path.dirname(path)) == []  # no socket file over TCP


def test_pools_take_hostname():
    with Pool(max_workers=2, hostname=LOOPBACK) as pool:
        assert pool.map(slow_double, range(5)) == [0, 2, 4, 6, 8]
    with MPISpawnPool(max_ranks=2, ranks_per_task=2, hostname=LOOPBACK) as pool:
        assert pool.map(ranks_double, range(3)) == [0, 2, 4]


@pytest.mark.parametrize("cls", [Executor, PoolExecutor, Pool, MPISpawnPool])
def test_wildcards_and_bad_addresses_are_refused(cls):
    for wildcard in ("*", "0.0.0.0", "::"):
        with pytest.raises(ValueError, match="wildcard"):
            cls(hostname=wildcard)
    for bad in ("no-such-interface0", "203.0.113.77", "not an address"):
        with pytest.raises(ValueError, match=bad):
            cls(hostname=bad)
    with pytest.raises(TypeError, match="hostname"):
        cls(hostname=127)
