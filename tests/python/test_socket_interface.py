"""Tests of pympipool.SocketInterface and the functions of its other end.

A small backend program (written to a temporary directory) is booted with
``bootup``; it connects back with ``connect_to_socket_interface`` and calls
the function each instruction carries.  pyzmq appears only as an
independent peer, to check what a client without the right keys can do.
Every test also checks (conftest) that no process is left behind.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pmp_wire
import pytest

import pympipool
from pympipool import RemoteTraceback, SocketInterface, _core

BACKEND = """
import sys
from pympipool import (close_connection, connect_to_socket_interface,
                       receive_instruction, send_result)

context, socket = connect_to_socket_interface(sys.argv[1], sys.argv[2])
while True:
    instruction = receive_instruction(socket)
    if instruction.get("shutdown"):
        if instruction.get("wait"):
            send_result(socket, {"result": "bye"})
        break
    try:
        fn = instruction["fn"]
        result = fn(*instruction.get("args", ()), **instruction.get("kwargs", {}))
    except Exception as error:
        send_result(socket, {"error": error})
    else:
        send_result(socket, {"result": result})
close_connection(socket, context)
"""


@pytest.fixture
def backend(tmp_path):
    path = tmp_path / "backend.py"
    path.write_text(BACKEND)
    return str(path)


def boot(interface: SocketInterface, backend: str) -> None:
    port = interface.bind_to_random_port()
    interface.bootup([sys.executable, backend, "127.0.0.1", str(port)])


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


# ---- functions the backend runs -------------------------------------------------


def square(x):
    return x**2


def add_arrays(a, b):
    return {"sum": a + b, "shape": a.shape}


def environment_keys():
    return sorted(k for k in os.environ if k.startswith("PYMPIPOOL_SOCKET_"))


class CustomError(Exception):
    pass


def raise_custom(text):
    raise CustomError(text)


def raise_key_error():
    return {}["missing-key-4711"]


def crash():
    sys.stderr.write("pmp-test: the backend crashes (marker 4711)\n")
    sys.stderr.flush()
    os._exit(3)


def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


# ---- round trips -------------------------------------------------------------


def test_round_trip_with_numpy(backend):
    with SocketInterface() as interface:
        boot(interface, backend)
        assert interface.pid is not None
        assert interface.endpoint.startswith("tcp://127.0.0.1:")
        assert interface.send_and_receive_dict({"fn": square, "args": (7,)}) == 49
        a = np.arange(300_000, dtype=np.float64)  # 2.4 MB: out of band both ways
        out = interface.send_and_receive_dict(
            {"fn": add_arrays, "args": (a, a), "kwargs": {}}
        )
        np.testing.assert_array_equal(out["sum"], 2 * a)
        assert out["shape"] == (300_000,)
        assert out["sum"].flags.writeable  # received without a read-only copy
        interface.send_dict({"fn": square, "args": (3,)})
        assert interface.receive_dict() == 9
    assert gone(interface.pid)


def test_without_curve(backend):
    with SocketInterface(curve=False) as interface:
        assert not interface.curve
        assert interface.client_environment == {}
        boot(interface, backend)
        assert interface.send_and_receive_dict({"fn": environment_keys}) == []
        assert interface.send_and_receive_dict({"fn": square, "args": (5,)}) == 25


@pytest.mark.skipif(not _core.CHANNEL_HAS_CURVE, reason="libzmq without CURVE")
def test_keys_reach_the_backend_through_its_environment(backend):
    with SocketInterface() as interface:
        assert interface.curve
        env = interface.client_environment
        assert sorted(env) == [
            "PYMPIPOOL_SOCKET_PUBLIC_KEY",
            "PYMPIPOOL_SOCKET_SECRET_KEY",
            "PYMPIPOOL_SOCKET_SERVER_KEY",
        ]
        assert all(len(v) == 40 for v in env.values())
        # and never on its command line
        boot(interface, backend)
        with open(f"/proc/{interface.pid}/cmdline", "rb") as f:
            cmdline = f.read().decode()
        assert not any(key in cmdline for key in env.values())
        assert interface.send_and_receive_dict({"fn": environment_keys}) == sorted(env)
    # fresh keys for every interface
    with SocketInterface() as other:
        assert other.client_environment != env


# ---- errors ----------------------------------------------------------------------


def test_error_is_reraised_with_remote_traceback(backend):
    with SocketInterface() as interface:
        boot(interface, backend)
        with pytest.raises(KeyError) as info:
            interface.send_and_receive_dict({"fn": raise_key_error})
        assert info.value.args == ("missing-key-4711",)
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert str(cause).startswith("Socket peer on ")
        assert "raise_key_error" in str(cause)
        assert "KeyError" in str(cause)
        with pytest.raises(CustomError, match="custom 4711"):
            interface.send_and_receive_dict({"fn": raise_custom, "args": ("custom 4711",)})
        # the interface stays usable after an error
        assert interface.send_and_receive_dict({"fn": square, "args": (4,)}) == 16


def test_unpicklable_instruction_fails_before_sending(backend):
    with SocketInterface() as interface:
        boot(interface, backend)
        with pytest.raises(Exception):
            interface.send_dict({"fn": square, "args": (threading.Lock(),)})
        with pytest.raises(TypeError):
            interface.send_dict(["not", "a", "dict"])
        assert interface.send_and_receive_dict({"fn": square, "args": (2,)}) == 4


def test_crash_is_reported_with_status_and_stderr(backend, capfd):
    interface = SocketInterface()
    try:
        boot(interface, backend)
        assert interface.send_and_receive_dict({"fn": square, "args": (2,)}) == 4
        interface.send_dict({"fn": crash})
        start = time.monotonic()
        with pytest.raises(ChildProcessError) as info:
            interface.receive_dict()
        assert time.monotonic() - start < 10
        text = str(info.value)
        assert "exited with status 3" in text
        assert "marker 4711" in text
        assert interface.returncode == 3
        # later calls fail at once too
        with pytest.raises(ChildProcessError):
            interface.send_dict({"fn": square, "args": (1,)})
    finally:
        interface.shutdown()
    # the program's stderr was also echoed to ours
    assert "marker 4711" in capfd.readouterr().err


def test_program_that_dies_before_connecting():
    with SocketInterface() as interface:
        interface.bind_to_random_port()
        interface.bootup(
            [sys.executable, "-c", "import sys; sys.stderr.write('early 4711\\n'); sys.exit(4)"]
        )
        with pytest.raises(ChildProcessError, match="(?s)status 4.*early 4711"):
            interface.send_dict({"fn": square, "args": (1,)})
        with pytest.raises(ChildProcessError, match="status 4"):
            interface.receive_dict()


def test_bad_command_names_the_program(tmp_path):
    with SocketInterface() as interface:
        interface.bind_to_random_port()
        with pytest.raises(FileNotFoundError, match="pmp-no-such-program-4711") as info:
            interface.bootup(["pmp-no-such-program-4711", "--flag"])
        assert info.value.filename == "pmp-no-such-program-4711"
        assert interface.pid is None
        with pytest.raises(TypeError, match="list"):
            interface.bootup("python -c pass")
        with pytest.raises(ValueError, match="empty"):
            interface.bootup([])
        with pytest.raises(OSError, match="nonexistent-4711"):
            interface.bootup([sys.executable, "-c", "pass"], cwd=str(tmp_path / "nonexistent-4711"))


def test_bootup_runs_in_cwd(backend, tmp_path):
    with SocketInterface() as interface:
        port = interface.bind_to_random_port()
        interface.bootup([sys.executable, backend, "127.0.0.1", str(port)], cwd=str(tmp_path))
        assert interface.send_and_receive_dict({"fn": os.getcwd}) == str(tmp_path)


def test_bad_arguments():
    with pytest.raises(TypeError):
        SocketInterface(interface=5)
    with pytest.raises(ValueError):
        SocketInterface(grace_period=-1)
    with pytest.raises(ValueError):
        SocketInterface(interface="not an address")
    with pytest.raises(ValueError):
        pympipool.connect_to_socket_interface("127.0.0.1", "port")


def test_receive_before_bind_is_an_error():
    with SocketInterface() as interface:
        with pytest.raises(RuntimeError, match="bind_to_random_port"):
            interface.receive_dict()


# ---- shutdown ----------------------------------------------------------------------


def test_shutdown_wait_true(backend):
    interface = SocketInterface()
    boot(interface, backend)
    assert interface.send_and_receive_dict({"fn": square, "args": (3,)}) == 9
    pid = interface.pid
    assert interface.shutdown(wait=True) == "bye"  # the backend's answer
    assert gone(pid, 0.5)
    assert interface.shutdown() is None  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        interface.send_dict({"fn": square, "args": (1,)})


def test_shutdown_wait_false(backend):
    interface = SocketInterface()
    boot(interface, backend)
    assert interface.send_and_receive_dict({"fn": square, "args": (3,)}) == 9
    pid = interface.pid
    start = time.monotonic()
    assert interface.shutdown(wait=False) is None
    assert time.monotonic() - start < 1.5
    assert gone(pid)


def test_shutdown_of_a_program_that_ignores_it():
    interface = SocketInterface(grace_period=0.5)
    interface.bind_to_random_port()
    interface.bootup(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    )
    pid = interface.pid
    start = time.monotonic()
    interface.shutdown(wait=True)
    assert time.monotonic() - start < 8  # grace, SIGTERM ignored, SIGKILL after 2 s
    assert gone(pid, 1.0)


def test_context_manager_and_garbage_collection(backend):
    with SocketInterface() as interface:
        boot(interface, backend)
        pid = interface.pid
        assert interface.send_and_receive_dict({"fn": square, "args": (6,)}) == 36
    assert gone(pid, 1.0)

    forgotten = SocketInterface()
    boot(forgotten, backend)
    pid = forgotten.pid
    assert forgotten.send_and_receive_dict({"fn": square, "args": (6,)}) == 36
    del forgotten  # the finalizer tells it to stop and reaps it
    assert gone(pid)


# ---- waiting ---------------------------------------------------------------------


class Interrupted(Exception):
    pass


def test_receive_is_interruptible(backend):
    def on_signal(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGUSR1, on_signal)
    try:
        with SocketInterface(grace_period=0.5) as interface:
            boot(interface, backend)
            interface.send_dict({"fn": sleep_then, "args": (30, "late")})
            timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGUSR1))
            timer.start()
            start = time.monotonic()
            with pytest.raises(Interrupted):
                interface.receive_dict()
            assert time.monotonic() - start < 3
            timer.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_one_thread_at_a_time(backend):
    with SocketInterface() as interface:
        boot(interface, backend)
        interface.send_dict({"fn": sleep_then, "args": (1.0, "done")})
        results = []
        waiter = threading.Thread(target=lambda: results.append(interface.receive_dict()))
        waiter.start()
        time.sleep(0.3)
        with pytest.raises(RuntimeError, match="one thread at a time"):
            interface.send_dict({"fn": square, "args": (1,)})
        waiter.join(10)
        assert results == ["done"]


# ---- security: pyzmq as an independent peer --------------------------------------

try:
    import zmq  # test-only: an independent peer
except ImportError:  # pragma: no cover
    zmq = None

needs_pyzmq = pytest.mark.skipif(zmq is None, reason="pyzmq (python3-zmq) is not installed")


def _result_message(value, task_id=1):
    import pickle

    payload = pickle.dumps({"result": value}, protocol=5)
    return [pmp_wire.header(pmp_wire.RESULT, task_id), payload]


def _peer(endpoint, keys=None):
    context = zmq.Context()
    socket = context.socket(zmq.PAIR)
    socket.linger = 0
    if keys is not None:
        socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = keys
    socket.connect(endpoint)
    return context, socket


@needs_pyzmq
@pytest.mark.skipif(not _core.CHANNEL_HAS_CURVE, reason="libzmq without CURVE")
def test_clients_without_the_keys_cannot_talk():
    with SocketInterface() as interface:
        interface.bind_to_random_port()
        env = interface.client_environment
        server_key = env["PYMPIPOOL_SOCKET_SERVER_KEY"].encode()
        public, secret = zmq.curve_keypair()
        peers = [
            _peer(interface.endpoint),  # plain TCP
            _peer(interface.endpoint, (server_key, public, secret)),  # foreign client key
        ]
        try:
            for _, socket in peers:
                try:
                    socket.send_multipart(_result_message("intruder"), flags=zmq.NOBLOCK)
                except zmq.Again:
                    pass
            assert interface._channel.recv(timeout=1.5) is None
        finally:
            for context, socket in peers:
                socket.close()
                context.term()
        # the right keys work, from an independent implementation too
        keys = (
            server_key,
            env["PYMPIPOOL_SOCKET_PUBLIC_KEY"].encode(),
            env["PYMPIPOOL_SOCKET_SECRET_KEY"].encode(),
        )
        context, socket = _peer(interface.endpoint, keys)
        try:
            socket.send_multipart(_result_message("friend"))
            assert interface.receive_dict() == "friend"
        finally:
            socket.close()
            context.term()


def test_interface_listens_on_loopback_only():
    with SocketInterface(curve=False) as interface:
        port = interface.bind_to_random_port()
        assert interface.endpoint == f"tcp://127.0.0.1:{port}"


@needs_pyzmq
def test_malformed_messages_are_dropped():
    with SocketInterface(curve=False) as interface:
        interface.bind_to_random_port()
        context, socket = _peer(interface.endpoint)
        try:
            socket.send(b"GET / HTTP/1.0\r\n\r\n")
            socket.send_multipart([b"PMPX" + b"\0" * 20, b"x"])
            socket.send_multipart(_result_message("after the garbage"))
            assert interface.receive_dict() == "after the garbage"
        finally:
            socket.close()
            context.term()


# Run in a subprocess, so that a send that hangs (in C, with the GIL
# released: the per-test deadline cannot end it) fails the test instead.
_PEER_LEAVES = """
import threading, time
import zmq
from pympipool import SocketInterface, _core
from pympipool._serialize import _dumps

payload, buffers = _dumps({"fn": None})
with SocketInterface(curve=False) as interface:
    interface.bind_to_random_port()
    context = zmq.Context()
    peer = context.socket(zmq.PAIR)
    peer.linger = 0
    peer.connect(interface.endpoint)
    assert interface._channel.send(_core.MSG_TASK, 1, 0, payload, buffers, timeout=10)
    peer.recv_multipart()

    def leave():
        peer.close()
        context.term()

    # every send pauses 0.5 s after the wait found the peer there: it
    # leaves meanwhile, and the send must notice instead of waiting for good
    closer = threading.Timer(0.1, leave)
    closer.start()
    start = time.monotonic()
    sent = interface._channel.send(_core.MSG_TASK, 2, 0, payload, buffers, timeout=1.0)
    took = time.monotonic() - start
    closer.join()
    print(sent, took < 5.0)
"""


@needs_pyzmq
def test_send_to_a_peer_that_leaves_does_not_hang():
    """The peer leaves after the wait found it writable and before the send
    (a foreign client closing right before ``shutdown()``, as at the end of
    the pyzmq tests above, or a program dying): the send used to block in
    ZeroMQ for good, deaf to signals and to the per-test deadline.  Now it
    waits again, within its timeout."""
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["PYMPIPOOL_TEST_SEND_PAUSE_MS"] = "500"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PEER_LEAVES],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"a send to a peer that left hung: {exc.stderr}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"], proc.stdout + proc.stderr
