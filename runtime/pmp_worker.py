"""The Python half of every runtime rank, embedded into pympipool-runtime.

The C runtime receives a task (or an init function) as frames, wraps every
frame in a writable ``_pympipool_runtime.Buffer`` and calls ``run_task`` or
``run_init`` here on every rank of the group.  This module unpickles the
call, fills parameters from the init dict, calls the function and pickles
what comes back, following the payload conventions of docs/protocol.md:

* results are pickled with cloudpickle, protocol 5; contiguous buffers of at
  least ``OOB_THRESHOLD`` bytes go out of band, one frame each, as
  ``memoryview`` objects the C side sends without copying;
* an exception becomes the error tuple
  ``("pympipool-error", 1, exc_bytes, type_name, message, traceback_text,
  rank, size, host)`` pickled with the standard pickle, so that it always
  unpickles on the frontend even when the exception itself does not.

Nothing here raises into C: ``run_task`` always returns
``(ok, payload, buffers)`` and ``run_init`` always returns ``None``.  The
source is compiled into the runtime binary at build time, so the runtime
does not depend on where the pympipool package is installed.
"""

import inspect
import pickle
import socket
import traceback

import cloudpickle

OOB_THRESHOLD = 65536
ERROR_TAG = "pympipool-error"
ERROR_VERSION = 1

_state = {
    "rank": 0,
    "size": 1,
    "host": socket.gethostname(),
    "init": {},
    "init_error": None,
}


def setup(rank, size, host):
    """Record this rank's place in its group (called once by the runtime)."""
    _state["rank"] = int(rank)
    _state["size"] = int(size)
    _state["host"] = str(host)


def _type_name(exc):
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return "%s.%s" % (cls.__module__, cls.__qualname__)


def _traceback_text(exc):
    """The formatted traceback of exc without this module's own frames at
    the top: the user sees their function first."""
    own = _traceback_text.__code__.co_filename
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == own:
        tb = tb.tb_next
    try:
        return "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:
        return "%s: %s\n" % (_type_name(exc), exc)


def _error_payload(exc, traceback_text=None, message=None):
    """Pickle the error tuple of docs/protocol.md for exc."""
    try:
        exc_bytes = cloudpickle.dumps(exc, protocol=5)
    except Exception:
        exc_bytes = None
    if traceback_text is None:
        traceback_text = _traceback_text(exc)
    if message is None:
        try:
            message = str(exc)
        except Exception:
            message = "<unprintable %s>" % _type_name(exc)
    return pickle.dumps(
        (
            ERROR_TAG,
            ERROR_VERSION,
            exc_bytes,
            _type_name(exc),
            message,
            traceback_text,
            _state["rank"],
            _state["size"],
            _state["host"],
        ),
        protocol=5,
    )


def _dumps(value):
    """Pickle value with large contiguous buffers out of band."""
    buffers = []

    def buffer_callback(picklebuffer):
        try:
            raw = picklebuffer.raw()
        except BufferError:  # not contiguous: keep it in the pickle
            return True
        if raw.nbytes < OOB_THRESHOLD:
            return True
        buffers.append(raw)
        return False  # a false value means "out of band"

    payload = cloudpickle.dumps(value, protocol=5, buffer_callback=buffer_callback)
    return payload, buffers


def _fill_from_init(fn, args, kwargs):
    """Add init-dict entries for parameters of fn the call did not pass."""
    init = _state["init"]
    if not init:
        return kwargs
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    filled = None
    for index, (name, param) in enumerate(params.items()):
        if name not in init or name in kwargs:
            continue
        if param.kind == param.POSITIONAL_OR_KEYWORD:
            if index < len(args):
                continue
        elif param.kind != param.KEYWORD_ONLY:
            continue
        if filled is None:
            filled = dict(kwargs)
        filled[name] = init[name]
    return kwargs if filled is None else filled


def _inject_comm(fn, kwargs):
    """Hook for the group communicator.

    A later version passes the group's communicator to functions that take
    a ``comm`` parameter; for now it leaves kwargs unchanged.
    """
    return kwargs


def run_init(payload, buffers):
    """Run the init function of an INIT message; no reply is sent.

    The callable must return a dict, which is kept to fill the matching
    parameters of later tasks; otherwise the error is kept and every later
    task fails with it.
    """
    rank = _state["rank"]
    try:
        init_function = cloudpickle.loads(payload, buffers=buffers)
        result = init_function()
        if not isinstance(result, dict):
            raise TypeError(
                "init_function must return a dict, got %s" % type(result).__name__
            )
    except BaseException as exc:
        text = _traceback_text(exc)
        _state["init_error"] = (
            exc,
            "init_function failed on rank %d:\n%s" % (rank, text),
            "init_function failed on rank %d: %s: %s" % (rank, _type_name(exc), exc),
        )
        _state["init"] = {}
        return None
    _state["init"] = result
    _state["init_error"] = None
    return None


def run_task(payload, buffers):
    """Run one TASK: returns (ok, payload_bytes, [out-of-band buffers])."""
    stored = _state["init_error"]
    if stored is not None:
        exc, text, message = stored
        return False, _error_payload(exc, text, message), []
    try:
        fn, args, kwargs = cloudpickle.loads(payload, buffers=buffers)
        kwargs = _fill_from_init(fn, args, kwargs)
        kwargs = _inject_comm(fn, kwargs)
        value = fn(*args, **kwargs)
    except BaseException as exc:
        return False, _error_payload(exc), []
    # Drop the references to the arguments before pickling the result.
    del payload, buffers
    try:
        data, oob = _dumps(value)
    except BaseException as exc:
        wrapped = TypeError(
            "cannot pickle the result of type %s: %s: %s"
            % (type(value).__name__, _type_name(exc), exc)
        )
        wrapped.__cause__ = exc
        return False, _error_payload(wrapped), []
    return True, data, oob
