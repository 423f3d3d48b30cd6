"""``SocketInterface``: couple this process with one program it boots.

This is the low-level coupling the executors grew out of, public so that
other projects can drive a program of their own (see docs/socket-interface.md
for a complete user-written backend).  It runs on pympipool's own C transport
(``frontend/pmp_channel.h`` through ``pympipool._core.Channel``), not on
pyzmq:

* one ZeroMQ PAIR socket, bound to ``127.0.0.1`` unless ``interface`` says
  otherwise, encrypted and authenticated with CURVE when libzmq supports it
  (fresh keys per interface; only the booted program gets the client key, in
  its environment);
* instructions travel as pympipool ``TASK`` messages, replies as ``RESULT``
  or ``ERROR``; payloads are pickled with cloudpickle, protocol 5, large
  buffers (numpy arrays) out of band and without copies (docs/protocol.md);
* the booted program is watched: if it dies, a waiting ``receive_dict()``
  raises ``ChildProcessError`` with its exit status and the end of its stderr
  instead of hanging.

The other end, for the booted program: ``connect_to_socket_interface``,
``receive_instruction``, ``send_result`` and ``close_connection``.

A ``SocketInterface`` (like a ZeroMQ socket) may be used by one thread at a
time; a second thread calling in while one waits gets ``RuntimeError``.

A queuing system instead of a child process (pympipool 0.5's
``queue_adapter``): ``bootup`` hands the command, as one shell-quoted string,
to ``queue_adapter.submit_job``.  The job cannot inherit the keys through
its environment, so they go into a file of mode 0600 in a fresh directory of
mode 0700 (``PYMPIPOOL_SOCKET_KEY_FILE``, set on the command line with
``env``; the file path is not a secret, its content is), removed at
``shutdown``; ``connect_to_socket_interface`` reads it.  The file must be
visible to the job: on another host, put ``TMPDIR`` on a shared file system
of your own.

In a child made by ``os.fork()`` an inherited interface belongs to the
parent: its methods raise ``RuntimeError``, ``shutdown()`` returns at once
and the child's exit leaves the parent's program alone.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket as _pysocket
import tempfile
import time
import traceback
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union


from . import _core
from ._payload import error_record, type_name
from ._serialize import (
    _dumps,
    _register_module_of,
    loads_error,
    loads_message,
)

#: Environment variables through which the booted program gets its keys.
ENV_SERVER_KEY = "PYMPIPOOL_SOCKET_SERVER_KEY"
ENV_PUBLIC_KEY = "PYMPIPOOL_SOCKET_PUBLIC_KEY"
ENV_SECRET_KEY = "PYMPIPOOL_SOCKET_SECRET_KEY"
_KEY_VARIABLES = (ENV_SERVER_KEY, ENV_PUBLIC_KEY, ENV_SECRET_KEY)
#: For a program started by a queue adapter: a file holding the three keys,
#: one ``NAME=value`` line each.
ENV_KEY_FILE = "PYMPIPOOL_SOCKET_KEY_FILE"



def _shutdown_channel(channel: _core.Channel, wait: bool, grace_period: float) -> Any:
    """Tell the peer to stop, collect its answer if it gives one, close the
    channel and stop the booted program.  Returns the answer's result or
    None.  Used by ``SocketInterface.shutdown`` and by the finalizer."""
    result = None
    deadline = time.monotonic() + grace_period
    if getattr(channel, "forked", False):  # the parent's program: leave it
        return None
    try:
        if channel.closed:
            return None
        payload, buffers = _dumps({"shutdown": True, "wait": wait})
        try:
            # A booted program may still be starting: give it the grace
            # period to connect.  Otherwise only a peer connected right now
            # can be told.
            timeout = grace_period if wait and channel.pid is not None else 0.0
            sent = channel.send(_core.MSG_TASK, 2**63, 0, payload, buffers, timeout=timeout)
        except (OSError, RuntimeError):  # gone (ChildProcessError), or left mid-message
            sent = False
        if sent and wait:
            try:
                reply = channel.recv(timeout=max(deadline - time.monotonic(), 0.0))
            except (ChildProcessError, RuntimeError):
                reply = None  # the program left without answering: fine
            if reply is not None and reply[0] == _core.MSG_RESULT:
                try:
                    value = loads_message(reply[3])
                    if isinstance(value, dict):
                        result = value.get("result")
                except Exception:
                    result = None
    finally:
        left = max(deadline - time.monotonic(), 0.0) if wait else grace_period
        channel.destroy(grace_ms=int(left * 1000), wait=wait)
    return result


class SocketInterface:
    """The server end of a coupling with one program.

    :param queue_adapter: ``None`` (default) boots the program here as a
        child process; an object with ``submit_job(working_directory=,
        cores=, command=, **queue_adapter_kwargs)`` (pympipool 0.5's queue
        adapter, e.g. pysqa's) gets the command instead, as one
        shell-quoted string.
    :param queue_adapter_kwargs: extra keyword arguments for ``submit_job``.
    :param interface: address to bind to; ``"127.0.0.1"`` (the default)
        accepts connections from this host only; use a routable address (or
        ``"*"``) when the program runs on another host.
    :param curve: ``None`` (default) uses CURVE when libzmq has it, ``True``
        requires it, ``False`` turns it off.
    :param grace_period: seconds ``shutdown()`` gives the program to exit by
        itself before it is sent SIGTERM (and SIGKILL 2 s later).

    The two positional parameters are pympipool 0.5's; the others are
    keyword-only.  Typical use::

        with SocketInterface() as interface:
            port = interface.bind_to_random_port()
            interface.bootup([sys.executable, "backend.py", str(port)])
            print(interface.send_and_receive_dict({"fn": f, "args": (1,)}))
    """

    def __init__(
        self,
        queue_adapter: Any = None,
        queue_adapter_kwargs: Optional[Dict[str, Any]] = None,
        *,
        interface: str = "127.0.0.1",
        curve: Optional[bool] = None,
        grace_period: float = 5.0,
    ) -> None:
        if queue_adapter is not None and not callable(getattr(queue_adapter, "submit_job", None)):
            hint = (
                f" (the address to bind is a keyword argument: interface={queue_adapter!r})"
                if isinstance(queue_adapter, str)
                else ""
            )
            raise TypeError(
                f"queue_adapter must be None or have a callable submit_job() method, "
                f"not {type(queue_adapter).__name__}{hint}"
            )
        if not isinstance(queue_adapter_kwargs, (dict, type(None))):
            raise TypeError(
                f"queue_adapter_kwargs must be a dict or None, "
                f"not {type(queue_adapter_kwargs).__name__}"
            )
        if not isinstance(interface, str):
            raise TypeError(f"interface must be a str, not {type(interface).__name__}")
        if isinstance(grace_period, bool) or not isinstance(grace_period, (int, float)):
            raise TypeError("grace_period must be a number of seconds")
        if not grace_period >= 0:
            raise ValueError(f"grace_period must be >= 0, got {grace_period!r}")
        if curve is not None and not isinstance(curve, bool):
            raise TypeError("curve must be None, True or False")
        self._queue_adapter = queue_adapter
        self._queue_adapter_kwargs = dict(queue_adapter_kwargs or {})
        self._grace_period = float(grace_period)
        self._channel = _core.Channel(
            interface=interface, curve=-1 if curve is None else int(curve)
        )
        self._task_id = 0
        self._key_dir: Optional[str] = None
        self._finalizer = weakref.finalize(
            self, _shutdown_channel, self._channel, True, min(self._grace_period, 2.0)
        )

    def _check_usable(self) -> None:
        if getattr(self._channel, "forked", False):
            raise RuntimeError(
                f"this SocketInterface belongs to another process; it cannot be used "
                f"in a forked child process (pid {os.getpid()}): create a new one in "
                f"the child"
            )

    # ---- set-up ---------------------------------------------------------------

    def bind_to_random_port(self) -> int:
        """Bind to a free TCP port of the interface and return the port."""
        return self._channel.bind_random_port()

    @property
    def endpoint(self) -> Optional[str]:
        """The bound endpoint (``"tcp://127.0.0.1:43012"``), "" before binding."""
        return self._channel.endpoint

    @property
    def curve(self) -> bool:
        """Whether the connection is encrypted and authenticated with CURVE."""
        return self._channel.curve

    @property
    def client_environment(self) -> Dict[str, str]:
        """The environment variables a program needs to connect (the CURVE
        keys); empty without CURVE.  ``bootup`` sets them itself; pass them
        to a program you start some other way (e.g. on another host)."""
        keys = self._channel.keys
        if keys is None:
            return {}
        return dict(zip(_KEY_VARIABLES, keys))

    @property
    def pid(self) -> Optional[int]:
        """Process id of the booted program, or None."""
        return self._channel.pid

    @property
    def returncode(self) -> Optional[int]:
        """Like ``subprocess.Popen.returncode``: None while the booted program
        runs (or none was booted), its exit code once it exited, ``-N`` if
        signal N killed it."""
        status = self._channel.exit_status
        if status is None or status < 0:
            return None
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return -os.WTERMSIG(status)
        return None

    def bootup(
        self,
        command_lst: Sequence[Union[str, os.PathLike[str]]],
        cwd: Union[str, os.PathLike[str], None] = None,
        cores: Optional[int] = None,
    ) -> None:
        """Start the program ``command_lst`` (an argument list, no shell) in
        ``cwd``, with this process's environment plus the keys of
        ``client_environment``.  Its stdout is ours; its stderr is echoed to
        ours and its last lines are kept for the error if it dies.

        With a ``queue_adapter`` the command goes to its ``submit_job``
        instead, with ``working_directory=cwd`` and ``cores`` (pympipool
        0.5's meaning; ``cores`` is used for nothing else), and the keys in
        a private file (see the module docstring).

        Raises ``FileNotFoundError`` naming the program if it is not found,
        ``OSError`` if it cannot be started (e.g. a bad ``cwd``)."""
        self._check_usable()
        if isinstance(command_lst, (str, bytes)):
            raise TypeError(
                "command_lst must be a list of arguments, not a string (no shell is used)"
            )
        command = [os.fspath(c) for c in command_lst]
        if not command:
            raise ValueError("command_lst is empty")
        if self._queue_adapter is not None:
            self._submit_to_queue(command, cwd, cores)
            return
        env = dict(os.environ)
        for name in (*_KEY_VARIABLES, ENV_KEY_FILE):
            env.pop(name, None)
        env.update(self.client_environment)
        self._channel.bootup(
            command,
            cwd=None if cwd is None else os.fspath(cwd),
            env=[f"{k}={v}" for k, v in env.items()],
        )

    def _submit_to_queue(
        self,
        command: List[str],
        cwd: Union[str, os.PathLike[str], None],
        cores: Optional[int],
    ) -> None:
        keys = self.client_environment
        if keys:
            self._key_dir = tempfile.mkdtemp(prefix="pympipool-socket-")  # mode 0700
            path = os.path.join(self._key_dir, "keys")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in keys.items())
            weakref.finalize(self, _remove_key_dir, self._key_dir, os.getpid())
            command = ["env", f"{ENV_KEY_FILE}={path}", *command]
        self._queue_adapter.submit_job(
            working_directory=None if cwd is None else os.fspath(cwd),
            cores=cores,
            command=shlex.join(command),
            **self._queue_adapter_kwargs,
        )

    # ---- talking --------------------------------------------------------------

    def send_dict(self, input_dict: Dict[str, Any]) -> None:
        """Send one instruction (a dict, pickled with cloudpickle) to the
        program.  Waits until the program is connected; raises
        ``ChildProcessError`` if it has exited, and whatever pickling raises
        (before anything is sent) for an unpicklable value."""
        self._check_usable()
        if not isinstance(input_dict, dict):
            raise TypeError(f"input_dict must be a dict, not {type(input_dict).__name__}")
        for value in input_dict.values():
            _register_module_of(value)
        payload, buffers = _dumps(input_dict)
        self._task_id += 1
        self._channel.send(_core.MSG_TASK, self._task_id, 0, payload, buffers)

    def receive_dict(self) -> Any:
        """Wait for the program's answer and return its ``"result"``.

        If the answer carries an error, that exception is raised (same class)
        with the remote traceback as ``__cause__``.  If the program exits
        before answering, raises ``ChildProcessError`` with its exit status
        and the end of its stderr.  Ctrl-C interrupts the wait."""
        self._check_usable()
        kind, _task_id, _flags, frames = self._channel.recv()
        if kind == _core.MSG_ERROR:
            raise _socket_error(frames)
        value = loads_message(frames)
        if not isinstance(value, dict) or "result" not in value:
            raise ValueError(
                "the program's answer has no 'result' key: "
                f"{sorted(value) if isinstance(value, dict) else type(value).__name__!r}"
            )
        return value["result"]

    def send_and_receive_dict(self, input_dict: Dict[str, Any]) -> Any:
        """``send_dict(input_dict)`` then ``receive_dict()``."""
        self.send_dict(input_dict)
        return self.receive_dict()

    # ---- the end --------------------------------------------------------------

    def shutdown(self, wait: bool = True) -> Any:
        """Send ``{"shutdown": True, "wait": wait}`` to the program (if it is
        connected), close the socket and stop the program.

        With ``wait=True`` waits for the program to exit, at most
        ``grace_period`` seconds, then SIGTERM and, 2 s later, SIGKILL; with
        ``wait=False`` returns at once and the same happens in the
        background.  Returns the ``"result"`` of the program's answer to the
        shutdown instruction if it sent one (``wait=True`` only), else None.
        Idempotent; in a forked child it returns at once."""
        if getattr(self._channel, "forked", False) or self._channel.closed:
            return None
        self._finalizer.detach()
        try:
            return _shutdown_channel(self._channel, bool(wait), self._grace_period)
        finally:
            if self._key_dir is not None:
                _remove_key_dir(self._key_dir, os.getpid())
                self._key_dir = None

    def __enter__(self) -> "SocketInterface":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        state = "closed" if self._channel.closed else (self.endpoint or "not bound")
        return f"<pympipool.SocketInterface {state} pid={self.pid}>"


def _remove_key_dir(path: str, pid: int) -> None:
    """Removes a key directory made by ``bootup`` (not from a forked child:
    it is the parent's)."""
    if os.getpid() == pid:
        shutil.rmtree(path, ignore_errors=True)


def _socket_error(frames: Sequence[Any]) -> BaseException:
    """The exception an ERROR answer carries, its cause naming the program."""
    return loads_error(frames, where="Socket peer")


# ---- the other end: used by the booted program ---------------------------------


class SocketContext:
    """The context half of ``connect_to_socket_interface``'s answer (kept for
    the original API, where it was a ZeroMQ context); ``close_connection``
    terminates it."""

    def __init__(self) -> None:
        self.closed = False

    def term(self) -> None:
        self.closed = True


class BackendSocket:
    """The connection of a booted program to its ``SocketInterface``; use it
    with ``receive_instruction``, ``send_result`` and ``close_connection``.
    One thread at a time."""

    def __init__(self, channel: _core.Channel) -> None:
        self._channel = channel

    @property
    def closed(self) -> bool:
        return self._channel.closed

    @property
    def curve(self) -> bool:
        return self._channel.curve

    def close(self) -> None:
        """Close the connection; answers still queued get up to 1 s to leave."""
        self._channel.destroy(grace_ms=0, wait=True)


def connect_to_socket_interface(
    host: str, port: Union[int, str]
) -> Tuple[SocketContext, BackendSocket]:
    """Connect to the ``SocketInterface`` listening on ``host``:``port``.

    The CURVE keys come from the environment (``PYMPIPOOL_SOCKET_*``), where
    ``SocketInterface.bootup`` puts them; without them the connection is
    plain TCP, which a CURVE interface refuses.  Returns ``(context,
    socket)`` for ``receive_instruction``, ``send_result`` and
    ``close_connection``."""
    try:
        port_number = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"port must be an integer, got {port!r}") from None
    keys = [os.environ.get(name) for name in _KEY_VARIABLES]
    key_file = os.environ.get(ENV_KEY_FILE)
    if key_file and not any(keys):
        keys = _read_key_file(key_file)
    if any(keys) and not all(keys):
        missing = [n for n, k in zip(_KEY_VARIABLES, keys) if not k]
        raise ValueError(f"incomplete CURVE keys in the environment: {', '.join(missing)} unset")
    if all(keys):
        channel = _core.Channel.connect(str(host), port_number, *keys)
    else:
        channel = _core.Channel.connect(str(host), port_number)
    return SocketContext(), BackendSocket(channel)


def _read_key_file(path: str) -> List[Optional[str]]:
    """The three keys from a key file written by ``bootup`` for a queue
    adapter's job (``NAME=value`` lines)."""
    try:
        with open(path) as f:
            entries = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot read the SocketInterface key file ({ENV_KEY_FILE}): {exc.strerror}", path
        ) from None
    return [entries.get(name) for name in _KEY_VARIABLES]


def receive_instruction(socket: BackendSocket) -> Dict[str, Any]:
    """Wait for the next instruction (the dict the interface sent with
    ``send_dict``; ``{"shutdown": True, "wait": ...}`` asks the program to
    stop).  Ctrl-C interrupts the wait."""
    _kind, _task_id, _flags, frames = socket._channel.recv()
    instruction: Dict[str, Any] = loads_message(frames)
    return instruction


def _error_payload(exception: BaseException) -> bytes:
    """The ERROR payload of docs/protocol.md for ``exception``."""
    try:
        tb_text = "".join(
            traceback.format_exception(type(exception), exception, exception.__traceback__)
        )
    except Exception:
        tb_text = f"{type_name(exception)} (its traceback could not be formatted)\n"
    return error_record(exception, tb_text, None, 0, 1, _pysocket.gethostname())


def send_result(socket: BackendSocket, result_dict: Dict[str, Any]) -> None:
    """Answer the last instruction: ``{"result": value}``, or ``{"error":
    exception}`` to make the interface's ``receive_dict`` raise it (same
    class, with this traceback as ``__cause__``; call it in the ``except``
    block so that the traceback is there).  A non-exception ``"error"``
    becomes a ``RuntimeError`` with its text."""
    if not isinstance(result_dict, dict):
        raise TypeError(f"result_dict must be a dict, not {type(result_dict).__name__}")
    task_id = socket._channel.last_task_id or 1
    if "error" in result_dict:
        error = result_dict["error"]
        if not isinstance(error, BaseException):
            error = RuntimeError(str(error))
        socket._channel.send(_core.MSG_ERROR, task_id, 0, _error_payload(error), [])
        return
    payload, buffers = _dumps(result_dict)
    socket._channel.send(_core.MSG_RESULT, task_id, 0, payload, buffers)


def close_connection(socket: BackendSocket, context: SocketContext) -> None:
    """Close the connection (answers still queued get up to 1 s to leave)."""
    socket.close()
    context.term()


__all__ = [
    "SocketInterface",
    "connect_to_socket_interface",
    "receive_instruction",
    "send_result",
    "close_connection",
    "ENV_SERVER_KEY",
    "ENV_PUBLIC_KEY",
    "ENV_SECRET_KEY",
    "ENV_KEY_FILE",
]
