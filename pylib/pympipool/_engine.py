"""The engine every pympipool interface runs on, over ``pympipool._core``.

``Executor``, ``PoolExecutor``, ``Pool`` and ``MPISpawnPool`` differ only in
how they lay out the MPI job (ranks, ranks per group, tasks a group may hold)
and in the API they put on top.  What they share is ``_Engine``, their base
class.  It is all an interface calls; its parts live in one module per
concern:

* here: starting an executor (every argument checked before anything is
  launched; the runtime's environment arguments, this process's
  ``sys.executable``, ``sys.path`` and working directory; the launch, here
  or through a queue adapter's ``submit_job``; the dispatcher thread),
  submitting a call (pickled here, before anything is sent), and ending the
  job on purpose: closing, joining and terminating it, and interrupting it
  when an exception leaves a ``with`` block;
* ``_checks``: the argument checks;
* ``_futures``: the table of futures, the messages to the frontend and the
  dispatcher thread that completes them, the path of one call from
  ``submit`` to its future's result;
* ``_maps``: the maps (``_Maps``, a base class of ``_Engine``): the
  function sent once, chunks of plain items, tasks delivered without a
  ``Future`` each, and the lazy maps' bounded read-ahead;
* ``_lifecycle``: what ends a job that its interface did not end (garbage
  collection, interpreter exit, ``os.fork()``).

``_checks`` and ``_futures`` need none of the others at run time,
``_maps`` and ``_lifecycle`` build on ``_futures``, and this module on all
of them.  Importing them starts no thread; ``_lifecycle`` registers its
fork hook when it is imported.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _config, _core, _shm
from ._checks import (
    _check_cwd,
    _check_hostname,
    _check_restart_limit,
    _check_run_time_max,
    _find_program,
)
from ._launch import Launch, check_launch, default_tcp_host, log_command
from ._slurm import SlurmAdapter
from ._future import _Future
from ._futures import (
    _AFTER_SHUTDOWN,
    _DESTROY_GRACE_MS,
    ExecutorBroken,
    _Buffers,
    _dispatch,
    _Entry,
    _State,
)
from ._lifecycle import _collect, _register_at_exit
from ._maps import READ_AHEAD_PER_SLOT, _Maps
from ._serialize import SHM_RESULTS, dumps_call, dumps_init

#: ``cwd`` as the interfaces take it: a path, or None.
_Cwd = Union[str, "os.PathLike[str]", None]
#: How long an interrupted call (SIGINT forwarded to its ranks when an
#: exception leaves a ``with`` block) may take to finish before its job is
#: stopped.
INTERRUPT_GRACE_S = 2.0
#: How often the interrupt is repeated meanwhile (for calls that start later).
_INTERRUPT_ROUND_S = 0.05


# ---- the engine ------------------------------------------------------------


def _runtime_args(
    cwd: Optional[str], run_time_max: Optional[float] = None
) -> List[str]:
    here = os.getcwd()
    args = ["--python-executable", sys.executable, "--cwd", cwd or here]
    for entry in sys.path:
        args += ["--sys-path", entry or here]
    if run_time_max is not None:
        args += ["--run-time-max", repr(float(run_time_max))]
    # A leader on this host returns large buffers in shared segments.
    args += ["--shm-host", _shm.local_host()]
    return args


def _shm_closer(owner: _shm.Owner, state: _State) -> Callable[[], None]:
    """The exit hook (run when the dispatcher ends, the job gone) that closes
    the executor's argument segments and forgets its ranks' result
    segments: a segment stays only while a view of it is in use."""

    def close() -> None:
        owner.close()
        SHM_RESULTS.forget(_shm.rank_pids(state.hellos))

    return close


def _job_ended(state: _State) -> Callable[[str], None]:
    """What a batch job's end does to its executor (the SLURM queue
    adapter's watcher calls it): unless the executor was shut down and has
    nothing left to run, it breaks, every future failing with the text."""

    def ended(text: str) -> None:
        with state.lock:
            idle = state.closing and not state.futures
        if idle:
            return
        state.break_executor(text)
        state.destroy(grace_ms=0)

    return ended


class _Engine(_Maps):
    """The shared machinery; see the module docstring.  Subclasses call
    ``_start_engine`` once, from their constructor, after validating their
    own parameters, and implement ``_check_open`` (their own error for use
    after shutdown / close)."""

    _state: _State
    _dispatcher: threading.Thread
    _launch: Launch
    _command: List[str]
    _slurm: Optional[SlurmAdapter]

    def _start_engine(
        self,
        *,
        ranks: int,
        ranks_per_group: int,
        pipeline_depth: int,
        all_ranks: bool,
        pipeline_depth_max: int = 0,
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
        backend: str = "auto",
        threads_per_core: Optional[int] = None,
        launcher_args: Optional[Sequence[str]] = None,
        hosts: Optional[Sequence[str]] = None,
        hostfile: Union[str, "os.PathLike[str]", None] = None,
    ) -> None:
        # Everything is checked before anything is launched.
        if not isinstance(zero_copy, bool):
            raise TypeError(f"zero_copy must be a bool, not {type(zero_copy).__name__}")
        cwd = _check_cwd(cwd)
        hostname = _check_hostname(hostname)
        restart_limit = _check_restart_limit(restart_limit)
        run_time_max = _check_run_time_max(run_time_max)
        if restart_limit > 0:
            # a crash loses the calls a group held behind its running one:
            # with restarts, no more than the fixed depth
            pipeline_depth_max = 0
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
        slurm: Optional[SlurmAdapter] = None
        if isinstance(queue_adapter, str):
            if queue_adapter != "slurm":
                raise ValueError(
                    f"queue_adapter {queue_adapter!r} is not built in: give 'slurm' or an "
                    f"object with a submit_job() method"
                )
            slurm = queue_adapter = SlurmAdapter(queue_adapter_kwargs)
            queue_adapter_kwargs = None
            if hostname is None:  # the job runs on another host: TCP with CURVE
                hostname = default_tcp_host()
        submit_job = getattr(queue_adapter, "submit_job", None)
        if queue_adapter is not None and not callable(submit_job):
            raise TypeError("queue_adapter must have a callable submit_job() method")
        if not isinstance(queue_adapter_kwargs, (dict, type(None))):
            raise TypeError(
                f"queue_adapter_kwargs must be a dict or None, "
                f"not {type(queue_adapter_kwargs).__name__}"
            )
        launch = check_launch(
            backend=backend,
            enable_flux_backend=enable_flux_backend,
            queued=queue_adapter is not None,
            batch_srun=slurm is not None,
            mpi_flavour=_config.MPI_FLAVOUR,
            mpiexec=os.environ.get("PYMPIPOOL_MPIEXEC") or _config.MPIEXEC,
            threads_per_core=threads_per_core,
            launcher_args=launcher_args,
            hosts=hosts,
            hostfile=hostfile,
            environ=os.environ,
        )
        if launch.remote and hostname is None:
            # ranks on another host cannot reach an ipc:// socket
            hostname = default_tcp_host()
        runtime = _find_program(
            os.environ.get("PYMPIPOOL_RUNTIME") or _config.RUNTIME, "pympipool-runtime"
        )

        self._shutdown_lock = threading.Lock()
        self._shutdown = False
        self._zero_copy = zero_copy
        #: the segments of large arguments for ranks on this host (_shm);
        #: used once every group's hello put all ranks here
        self._shm_owner = _shm.Owner(_core, 0)
        self._shm_local = False
        self._task_flags = _core.FLAG_ALL_RANKS if all_ranks else 0
        #: tasks a lazy map reads ahead (see _Feed): what the groups may
        #: hold at most, and READ_AHEAD_PER_SLOT per task of their base depth
        groups = ranks // ranks_per_group
        self._read_ahead = groups * (
            max(pipeline_depth_max, pipeline_depth) + READ_AHEAD_PER_SLOT * pipeline_depth
        )

        core = _core.Executor(
            ranks=ranks,
            ranks_per_group=ranks_per_group,
            pipeline_depth=pipeline_depth,
            pipeline_depth_max=pipeline_depth_max,
            launch=queue_adapter is None,
            oversubscribe=oversubscribe,
            flux=launch.backend == "flux",
            srun=launch.backend == "srun",
            mpi_flavour=_config.MPI_FLAVOUR,
            mpiexec=launch.program,
            srun_mpi=launch.srun_mpi,
            srun_exact=launch.srun_exact,
            threads_per_core=launch.threads_per_core,
            launcher_args=launch.launcher_args,
            hosts=launch.hosts,
            hostfile=launch.hostfile,
            runtime=runtime,
            cwd=cwd,
            runtime_args=_runtime_args(cwd, run_time_max),
            restart_limit=restart_limit,
            run_time_max=run_time_max or 0.0,
            hostname=hostname,
        )
        self._launch = launch
        self._command = list(core.command)
        log_command(launch.backend, self._command)
        state = _State(core)
        state.exit_hooks.extend(exit_hooks)
        state.exit_hooks.append(_shm_closer(self._shm_owner, state))
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
            if slurm is not None:
                state.exit_hooks.append(slurm.finish)
                slurm.watch(_job_ended(state))
        except BaseException:
            core.destroy(grace_ms=0)
            if slurm is not None:
                slurm.finish()
            raise
        self._slurm = slurm
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
        """A TASK carrying the pickled ``fn(*args, **kwargs)``; returns its
        future.  Pickling happens here, before anything is sent: an
        unpicklable argument raises pickle's own exception."""
        payload, to_send, flags, lent = self._call_message(fn, args, kwargs)
        with self._shutdown_lock:
            try:
                self._check_open()
                future = self._state.submit(_core.MSG_TASK, flags, payload, to_send)
            except BaseException:
                if lent is not None:
                    self._shm_owner.unsent(lent[1])
                raise
        if lent is not None:  # lent until the call is done and its views are gone
            self._shm_owner.hold(lent[1], future.done)
        return future

    def _submit_call_to(
        self,
        entry: _Entry,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Dict[str, Any],
    ) -> None:
        """As ``_submit_call``, but the outcome goes to ``entry`` (the
        ``AsyncResult`` of ``Pool.apply_async``), without a Future."""
        payload, to_send, flags, lent = self._call_message(fn, args, kwargs)
        with self._shutdown_lock:
            try:
                self._check_open()
                self._state.submit_entry(entry, _core.MSG_TASK, flags, payload, to_send)
            except BaseException:
                if lent is not None:
                    self._shm_owner.unsent(lent[1])
                raise
        if lent is not None:
            self._shm_owner.hold(lent[1], getattr(entry, "ready", None))

    def _call_message(
        self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Dict[str, Any]
    ) -> Tuple[bytes, _Buffers, int, Optional[_shm.Lent]]:
        """A call's payload, the buffers to send with it, the task's flags
        and, when its large buffers went into shared segments, what was
        lent (to be held until the call is done, or given back if the
        submit fails)."""
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        if self._shutdown:  # checked fully under the lock; this spares the pickling
            self._check_open()
        payload, buffers = dumps_call(fn, args, kwargs)
        lent = self._shm_lend(buffers)
        if lent is None:
            return payload, self._buffers(buffers), self._task_flags, None
        # copied already: the caller may change the arrays at once
        return payload, lent[0], self._task_flags | _core.FLAG_SHM, lent

    def _shm_lend(self, buffers: List[memoryview]) -> Optional[_shm.Lent]:
        """The buffers of a call with the large ones in shared segments, or
        None to send them as frames: none is that large, or some rank is not
        on this host (or has not said hello yet), or no segment can be made."""
        if not buffers:
            return None
        if not self._shm_local:
            if all(b.nbytes < _shm.THRESHOLD for b in buffers):
                return None
            if not _shm.all_local(self._state.hellos, _shm.local_host()):
                return None
            self._shm_local = True
        try:
            return self._shm_owner.lend(buffers)
        except OSError:  # no room for a segment: frames, as before
            return None

    def _close_engine(self, cancel_futures: bool = False, drain_feeds: bool = False) -> None:
        """No more submits; queued tasks still run (unless cancelled).  The
        lazy maps stop reading their input, or with ``drain_feeds`` read
        all of it first (see ``_State.close``).  Nothing in a forked child
        (the job is the parent's)."""
        if self._state.forked:
            return
        with self._shutdown_lock:
            self._shutdown = True
        if not drain_feeds:
            self._state.stop_feeds(lambda: RuntimeError(_AFTER_SHUTDOWN))
        if cancel_futures:
            self._state.cancel_all()
        self._state.close(drain_feeds=drain_feeds)

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
        state.stop_feeds(lambda: RuntimeError(_AFTER_SHUTDOWN))
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
                    except (_core.DestroyedError, OSError):  # or the job is gone
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
    def backend(self) -> str:
        """The launcher that starts the MPI job: ``"mpiexec"``, ``"srun"``
        or ``"flux"`` (what ``backend="auto"`` chose)."""
        return self._launch.backend

    @property
    def command(self) -> List[str]:
        """The full command that launches the MPI job (the launcher, its
        flags, the runtime and its arguments), as a list."""
        return list(self._command)

    @property
    def job_id(self) -> Optional[str]:
        """The SLURM job id of the runtime with ``queue_adapter="slurm"``
        (None otherwise)."""
        return self._slurm.job_id if self._slurm is not None else None

    @property
    def broken(self) -> bool:
        """Whether the MPI job is gone (crashed, terminated or shut down)."""
        return self._state.broken is not None
