"""The engine every pympipool interface runs on, over ``pympipool._core``.

``Executor``, ``PoolExecutor``, ``Pool`` and ``MPISpawnPool`` differ only in
how they lay out the MPI job (ranks, ranks per group, tasks a group may hold)
and in the API they put on top.  What they share lives here, in ``_Engine``:

* validation of everything before anything is launched (counts, ``cwd``,
  ``init_function``, the queue adapter, the programs to run);
* the runtime's environment arguments (this process's ``sys.executable``,
  ``sys.path`` and working directory) and the launch, here or through a queue
  adapter's ``submit_job``;
* the table of futures and the messages to the frontend: plain tasks (the
  function pickled with the call), functions kept by key (``DEFINE`` once,
  then ``FN_KEY`` tasks, ``FORGET`` after the last of them completed) and
  chunks (``CHUNK``: many calls in one task, one result list back);
* one dispatcher thread that turns completions into ``Future`` results;
* closing, terminating and the clean-up guarantees.

Threads and lifetime.  The dispatcher thread (a daemon) loops on
``core.wait()``, which blocks in C with the GIL released.  It holds only a
``_State`` (the core and the table of futures), never the interface object,
so one nobody references is garbage-collected; its ``weakref.finalize`` then
closes the core (queued tasks still finish, their futures stay valid) and
the dispatcher destroys the core after the final ``CLOSED`` completion.
Functions in ``_State.exit_hooks`` run when the dispatcher ends (every
future is finished by then); the pools stop their result-handler thread
that way.  An ``atexit`` hook ends every core still alive when the
interpreter exits, so no MPI process outlives the user's process: an
executor that was shut down without waiting (or garbage-collected) first
runs its queued calls, as ``ProcessPoolExecutor`` does; one still open is
stopped (``SHUTDOWN``, then ``SIGTERM`` after a grace period).

User data never kills a thread of ours.  Whatever a completion carries (a
result whose unpickling raises ``SystemExit``, a done-callback that raises
``KeyboardInterrupt``) fails or is logged for that future only; the
dispatcher goes on.  Nor does it keep anything alive: a completion's frames,
value and future are dropped before the next wait, so a result the caller
dropped is freed at once.

Fork.  A child made by ``os.fork()`` (or ``multiprocessing``'s fork start
method) inherits the executors' Python objects but none of their threads.
An ``os.register_at_fork`` hook marks every inherited executor dead in the
child: submitting raises ``ExecutorBroken`` at once, its pending futures
fail with it, ``shutdown()`` and the context manager return at once, and
the child's exit does not wait for them (the C frontend, for its part,
never joins or signals from the child: ``_core.Executor.forked``).  The
parent is unaffected.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import errno
import itertools
import logging
import os
import shlex
import shutil
import sys
import threading
import time
import weakref
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _config, _core
from ._serialize import (
    dumps_call,
    dumps_function,
    dumps_init,
    dumps_keyed,
    loads_error,
    loads_result,
)

_AFTER_SHUTDOWN = "cannot schedule new futures after shutdown"
#: The out-of-band buffers of a message as they are handed to the frontend.
_Buffers = Sequence[Union[bytes, memoryview]]
#: One call of a chunk or keyed task: (args, kwargs).
_Call = Tuple[Tuple[Any, ...], Dict[str, Any]]
#: What ``_core.Executor.wait`` returns: (kind, task_id, flags, frames, text,
#: status).
_Completion = Tuple[int, int, int, List["_core.Frame"], str, int]
#: ``cwd`` as the interfaces take it: a path, or None.
_Cwd = Union[str, "os.PathLike[str]", None]
#: Grace period for the job to leave after SHUTDOWN before it is killed.
_DESTROY_GRACE_MS = 3000
#: How long an interrupted call (SIGINT forwarded to its ranks when an
#: exception leaves a ``with`` block) may take to finish before its job is
#: stopped.
INTERRUPT_GRACE_S = 2.0
#: How often the interrupt is repeated meanwhile (for calls that start later).
_INTERRUPT_ROUND_S = 0.05
#: concurrent.futures' own logger: failing done-callbacks are reported there.
_LOGGER = logging.getLogger("concurrent.futures")


class ExecutorBroken(concurrent.futures.BrokenExecutor):
    """The MPI job behind an executor is gone (it crashed, could not start, or
    runs a different Python).  The message says what happened and carries the
    tail of the job's stderr.  Every pending future fails with it and every
    later ``submit`` raises it at once."""


# ---- shared state between an executor and its dispatcher thread -----------


class _State:
    """The core and the futures table, shared by an executor, its futures and
    its dispatcher thread.  It never refers to the executor itself."""

    def __init__(self, core: "_core.Executor") -> None:
        self.core = core
        self.pid = os.getpid()
        #: shut down (or collected) without waiting: queued calls still run
        self.closing = False
        self.dispatcher: Optional[threading.Thread] = None
        #: run in a forked child before its futures are failed (pools)
        self.fork_hooks: List[Callable[[], None]] = []
        self.lock = threading.Lock()
        self.futures: Dict[int, "_Future"] = {}
        self.broken: Optional[str] = None
        self.ids = itertools.count(1)
        self.keys = itertools.count(1)
        self.hellos: List[Dict[str, str]] = []
        self.exit_hooks: List[Callable[[], None]] = []
        #: why the job was relaunched, one text per restart (EVENT_RESTART)
        self.restarts: List[str] = []

    # -- submitting and cancelling

    def submit(
        self,
        msg_type: int,
        flags: int,
        payload: bytes,
        buffers: _Buffers,
        ncalls: int = 1,
    ) -> "_Future":
        task_id = next(self.ids)
        future = _Future(self, task_id)
        with self.lock:
            if self.broken is not None:
                raise ExecutorBroken(self.broken)
            self.futures[task_id] = future
            try:
                self.core.submit(task_id, msg_type, flags, payload, buffers, ncalls)
            except BrokenPipeError as exc:
                del self.futures[task_id]
                if self.broken is None:
                    self.broken = exc.strerror or str(exc)
                raise ExecutorBroken(self.broken) from None
            except ValueError as exc:
                del self.futures[task_id]
                if self.core.destroyed:
                    raise ExecutorBroken("the executor was destroyed") from None
                raise exc
            except RuntimeError:
                del self.futures[task_id]
                raise RuntimeError(_AFTER_SHUTDOWN) from None
            except BaseException:
                del self.futures[task_id]
                raise
        return future

    def submit_init(self, payload: bytes, buffers: _Buffers) -> None:
        self.core.submit(next(self.ids), _core.MSG_INIT, 0, payload, buffers)

    def define_key(self, key: int, payload: bytes, buffers: _Buffers) -> None:
        """Broadcasts a DEFINE of a pickled function under key (from
        ``self.keys``)."""
        with self.lock:
            if self.broken is not None:
                raise ExecutorBroken(self.broken)
            try:
                self.core.broadcast(_core.MSG_DEFINE, key, payload, buffers)
            except BrokenPipeError as exc:
                if self.broken is None:
                    self.broken = exc.strerror or str(exc)
                raise ExecutorBroken(self.broken) from None
            except ValueError:
                if self.core.destroyed:
                    raise ExecutorBroken("the executor was destroyed") from None
                raise
            except RuntimeError:
                raise RuntimeError(_AFTER_SHUTDOWN) from None

    def forget(self, key: int) -> None:
        """Broadcasts the FORGET of key.  Once the job is gone or the core is
        closed there is nothing left to forget: errors are ignored."""
        try:
            self.core.broadcast(_core.MSG_FORGET, key)
        except (OSError, ValueError, RuntimeError):
            pass

    def forget_when_done(self, key: int, futures: Sequence[Future[Any]]) -> None:
        """FORGETs key once every future of futures is finished (done,
        failed or cancelled): only then has no group a task that uses it."""
        if not futures:
            self.forget(key)
            return
        lock = threading.Lock()
        left = [len(futures)]

        def one_done(_future: Future[Any]) -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                self.forget(key)

        for future in futures:
            future.add_done_callback(one_done)

    def cancel(self, task_id: int) -> bool:
        """Removes a task the frontend has not sent yet."""
        with self.lock:
            if task_id not in self.futures:
                return False
            try:
                removed = self.core.cancel(task_id)
            except ValueError:  # destroyed: the future is being failed
                return False
            if removed:
                del self.futures[task_id]
            return removed

    def cancel_all(self) -> None:
        with self.lock:
            try:
                ids = self.core.cancel_all()
            except ValueError:
                return
            cancelled = [self.futures.pop(i) for i in ids if i in self.futures]
        for future in cancelled:
            _cancelled(future)

    def pop(self, task_id: int) -> Optional["_Future"]:
        with self.lock:
            return self.futures.pop(task_id, None)

    # -- breaking, closing, destroying

    def break_executor(self, message: str) -> None:
        """Marks the executor broken and fails every pending future."""
        with self.lock:
            if self.broken is None:
                self.broken = message
            futures = list(self.futures.values())
            self.futures.clear()
        for future in futures:
            _finish(future, exception=ExecutorBroken(message))

    def close(self) -> None:
        self.closing = True
        try:
            self.core.close()
        except ValueError:  # already destroyed
            pass

    @property
    def forked(self) -> bool:
        """Whether this is a forked child of the process that made the
        executor (the frontend's own record, ``_core.Executor.forked``)."""
        return bool(self.core.forked)

    def destroy(self, grace_ms: int = _DESTROY_GRACE_MS) -> None:
        if self.forked:  # the parent's job: not ours to stop
            return
        self.core.destroy(grace_ms=grace_ms)

    def forked_text(self) -> str:
        return (
            f"this executor belongs to process {self.pid}; it cannot be used in a "
            f"forked child process (pid {os.getpid()}): create a new one in the child"
        )

    def pending(self) -> int:
        try:
            return self.core.pending()
        except ValueError:
            return 0


class _Future(Future[Any]):
    """A Future whose ``cancel()`` also removes the task from the frontend's
    queue; it succeeds only while the task has not been sent to the ranks."""

    # Future's private attributes used here (typeshed does not declare them).
    _condition: threading.Condition
    _done_callbacks: List[Callable[[Future[Any]], object]]

    def __init__(self, state: _State, task_id: int) -> None:
        super().__init__()
        self._pmp_state = state
        self._pmp_task_id = task_id

    def cancel(self) -> bool:
        if self.done():
            return super().cancel()
        if self._pmp_state.forked or not self._pmp_state.cancel(self._pmp_task_id):
            return False
        return _cancelled(self)

    def _invoke_callbacks(self) -> None:
        # As Future._invoke_callbacks, but a callback that raises any
        # BaseException (SystemExit, KeyboardInterrupt, ...) is logged too:
        # it must neither kill the dispatcher thread nor keep the callbacks
        # after it from running.
        for callback in self._done_callbacks:
            try:
                callback(self)
            except BaseException:
                _LOGGER.exception("exception calling callback for %r", self)


def _cancelled(future: Future[Any]) -> bool:
    """Cancels a future whose task the frontend has dropped, and moves it on
    to CANCELLED_AND_NOTIFIED at once, as ProcessPoolExecutor does when it
    drops a cancelled work item: ``concurrent.futures.wait`` and
    ``as_completed`` count a cancelled future as finished only in that
    state (and wait for it forever otherwise)."""
    if not Future.cancel(future):
        return False
    future.set_running_or_notify_cancel()
    return True


def _finish(
    future: Future[Any], result: Any = None, exception: Optional[BaseException] = None
) -> None:
    try:
        if not future.set_running_or_notify_cancel():
            return  # cancelled meanwhile
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
    except RuntimeError:  # set_running_or_notify_cancel on a finished future
        pass


def _parse_hello(text: str) -> Dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _check_hello(fields: Dict[str, str]) -> Optional[str]:
    """Returns why the worker cannot serve us, or None."""
    theirs = fields.get("python", "")
    ours = "%d.%d" % sys.version_info[:2]
    if theirs.split(".")[:2] != ours.split("."):
        return (
            f"the runtime on {fields.get('host', '?')} (pid {fields.get('pid', '?')}) "
            f"runs Python {theirs or 'of unknown version'} but this process runs "
            f"Python {sys.version.split()[0]}: pickles cannot cross; build "
            f"pympipool-runtime for {sys.executable} or point PYMPIPOOL_RUNTIME at "
            f"one that was"
        )
    return None


def _dispatch(state: _State) -> None:
    """The dispatcher thread: completes futures until the core is closed or
    destroyed.  Holds only ``state``; one event at a time, and nothing of it
    after it was handled."""
    core = state.core
    event: Optional[_Completion]
    try:
        while True:
            try:
                event = core.wait(None)
            except ValueError:  # destroyed under us (atexit, finalizer)
                state.break_executor("the executor was destroyed")
                return
            except RuntimeError:  # CLOSED already delivered
                return
            if event is None:
                continue
            try:
                if _handle(state, event):
                    return
            except BaseException:  # a thread of ours never dies of user data
                _LOGGER.exception("pympipool: error while handling a completion")
            event = None  # the frames and what was decoded from them go now
    except BaseException as exc:  # never leave futures hanging
        state.break_executor(f"pympipool's dispatcher thread failed: {exc!r}")
        raise
    finally:
        for hook in state.exit_hooks:
            try:
                hook()
            except BaseException:
                _LOGGER.exception("pympipool: error in an exit hook")


def _handle(state: _State, event: _Completion) -> bool:
    """Handles one completion; True when the dispatcher is to stop.  Runs
    user code (unpickling, done-callbacks): whatever it raises is the
    future's exception, never the dispatcher's."""
    kind, task_id, flags, frames, text, status = event
    if kind == _core.DONE_RESULT:
        future = state.pop(task_id)
        if future is None:
            return False
        try:
            value = loads_result(flags, frames, _core.FLAG_PER_RANK)
        except BaseException as exc:  # SystemExit from a hostile __reduce__, ...
            _finish(future, exception=exc)
        else:
            _finish(future, result=value)
    elif kind == _core.DONE_ERROR:
        _fail(state, task_id, lambda: loads_error(frames))
    elif kind == _core.DONE_BROKEN:
        with state.lock:
            if state.broken is None:
                state.broken = text
        _fail(state, task_id, lambda: ExecutorBroken(text))
    elif kind == _core.DONE_LOST:
        # Lost in a restart: this call fails, the executor goes on.
        _fail(state, task_id, lambda: ExecutorBroken(text))
    elif kind == _core.DONE_TIMEOUT:
        _fail(state, task_id, lambda: TimeoutError(text))
    elif kind == _core.EVENT_RESTART:
        state.restarts.append(text)
    elif kind == _core.EVENT_HELLO:
        fields = _parse_hello(text)
        state.hellos.append(fields)
        problem = _check_hello(fields)
        if problem is not None:
            # Nothing useful can run there: stop the job now rather than
            # wait for tasks it may never answer.
            state.break_executor(problem)
            state.destroy()
            return True
    elif kind == _core.EVENT_EXIT:
        state.break_executor(text or f"the MPI job exited (status {status})")
    elif kind == _core.EVENT_CLOSED:
        state.break_executor("the executor was shut down")
        state.destroy()
        return True
    return False


def _fail(state: _State, task_id: int, make_error: Callable[[], BaseException]) -> None:
    """Fails the future of task_id (if it is still ours) with make_error()."""
    future = state.pop(task_id)
    if future is not None:
        _finish(future, exception=make_error())


# ---- clean-up at garbage collection and interpreter exit -------------------

_live_states: "weakref.WeakSet[_State]" = weakref.WeakSet()
_atexit_lock = threading.Lock()
_atexit_registered = False


def _end_all_at_exit() -> None:
    """atexit: an executor shut down without waiting (or collected) runs its
    queued calls first, as with ``ProcessPoolExecutor``; then every job is
    stopped.  Ctrl-C while waiting stops the rest at once."""
    waiting = True
    for state in list(_live_states):
        if waiting and state.closing and state.dispatcher is not None:
            try:
                state.dispatcher.join()
            except KeyboardInterrupt:
                waiting = False
        try:
            state.destroy(grace_ms=_DESTROY_GRACE_MS if waiting else 0)
        except Exception:
            pass


def _register_at_exit(state: _State) -> None:
    global _atexit_registered
    with _atexit_lock:
        _live_states.add(state)
        if not _atexit_registered:
            atexit.register(_end_all_at_exit)
            _atexit_registered = True


def _after_fork_in_child() -> None:
    """os.register_at_fork hook: in the child, every inherited executor is
    dead (see the module docstring).  No lock of the parent's threads is
    taken: they may have been held at the fork."""
    global _atexit_lock
    _atexit_lock = threading.Lock()
    states = list(_live_states)
    _live_states.clear()
    for state in states:
        state.lock = threading.Lock()
        for hook in state.fork_hooks:
            try:
                hook()
            except BaseException:
                _LOGGER.exception("pympipool: error in a fork hook")
    for state in states:
        futures = list(state.futures.values())
        state.futures = {}
        for future in futures:
            future._condition = threading.Condition()  # may be held by a dead thread
            _finish(future, exception=ExecutorBroken(state.forked_text()))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _collect(state: _State, dispatcher: threading.Thread) -> None:
    """weakref.finalize callback of a collected executor: queued tasks still
    run, then the dispatcher destroys the core.  Without a dispatcher,
    destroy now.  Nothing in a forked child: the job is the parent's."""
    if state.forked:
        return
    if dispatcher.is_alive():
        state.close()
    else:
        state.destroy()


# ---- validation helpers -------------------------------------------------


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be greater than 0")
    return int(value)


class _Default(int):
    """The default of a count that has an alias (``cores`` for
    ``max_workers``): an int equal to the default that can be told apart
    from the same number passed explicitly, so that passing both spellings
    is detected.  Its repr is the number's, so signatures read as usual."""

    def __repr__(self) -> str:
        return int.__repr__(self)


def _resolve_alias(
    name: str, value: Any, alias: str, alias_value: Any
) -> Tuple[str, Any]:
    """(the name the user spelled, its value) of a parameter with an alias;
    TypeError if both spellings were given."""
    if alias_value is None:
        return name, value
    if not isinstance(value, _Default):
        raise TypeError(
            f"{alias} is another name for {name}: pass one of them, not both"
        )
    return alias, alias_value


def _check_cwd(cwd: Any) -> Optional[str]:
    if cwd is None:
        return None
    try:
        path: Union[str, bytes] = os.fspath(cwd)
    except TypeError:
        raise TypeError(
            f"cwd must be a path or None, not {type(cwd).__name__}"
        ) from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            errno.ENOENT, "cwd must be an existing directory; no such directory", path
        )
    return os.path.abspath(path)


def _find_program(program: str, what: str) -> str:
    """Path of an executable (a path, or a name looked up in PATH)."""
    if os.sep in program:
        if os.path.isfile(program) and os.access(program, os.X_OK):
            return program
        raise FileNotFoundError(
            errno.ENOENT, f"{what} not found: no executable file at this path", program
        )
    found = shutil.which(program)
    if found is None:
        raise FileNotFoundError(
            errno.ENOENT, f"{what} not found: {program!r} is not on PATH", program
        )
    return found


def _runtime_args(
    cwd: Optional[str], run_time_max: Optional[float] = None
) -> List[str]:
    here = os.getcwd()
    args = ["--python-executable", sys.executable, "--cwd", cwd or here]
    for entry in sys.path:
        args += ["--sys-path", entry or here]
    if run_time_max is not None:
        args += ["--run-time-max", repr(float(run_time_max))]
    return args


def _check_restart_limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"restart_limit must be an int (>= 0), not {type(value).__name__}"
        )
    if value < 0:
        raise ValueError(f"restart_limit must be at least 0, not {value}")
    return int(value)


def _check_run_time_max(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"run_time_max must be None or a number of seconds, "
            f"not {type(value).__name__}"
        )
    if not (0 < value <= 1e9):  # also rejects nan
        raise ValueError(
            f"run_time_max must be None or a number of seconds > 0 (and at most 1e9), "
            f"not {value!r}"
        )
    return float(value)


_WILDCARDS = ("*", "0.0.0.0", "::", "[::]", "0:0:0:0:0:0:0:0")


def _check_hostname(value: Any) -> Optional[str]:
    """None (ipc:// on this host) or one address to listen on with TCP."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(
            f"hostname must be None or a str (an IP address or network interface "
            f"name), not {type(value).__name__}"
        )
    if value.strip() in _WILDCARDS:
        raise ValueError(
            f"hostname {value!r} is a wildcard: give one IP address or network "
            f"interface of this host that the runtime can connect to (for example "
            f"'127.0.0.1', 'eth0' or this host's address on the cluster network)"
        )
    if not value or any(c in value for c in "/ \t\n;,\0"):
        raise ValueError(
            f"hostname {value!r} is not an IP address or network interface name"
        )
    return value


class _Engine:
    """The shared machinery; see the module docstring.  Subclasses call
    ``_start_engine`` once, from their constructor, after validating their
    own parameters, and implement ``_check_open`` (their own error for use
    after shutdown / close)."""

    _state: _State
    _dispatcher: threading.Thread

    def _start_engine(
        self,
        *,
        ranks: int,
        ranks_per_group: int,
        pipeline_depth: int,
        all_ranks: bool,
        oversubscribe: bool = False,
        enable_flux_backend: bool = False,
        init_function: Optional[Callable[[], Dict[str, Any]]] = None,
        cwd: _Cwd = None,
        queue_adapter: Any = None,
        queue_adapter_kwargs: Optional[Dict[str, Any]] = None,
        exit_hooks: Sequence[Callable[[], None]] = (),
        restart_limit: int = 0,
        run_time_max: Optional[float] = None,
        hostname: Optional[str] = None,
        zero_copy: bool = True,
    ) -> None:
        # Everything is checked before anything is launched.
        if not isinstance(zero_copy, bool):
            raise TypeError(f"zero_copy must be a bool, not {type(zero_copy).__name__}")
        cwd = _check_cwd(cwd)
        hostname = _check_hostname(hostname)
        restart_limit = _check_restart_limit(restart_limit)
        run_time_max = _check_run_time_max(run_time_max)
        if restart_limit > 0 and queue_adapter is not None:
            raise ValueError(
                "restart_limit must be 0 with a queue_adapter: the job is started by "
                "the queuing system, so pympipool cannot start it again"
            )
        if not isinstance(oversubscribe, bool):
            raise TypeError(
                f"oversubscribe must be a bool, not {type(oversubscribe).__name__}"
            )
        if not isinstance(enable_flux_backend, bool):
            raise TypeError(
                f"enable_flux_backend must be a bool, "
                f"not {type(enable_flux_backend).__name__}"
            )
        if init_function is not None and not callable(init_function):
            raise TypeError(
                f"init_function must be callable (returning a dict), "
                f"not {type(init_function).__name__}"
            )
        submit_job = getattr(queue_adapter, "submit_job", None)
        if queue_adapter is not None and not callable(submit_job):
            raise TypeError("queue_adapter must have a callable submit_job() method")
        if not isinstance(queue_adapter_kwargs, (dict, type(None))):
            raise TypeError(
                f"queue_adapter_kwargs must be a dict or None, "
                f"not {type(queue_adapter_kwargs).__name__}"
            )
        if enable_flux_backend:
            mpiexec = _find_program("flux", "flux (enable_flux_backend=True)")
        else:
            mpiexec = _find_program(
                os.environ.get("PYMPIPOOL_MPIEXEC") or _config.MPIEXEC,
                f"mpiexec of {_config.MPI_FLAVOUR}",
            )
        runtime = _find_program(
            os.environ.get("PYMPIPOOL_RUNTIME") or _config.RUNTIME, "pympipool-runtime"
        )

        self._shutdown_lock = threading.Lock()
        self._shutdown = False
        self._zero_copy = zero_copy
        self._task_flags = _core.FLAG_ALL_RANKS if all_ranks else 0

        core = _core.Executor(
            ranks=ranks,
            ranks_per_group=ranks_per_group,
            pipeline_depth=pipeline_depth,
            launch=queue_adapter is None,
            oversubscribe=oversubscribe,
            flux=enable_flux_backend,
            mpi_flavour=_config.MPI_FLAVOUR,
            mpiexec=None if enable_flux_backend else mpiexec,
            runtime=runtime,
            cwd=cwd,
            runtime_args=_runtime_args(cwd, run_time_max),
            restart_limit=restart_limit,
            run_time_max=run_time_max or 0.0,
            hostname=hostname,
        )
        state = _State(core)
        state.exit_hooks.extend(exit_hooks)
        try:
            if init_function is not None:
                state.submit_init(*dumps_init(init_function))
            if queue_adapter is not None:
                # As pympipool 0.5 (and pysqa's submit_job) expect: the
                # command as one string, quoted for a shell.
                queue_adapter.submit_job(
                    working_directory=cwd or os.getcwd(),
                    cores=ranks,
                    command=shlex.join(core.command),
                    **(queue_adapter_kwargs or {}),
                )
        except BaseException:
            core.destroy(grace_ms=0)
            raise
        self._state = state
        _register_at_exit(state)
        self._dispatcher = threading.Thread(
            target=_dispatch, args=(state,), name="pympipool-dispatcher", daemon=True
        )
        state.dispatcher = self._dispatcher
        self._dispatcher.start()
        self._finalizer = weakref.finalize(self, _collect, state, self._dispatcher)
        self._finalizer.atexit = False  # the atexit hook destroys instead

    # -- what the interfaces build on

    def _check_open(self) -> None:
        raise NotImplementedError

    def _check_broken(self) -> None:
        state = self._state
        if state.forked:
            raise ExecutorBroken(state.forked_text())
        if state.broken is not None:
            raise ExecutorBroken(state.broken)

    def _buffers(self, buffers: List[memoryview]) -> _Buffers:
        """The out-of-band buffers of a call as they are sent: the arrays
        themselves (zero copy: read until the future is done), or copies
        taken now with ``zero_copy=False``."""
        if self._zero_copy or not buffers:
            return buffers
        return [bytes(b) for b in buffers]

    def _submit_call(
        self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Dict[str, Any]
    ) -> _Future:
        """A TASK carrying the pickled ``fn(*args, **kwargs)``.  Pickling
        happens here, before anything is sent: an unpicklable argument raises
        pickle's own exception."""
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        self._check_open()
        payload, buffers = dumps_call(fn, args, kwargs)
        to_send = self._buffers(buffers)
        with self._shutdown_lock:
            self._check_open()
            return self._state.submit(
                _core.MSG_TASK, self._task_flags, payload, to_send
            )

    def _submit_keyed(
        self, fn: Callable[..., Any], batches: Sequence[Sequence[_Call]], chunk: bool
    ) -> List["_Future"]:
        """Sends fn once (DEFINE) and one task per batch of calls, each a list
        of ``(args, kwargs)``: a CHUNK task per batch when ``chunk`` (its
        result is the list of the calls' values), otherwise one FN_KEY task
        per call (batches of one).  FORGETs fn once every task finished.
        Everything is pickled before anything is sent; if a submit fails
        midway, the tasks already sent still run and the error is raised."""
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        self._check_open()
        fn_payload, fn_buffers = dumps_function(fn)
        flags = self._task_flags | _core.FLAG_FN_KEY
        if chunk:
            flags |= _core.FLAG_CHUNK
        # The key is known only after the DEFINE: pickle with a placeholder
        # is not possible, so reserve the key first.
        key = next(self._state.keys)
        messages = []
        for batch in batches:
            if chunk:
                payload, buffers = dumps_keyed(key, batch)
            else:
                ((args, kwargs),) = batch
                payload, buffers = dumps_keyed(key, args, kwargs)
            messages.append((payload, self._buffers(buffers)))
        futures: List[_Future] = []
        with self._shutdown_lock:
            self._check_open()
            self._state.define_key(key, fn_payload, fn_buffers)
            try:
                for (payload, to_send), batch in zip(messages, batches):
                    futures.append(
                        self._state.submit(
                            _core.MSG_TASK, flags, payload, to_send, len(batch)
                        )
                    )
            finally:
                self._state.forget_when_done(key, futures)
        return futures

    def _close_engine(self, cancel_futures: bool = False) -> None:
        """No more submits; queued tasks still run (unless cancelled).
        Nothing in a forked child (the job is the parent's)."""
        if self._state.forked:
            return
        with self._shutdown_lock:
            self._shutdown = True
        if cancel_futures:
            self._state.cancel_all()
        self._state.close()

    def _join_engine(self) -> None:
        """Waits until every task has finished and the job has exited."""
        if self._state.forked:
            return
        if threading.current_thread() is not self._dispatcher:
            self._dispatcher.join()
            self._state.destroy()

    def _terminate_engine(self, message: str) -> None:
        """Stops the job now: every task not finished is lost, its future
        fails with ExecutorBroken(message)."""
        state = self._state
        if state.forked:
            return
        with self._shutdown_lock:
            self._shutdown = True
        # Every future, queued or running, fails with the same reason; the
        # frontend drops the queued tasks when the core is destroyed.  Idle
        # workers leave at once on SHUTDOWN, cleanly (killing mpiexec makes
        # it print a scary report); busy ones are killed without delay.
        with state.lock:
            busy = bool(state.futures)
        state.break_executor(message)
        state.destroy(grace_ms=0 if busy else _DESTROY_GRACE_MS)

    def _interrupt_engine(self, reason: str) -> None:
        """Ends the executor because ``reason`` (an exception) left its
        ``with`` block: queued calls are cancelled, running ones get SIGINT
        on their ranks (a ``KeyboardInterrupt`` in the call; the worker
        survives), and whatever still runs ``INTERRUPT_GRACE_S`` later is
        stopped with its job (its future fails with ``ExecutorBroken``).
        The ranks run in their own process group, so Ctrl-C at a terminal
        never reaches them by itself."""
        state = self._state
        if state.forked:
            return
        with self._shutdown_lock:
            self._shutdown = True
        state.cancel_all()
        try:
            state.close()
            if threading.current_thread() is self._dispatcher:
                return
            # A worker may hold a second call behind the running one (its
            # pipeline): it starts once the first is interrupted, and gets
            # its own SIGINT at the next round.  A SIGINT that reaches a
            # rank between calls is ignored there.
            deadline = time.monotonic() + INTERRUPT_GRACE_S
            while self._dispatcher.is_alive() and time.monotonic() < deadline:
                with state.lock:
                    running = bool(state.futures)
                if running:
                    try:
                        state.core.interrupt()
                    except (ValueError, OSError):  # destroyed, or the job is gone
                        pass
                self._dispatcher.join(min(_INTERRUPT_ROUND_S, max(deadline - time.monotonic(), 0)))
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            state.break_executor(f"the executor was interrupted ({reason})")
            state.destroy(grace_ms=0)
            raise
        if self._dispatcher.is_alive():
            state.break_executor(
                f"the call was still running {INTERRUPT_GRACE_S:g} s after {reason} "
                f"left the executor's with block (SIGINT was forwarded to its ranks); "
                f"its MPI job was stopped"
            )
            state.destroy(grace_ms=0)
            self._dispatcher.join()
        else:
            state.destroy()

    @property
    def broken(self) -> bool:
        """Whether the MPI job is gone (crashed, terminated or shut down)."""
        return self._state.broken is not None
