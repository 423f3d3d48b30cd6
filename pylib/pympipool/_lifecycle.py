"""What becomes of an executor's job when its interface object does not end
it: garbage collection, interpreter exit and ``os.fork()``.

An interface ends its job itself on ``shutdown``, ``close`` / ``join``,
``terminate`` or when an exception leaves its ``with`` block
(``_engine._Engine``).  The rules here cover everything else, so that no
MPI process outlives the user's process and no thread of ours waits for
one that is gone.  ``_engine._Engine._start_engine`` registers every
executor with them (``_register_at_exit``, and ``_collect`` as its
finalizer).

Collection.  The dispatcher thread holds only a ``_State`` (the core and
the table of futures, ``_futures``), never the interface object, so one
nobody references is garbage-collected; its ``weakref.finalize``
(``_collect``) then closes the core (queued tasks still finish, their
futures stay valid) and the dispatcher destroys the core after the final
``CLOSED`` completion.

Interpreter exit.  An ``atexit`` hook (``_end_all_at_exit``, registered
with the first executor) ends every core still alive: an executor that was
shut down without waiting (or garbage-collected) first runs its queued
calls, as ``ProcessPoolExecutor`` does; one still open is stopped
(``SHUTDOWN``, then ``SIGTERM`` after a grace period).

Fork.  A child made by ``os.fork()`` (or ``multiprocessing``'s fork start
method) inherits the executors' Python objects but none of their threads.
An ``os.register_at_fork`` hook (``_after_fork_in_child``, registered once,
when this module is imported) marks every inherited executor dead in the
child: submitting raises ``ExecutorBroken`` at once, its pending futures
fail with it, ``shutdown()`` and the context manager return at once, and
the child's exit does not wait for them (the C frontend, for its part,
never joins or signals from the child: ``_core.Executor.forked``).  The
parent is unaffected.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref

from ._future import _LOGGER, _Future
from ._futures import (
    _DESTROY_GRACE_MS,
    ExecutorBroken,
    _finish,
    _State,
    _Table,
)

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
        feeds = list(state.feeds)
        state.feeds = set()
        for feed in feeds:
            feed.after_fork(ExecutorBroken(state.forked_text()))
    for state in states:
        futures = state.futures.values()
        state.futures = _Table()
        for future in futures:
            if isinstance(future, _Future) and future._pmp_cond is not None:
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
