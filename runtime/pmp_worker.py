"""The Python half of every runtime rank, embedded into pympipool-runtime.

The C runtime receives a task (or an init function, or a function to keep
by key) as frames, wraps every frame in a writable
``_pympipool_runtime.Buffer`` and calls ``run_task``, ``run_init``,
``run_define`` or ``run_forget`` here on every rank of the group.  This
module unpickles the call, fills parameters from the init dict and the
group's communicator (``comm``), calls the function and pickles what comes
back, following the payload conventions of docs/protocol.md:

* results are pickled with cloudpickle, protocol 5, by one reused
  ``cloudpickle.Pickler`` (making a Pickler costs more than pickling a small
  result); contiguous buffers of at least ``_payload.OOB_THRESHOLD`` bytes go out of
  band, one frame each, as ``memoryview`` objects the C side sends without
  copying;
* an exception becomes the error tuple
  ``("pympipool-error", 1, exc_bytes, type_name, message, traceback_text,
  rank, size, host)`` pickled with the standard pickle, so that it always
  unpickles on the frontend even when the exception itself does not.

* the function slot of a TASK (or CHUNK) holds the function's own pickle
  (bytes); unpickled functions are kept, with their signature, in a small
  LRU cache keyed by those bytes (``_function``), so a function submitted
  again with the same snapshot of its globals is neither unpickled nor
  inspected again.  A cached by-value function keeps its module state
  (globals it changes) between calls on this rank, as a module function
  does in a ProcessPoolExecutor worker;
* functions kept by key (DEFINE) are unpickled once per rank; one that
  cannot be unpickled is kept as its error, and every task using the key
  fails with that error (which names the missing module);
* a CHUNK task calls one function for a list of ``(args, kwargs)`` and
  returns the list of results, or the error of the first failing call.
  With MAP (or STARMAP) the list holds plain items (argument tuples), and
  when nothing needs filling (see ``_Callable.plain``) and no time limit is
  set the chunk runs as ``list(map(fn, items))`` (``itertools.starmap``),
  without any per-call work of this module.

The communicator: ``setup_mpi`` runs once at start-up (before any user
code) and decides what ``comm`` is.  When the build found mpi4py built for
the runtime's MPI library and the mpi4py.MPI extension found now really
links the runtime's libmpi (read from its ELF DT_NEEDED entries, without
loading it), mpi4py is told not to initialise or finalise MPI and ``comm`` is
an ``mpi4py.MPI.Intracomm`` on the group's communicator.  Otherwise, when an
mpi4py.MPI exists, the guard (pmp_mpi4py_guard.py) makes importing it raise
an ImportError that names both MPI libraries, and ``comm`` is the runtime's
own ``_pympipool_runtime.Comm``.  The communicator object is only made for
functions that have a ``comm`` parameter; each call gets a fresh wrapper, so
``comm.Free()`` in one task cannot break the next.

Large buffers with the caller on this host travel in shared segments
(``_pympipool_shm``, pylib/pympipool/_shm.py): a task with FLAG_SHM names
some of its buffers in the caller's segments, which every rank maps; a
group leader started with ``--shm-host`` naming this host copies its large
result buffers into segments of its own (``setup_shm``, ``_shm_lend``).

Nothing here raises into C: ``run_task`` always returns
``(ok, payload, buffers)``, with FLAG_SHM as a fourth item when the last
buffer is a segment table; ``run_init``, ``run_define``, ``run_forget`` and
``setup_mpi`` always return ``None``.  The source is compiled into the
runtime binary at build time, so the runtime does not depend on where the
pympipool package is installed.
"""

import collections
import inspect
import itertools
import os
import pickle
import signal
import socket
import traceback

import cloudpickle

# The payload conventions shared with the caller (pylib/pympipool/_payload.py:
# flags and limits from the C headers, the reused pickler, plain types, the
# error record): the runtime embeds that file as _pympipool_payload
# (runtime/CMakeLists.txt); this file loaded on its own (the tests) takes the
# package's copy.
try:
    import _pympipool_payload as _payload
except ImportError:
    from pympipool import _payload

# The cache of unpickled task functions (see _function): at most this many
# entries whose pickles add up to at most FN_CACHE_TOTAL_BYTES, and only
# functions whose pickle is at most FN_CACHE_MAX_BYTES (a larger snapshot is
# unpickled at every call, as before; its hash would not be free either).
# The budget bounds what a loop submitting a function whose large global
# changes every time can leave behind on a rank.
FN_CACHE_ENTRIES = 128
FN_CACHE_MAX_BYTES = 1 << 20
FN_CACHE_TOTAL_BYTES = 16 << 20
# Task flags of docs/protocol.md.
FLAG_ALL_RANKS = _payload.FLAG_ALL_RANKS
FLAG_FN_KEY = _payload.FLAG_FN_KEY
FLAG_CHUNK = _payload.FLAG_CHUNK
FLAG_MAP = _payload.FLAG_MAP
FLAG_STARMAP = _payload.FLAG_STARMAP
FLAG_CALL_COMM = _payload.FLAG_CALL_COMM
# Shared memory with the caller (pylib/pympipool/_shm.py, embedded as
# _pympipool_shm; its flag and segment layout come from the native module).
# "owner": the segments this rank lends for its results, only on a group
# leader on the caller's host (setup_shm); "receiver": the caller's segments
# this rank maps, made at the first task that names one.
_shm = {"owner": None, "receiver": None}
try:
    from _pympipool_runtime import FLAG_SHM as _SHM_FLAG
except ImportError:  # imported outside the runtime (tests): never set
    _SHM_FLAG = 0

_state = {
    "rank": 0,
    "size": 1,
    "world_rank": 0,
    "host": socket.gethostname(),
    "init": {},
    "init_error": None,
    # key -> ("fn", _Callable) or ("error", exc, text, message)
    "functions": {},
    # "c" (pympipool's Comm) or "mpi4py"; see setup_mpi
    "comm_kind": "c",
    "comm_base": None,
    "mpi4py_note": "",
    # (rank, size) in the call's communicator while a call of several
    # groups' ranks runs or fails (_call_with_comm): what its errors name
    "call_where": None,
}


def setup(rank, size, host, world_rank=0):
    """Record this rank's place in its group and in the job (called once
    by the runtime)."""
    _state["world_rank"] = int(world_rank)
    _state["rank"] = int(rank)
    _state["size"] = int(size)
    _state["host"] = str(host)
    # A crash (segfault, abort, ...) prints the Python traceback of every
    # thread to stderr, then the runtime's own handler names the rank.
    try:
        import faulthandler

        faulthandler.enable(2, all_threads=True)
    except Exception:
        pass
    signal.signal(signal.SIGINT, _on_interrupt)


_type_name = _payload.type_name


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
    if traceback_text is None:
        traceback_text = _traceback_text(exc)
    rank, size = _state["call_where"] or (_state["rank"], _state["size"])
    return _payload.error_record(exc, traceback_text, message, rank, size, _state["host"])


# One reused pickler for every result of this rank (its re-entrance and
# reset rules: _payload.ReusedPickler).
_result_pickler = _payload.ReusedPickler(cloudpickle.Pickler)


# Results of plain types (and lists of them: a map's chunk) pickle to the
# same bytes with pickle and with cloudpickle: the C pickler alone writes
# them, three times faster.
_PLAIN_TYPES = _payload.PLAIN_TYPES


def _dumps(value):
    """Pickle value with large contiguous buffers out of band."""
    kind = type(value)
    if kind in _PLAIN_TYPES or (kind is list and _PLAIN_TYPES.issuperset(map(type, value))):
        return pickle.dumps(value, 5), []
    return _result_pickler.dumps(value)


def _signature(fn):
    """The parameters of fn as ((name, Parameter), ...), or None when fn
    has no inspectable signature (then nothing is filled in)."""
    try:
        return tuple(inspect.signature(fn).parameters.items())
    except (TypeError, ValueError):
        return None


_FILLED_KINDS = (
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
)


def _needs_nothing(sig):
    """Whether no call of a function with signature sig ever gets a
    parameter filled by _prepare: it has no parameter (that a call could
    leave out) named ``comm`` or after an entry of the init dict."""
    if sig is None:
        return True
    init = _state["init"]
    for name, param in sig:
        if param.kind in _FILLED_KINDS and (name == "comm" or name in init):
            return False
    return True


class _Callable:
    """A task function with what its calls need, worked out once per
    function (and kept with it in the caches): its signature, for filling
    parameters, and ``plain``, true when no call needs anything filled (no
    ``comm`` parameter, none named after an init-dict entry), so that a
    chunk of plain items can run as ``list(map(fn, items))``.  ``plain``
    depends on the init dict: run_init works it out again."""

    __slots__ = ("fn", "sig", "plain")

    def __init__(self, fn):
        self.fn = fn
        self.sig = _signature(fn)
        self.plain = _needs_nothing(self.sig)


def _group_comm():
    """A fresh communicator object for one call (made lazily: only
    functions that take ``comm`` pay for it)."""
    base = _state["comm_base"]
    if base is None:
        import _pympipool_runtime

        base = _pympipool_runtime._group_comm()
        _state["comm_base"] = base
    if _state["comm_kind"] == "mpi4py":
        from mpi4py import MPI

        return MPI.Intracomm(MPI.Comm.f2py(base.py2f()))
    return base._borrow()


def _prepare(sig, args, kwargs, make_comm=_group_comm):
    """kwargs plus the init-dict entries and the communicator (``comm``,
    from make_comm()) for parameters of the function that the call did
    not pass."""
    if sig is None:
        return kwargs
    init = _state["init"]
    filled = None
    for index, (name, param) in enumerate(sig):
        if name in kwargs:
            continue
        if param.kind == param.POSITIONAL_OR_KEYWORD:
            if index < len(args):
                continue
        elif param.kind != param.KEYWORD_ONLY:
            continue
        if name in init:
            value = init[name]
        elif name == "comm":
            value = make_comm()
        else:
            continue
        if filled is None:
            filled = dict(kwargs)
        filled[name] = value
    return kwargs if filled is None else filled


# ---- the communicator: mpi4py or pympipool's own -----------------------------


# The ELF reader and the mpi4py checks are shared with the pympipool package
# (pylib/pympipool/_elf.py): the runtime embeds that file as _pympipool_elf
# (runtime/CMakeLists.txt); this file loaded on its own (the tests) takes the
# package's copy.
try:
    from _pympipool_elf import mpi4py_extension as _mpi4py_extension
    from _pympipool_elf import mpi4py_links_runtime
except ImportError:
    from pympipool._elf import mpi4py_extension as _mpi4py_extension
    from pympipool._elf import mpi4py_links_runtime


def setup_mpi(build_mode, runtime_mpi, mpi4py_mpi, libmpi):
    """Decide what ``comm`` is, on every rank, before any user code runs.

    build_mode is what the build found ("matching", "mismatched" or
    "absent"), runtime_mpi and mpi4py_mpi name the two MPI libraries,
    libmpi is the path of the runtime's loaded MPI library.
    """
    _state["comm_kind"] = "c"
    try:
        extension = _mpi4py_extension()
        if extension is None:
            _state["mpi4py_note"] = "mpi4py is not installed here"
            return None
        ok, why = False, "the build found mpi4py %s" % build_mode
        if build_mode == "matching":
            ok, why = mpi4py_links_runtime(extension, libmpi)
        _state["mpi4py_note"] = why
        if ok:
            import mpi4py

            mpi4py.rc.initialize = False
            mpi4py.rc.finalize = False
            _state["comm_kind"] = "mpi4py"
            return None
        import _pympipool_mpi4py_guard

        if build_mode == "mismatched":
            other = mpi4py_mpi
        else:
            other = "another MPI library (%s)" % why
        _pympipool_mpi4py_guard.install(runtime_mpi, other)
    except BaseException as exc:  # never stop the rank: fall back to our Comm
        _state["comm_kind"] = "c"
        _state["mpi4py_note"] = "mpi4py check failed: %s: %s" % (_type_name(exc), exc)
    return None


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
    # Which functions need parameters filled depends on the dict's names.
    kept = [entry[1] for entry in _state["functions"].values() if entry[0] == "fn"]
    for entry in itertools.chain(kept, _fn_cache.values()):
        entry.plain = _needs_nothing(entry.sig)
    return None


def run_define(key, payload, buffers):
    """Keep the function of a DEFINE message under key (replacing an
    earlier one).  A function that cannot be unpickled here is kept as its
    error; tasks that use the key fail with it.  The pickle is looked up in
    the cache of unpickled functions first (``_function``): a map of the
    same function with the same snapshot, again and again, unpickles and
    inspects it once."""
    try:
        if buffers:
            entry = _Callable(cloudpickle.loads(payload, buffers=buffers))
        else:
            entry = _function(bytes(payload))
        _state["functions"][key] = ("fn", entry)
    except BaseException as exc:
        text = "the function defined under key %d cannot be unpickled on rank %d:\n%s" % (
            key,
            _state["rank"],
            _traceback_text(exc),
        )
        try:
            message = str(exc)
        except Exception:
            message = "<unprintable %s>" % _type_name(exc)
        _state["functions"][key] = ("error", exc, text, message)
    return None


def run_forget(key):
    """Drop the function kept under key (a no-op when there is none)."""
    _state["functions"].pop(key, None)
    return None


class _KeptError(Exception):
    """Carries a kept unpickling error out of _lookup."""

    def __init__(self, entry):
        super().__init__()
        self.entry = entry


def _lookup(key):
    """The _Callable kept under key; raises KeyError or _KeptError."""
    entry = _state["functions"].get(key)
    if entry is None:
        raise KeyError(
            "no function is defined under key %r on this worker (it was never "
            "defined or was already forgotten)" % (key,)
        )
    if entry[0] == "error":
        raise _KeptError(entry)
    return entry[1]


_fn_cache = collections.OrderedDict()  # pickle bytes -> _Callable
_fn_cache_bytes = [0]  # total length of the keys of _fn_cache


def _function(slot):
    """The _Callable for the function slot of a TASK: a function's pickle
    (bytes), looked up in the LRU cache of unpickled functions first.
    Unpickling errors propagate (and nothing is cached, so a later call
    tries again)."""
    if type(slot) is not bytes:
        raise TypeError(
            "malformed task: the function slot holds %s, not the function's pickle"
            % type(slot).__name__
        )
    cacheable = len(slot) <= FN_CACHE_MAX_BYTES
    if cacheable:
        entry = _fn_cache.get(slot)
        if entry is not None:
            _fn_cache.move_to_end(slot)
            return entry
    entry = _Callable(cloudpickle.loads(slot))
    if cacheable:
        _fn_cache[slot] = entry
        _fn_cache_bytes[0] += len(slot)
        while (
            len(_fn_cache) > FN_CACHE_ENTRIES
            or _fn_cache_bytes[0] > FN_CACHE_TOTAL_BYTES
        ):
            old, _ = _fn_cache.popitem(last=False)
            _fn_cache_bytes[0] -= len(old)
    return entry


def _call_all(flags, payload, buffers):
    """Unpickle and run one TASK message; returns the value to send back."""
    if flags & FLAG_CALL_COMM:
        return _call_with_comm(flags, payload, buffers)
    if flags & FLAG_CHUNK:
        if flags & FLAG_ALL_RANKS:
            raise ValueError(
                "a chunk of calls cannot return every rank's result "
                "(PMP_FLAG_CHUNK together with PMP_FLAG_ALL_RANKS is not supported)"
            )
        form = flags & (FLAG_MAP | FLAG_STARMAP)
        if form == FLAG_MAP | FLAG_STARMAP:
            raise ValueError(
                "a chunk is either a map or a starmap "
                "(PMP_FLAG_MAP together with PMP_FLAG_STARMAP is not supported)"
            )
        slot, calls = cloudpickle.loads(payload, buffers=buffers)
        del payload, buffers
        entry = _lookup(slot) if flags & FLAG_FN_KEY else _function(slot)
        fn = entry.fn
        if form == FLAG_MAP:
            if entry.plain and _timer["limit"] <= 0:
                return list(map(fn, calls))
            return [_call_one(entry, (item,), _NO_KWARGS) for item in calls]
        if form == FLAG_STARMAP:
            if entry.plain and _timer["limit"] <= 0:
                return list(itertools.starmap(fn, calls))
            return [_call_one(entry, args, _NO_KWARGS) for args in calls]
        return [_call_one(entry, args, kwargs) for args, kwargs in calls]
    if flags & (FLAG_MAP | FLAG_STARMAP):
        raise ValueError(
            "PMP_FLAG_MAP and PMP_FLAG_STARMAP describe a chunk's calls: "
            "they need PMP_FLAG_CHUNK"
        )
    slot, args, kwargs = cloudpickle.loads(payload, buffers=buffers)
    del payload, buffers
    entry = _lookup(slot) if flags & FLAG_FN_KEY else _function(slot)
    if entry.plain:
        return entry.fn(*args, **kwargs)
    return entry.fn(*args, **_prepare(entry.sig, args, kwargs))


_NO_KWARGS = {}  # never changed: _prepare copies before it fills


# ---- a call over several groups' ranks (FlexExecutor) --------------------------
#
# A TASK with FLAG_CALL_COMM is one member's share of a call that runs on
# ranks of several one-rank groups together (docs/protocol.md): the payload
# is (members, tag, cwd, threads_per_core), the first buffer the call.  The
# members build the call's communicator first, before anything of the call
# can fail (_pympipool_runtime._create_group, runtime/pmp_comm_group.c:
# MPI_Comm_create_group, which only they call), so a member whose
# unpickling fails never leaves the others waiting in it.  Then the call
# runs with cwd and OMP_NUM_THREADS set for it, restored afterwards, and
# the communicator is freed.

_FLEX_EXCLUDED = FLAG_CHUNK | FLAG_FN_KEY | FLAG_ALL_RANKS | FLAG_MAP | FLAG_STARMAP


def _call_with_comm(flags, payload, buffers):
    if flags & (_FLEX_EXCLUDED | _SHM_FLAG):
        raise ValueError(
            "malformed task: PMP_FLAG_CALL_COMM goes with no other task flag (0x%x)" % flags
        )
    members, tag, cwd, threads = pickle.loads(payload)
    del payload
    import _pympipool_runtime

    base = None
    if len(members) > 1:  # a call of one rank makes it only if asked (below)
        base = _pympipool_runtime._create_group(members, tag)
    _state["call_where"] = (members.index(_state["world_rank"]), len(members))
    saved = None
    try:
        if cwd is not None or threads is not None:
            saved = (os.getcwd(), os.environ.get("OMP_NUM_THREADS"))
            if cwd is not None:
                os.chdir(cwd)
            if threads is not None:
                os.environ["OMP_NUM_THREADS"] = str(threads)
        slot, args, kwargs = cloudpickle.loads(buffers[0], buffers=buffers[1:])
        del buffers
        entry = _function(slot)
        if entry.plain:
            return entry.fn(*args, **kwargs)

        def make_comm():
            nonlocal base
            if base is None:
                base = _pympipool_runtime._create_group(members, tag)
            if _state["comm_kind"] == "mpi4py":
                from mpi4py import MPI

                return MPI.Intracomm(MPI.Comm.f2py(base.py2f()))
            return base

        return entry.fn(*args, **_prepare(entry.sig, args, kwargs, make_comm))
    finally:
        if saved is not None:
            _restore(*saved)
        if base is not None:
            try:
                base.Free()
            except Exception:  # freed by the call itself
                pass


def _restore(cwd, omp):
    """The working directory and OMP_NUM_THREADS as they were before a
    call that changed them."""
    try:
        os.chdir(cwd)
    except OSError:
        pass
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp


def _call_one(entry, args, kwargs):
    """One call of a chunk on the general path: run_time_max is per call,
    so each call of a chunk gets its own timer."""
    _arm_timer()
    return entry.fn(*args, **_prepare(entry.sig, args, kwargs))


# ---- run_time_max: the soft per-call time limit ------------------------------
#
# With a limit (set_time_limit, from the runtime's --run-time-max), every
# call runs under an ITIMER_REAL timer; when it expires, SIGALRM's Python
# handler raises TimeoutError in the call, wherever it is: pure Python code,
# time.sleep and other blocking calls that return on EINTR, and the waits
# of the runtime's Comm, which check for signals while they wait.  The
# worker survives and the error goes back like any exception.  A call that
# never returns to the interpreter (a C loop, blocked signals) is the
# frontend's business: it kills and restarts the job a grace period later.
# The handler raises at most once per arming, and only while a call is
# armed, so a late signal never hits the worker's own code or the next task.

class _OneShot:
    """A signal handler that raises make_error() inside a call: only while
    armed, and at most once per arming (the handler disarms itself)."""

    def __init__(self, make_error):
        self.armed = False
        self.make_error = make_error

    def __call__(self, signum, frame):
        if not self.armed:
            return
        self.armed = False
        raise self.make_error()


def _where():
    return "rank %d of %d on %s" % (_state["rank"], _state["size"], _state["host"])


_timer = {"limit": 0.0}
_on_alarm = _OneShot(
    lambda: TimeoutError(
        "the call ran longer than run_time_max (%g s) on %s" % (_timer["limit"], _where())
    )
)


def set_time_limit(seconds):
    """Set the per-call time limit in seconds (0: none); called once by the
    runtime, before any task, when it was started with --run-time-max."""
    _timer["limit"] = float(seconds)
    if _timer["limit"] > 0:
        signal.signal(signal.SIGALRM, _on_alarm)


def _arm_timer():
    if _timer["limit"] > 0:
        _on_alarm.armed = True
        signal.setitimer(signal.ITIMER_REAL, _timer["limit"])


def _disarm_timer():
    if _timer["limit"] > 0:
        _on_alarm.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


# ---- interrupting a call: SIGINT ---------------------------------------------
#
# The ranks run in their own process group, so Ctrl-C at the user's terminal
# never reaches them; the frontend forwards SIGINT to the ranks of a running
# call when the user's with block is left by an exception (Executor
# __exit__).  Like the time limit's SIGALRM, the handler raises only while a
# call runs (KeyboardInterrupt in the call; the worker survives and reports
# it as the call's error) and at most once per call; a SIGINT at any other
# moment is ignored, so it never ends a worker between tasks.

_on_interrupt = _OneShot(lambda: KeyboardInterrupt("the call was interrupted (SIGINT) on " + _where()))


def setup_shm(host):
    """The caller is on host and maps shared segments: a group leader on
    that host returns its large buffers in segments of its own."""
    import _pympipool_runtime
    import _pympipool_shm

    if _state["rank"] == 0 and host == _pympipool_shm.local_host():
        _shm["owner"] = _pympipool_shm.Owner(_pympipool_runtime, 1)


def _shm_buffers(payload, buffers):
    """The buffers of a task with FLAG_SHM: the ones its segment table names
    mapped (each view counted on its segment until it is gone)."""
    receiver = _shm["receiver"]
    if receiver is None:
        import _pympipool_runtime
        import _pympipool_shm

        receiver = _shm["receiver"] = _pympipool_shm.Receiver(_pympipool_runtime, True)
    return receiver.buffers([payload] + list(buffers))


def _shm_lend(oob, flags):
    """(oob, reply flags): a leader's large result buffers copied into its
    segments when the caller maps them (not for a rank table of every
    rank's results, which the leader gathers by MPI); as they are when not,
    or when no segment can be made."""
    owner = _shm["owner"]
    if owner is None or flags & FLAG_ALL_RANKS or not oob:
        return oob, 0
    try:
        lent = owner.lend(oob)
    except OSError:
        return oob, 0
    if lent is None:
        return oob, 0
    owner.hold(lent[1], None)
    import _pympipool_runtime

    return lent[0], _pympipool_runtime.FLAG_SHM


def shm_unsent(table):
    """The result whose segment table this is was not sent (another rank of
    the group failed and its error went instead): its segments are free."""
    owner = _shm["owner"]
    if owner is not None:
        owner.unsent_table(table)


def run_task(payload, buffers, flags=0):
    """Run one TASK: returns (ok, payload_bytes, [out-of-band buffers]),
    and FLAG_SHM as a fourth item when the last buffer is a segment table."""
    if _timer["limit"] <= 0:
        return _run_task(payload, buffers, flags)
    try:
        _arm_timer()
        try:
            return _run_task(payload, buffers, flags)
        finally:
            _disarm_timer()
    except TimeoutError as exc:  # the timer fired outside the call itself
        _disarm_timer()
        return False, _error_payload(exc), []


def _run_task(payload, buffers, flags):
    _state["call_where"] = None
    stored = _state["init_error"]
    if stored is not None:
        exc, text, message = stored
        return False, _error_payload(exc, text, message), []
    try:
        _on_interrupt.armed = True
        try:
            if flags & _SHM_FLAG:
                buffers = _shm_buffers(payload, buffers)
            value = _call_all(flags, payload, buffers)
        finally:
            _on_interrupt.armed = False
    except _KeptError as kept:
        _disarm_timer()
        _, exc, text, message = kept.entry
        return False, _error_payload(exc, text, message), []
    except BaseException as exc:
        _disarm_timer()
        return False, _error_payload(exc), []
    _disarm_timer()  # the call is over: pickling its result is not limited
    # Drop the references to the arguments before pickling the result.
    del payload, buffers
    try:
        data, oob = _dumps(value)
    except BaseException as exc:
        # The pickler's own exception (PicklingError, TypeError, even a
        # SystemExit from a __reduce__), as the caller's except clauses
        # expect, with a note saying whose result it was.
        note = "pympipool: the result of type %s could not be pickled on rank %d of %d on %s" % (
            _type_name(value),
            _state["rank"],
            _state["size"],
            _state["host"],
        )
        _add_note(exc, note)
        return False, _error_payload(exc), []
    oob, reply_flags = _shm_lend(oob, flags)
    if reply_flags:
        return True, data, oob, reply_flags
    return True, data, oob


def _add_note(exc, note):
    """exc.add_note(note), also before Python 3.11 (as __notes__)."""
    add_note = getattr(exc, "add_note", None)
    try:
        if add_note is not None:
            add_note(note)
        else:
            exc.__notes__ = list(getattr(exc, "__notes__", ())) + [note]
    except Exception:
        pass
