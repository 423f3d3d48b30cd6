"""pympipool._core, the binding itself: construction errors, destroy, wait,
signals, frames and the payload helpers of pympipool._serialize."""

import errno
import json
import os
import pickle
import signal
import struct
import sys
import time

import numpy as np
import pmp_wire
import pytest

from pympipool import _config, _core, _payload, _serialize


def core_executor(**overrides):
    """A frontend executor that does not launch anything."""
    kwargs = dict(
        ranks=1,
        ranks_per_group=1,
        pipeline_depth=1,
        launch=False,
        oversubscribe=False,
        flux=False,
        mpi_flavour=_config.MPI_FLAVOUR,
        mpiexec=_config.MPIEXEC,
        runtime=_config.RUNTIME,
        cwd=None,
        runtime_args=["--python-executable", sys.executable],
    )
    kwargs.update(overrides)
    return _core.Executor(**kwargs)


def test_module_constants_match_the_protocol():
    assert (_core.MSG_HELLO, _core.MSG_TASK, _core.MSG_INIT) == (1, 2, 3)
    replies = (_core.MSG_RESULT, _core.MSG_ERROR, _core.MSG_SHUTDOWN, _core.MSG_GOODBYE)
    assert replies == (4, 5, 6, 7)
    assert _core.FLAG_ALL_RANKS == 1 and _core.FLAG_PER_RANK == 1
    kinds = [
        _core.DONE_RESULT,
        _core.DONE_ERROR,
        _core.DONE_BROKEN,
        _core.EVENT_HELLO,
        _core.EVENT_EXIT,
        _core.EVENT_CLOSED,
    ]
    assert kinds == [1, 2, 3, 4, 5, 6]
    assert _core.ZERO_COPY_THRESHOLD == _core.OOB_THRESHOLD == _payload.OOB_THRESHOLD == 65536


def test_the_tests_local_link_speaks_the_protocols():
    """tests/support/pmp_link_peer.py and pmp_wire.py, which stand in for
    either end of a connection, use protocol/pmp_link.h's and
    pmp_protocol.h's facts."""
    import pmp_link_peer
    import pmp_wire

    assert pmp_wire.VERSION == _core.PROTOCOL_VERSION
    kinds = (pmp_wire.HELLO, pmp_wire.TASK, pmp_wire.INIT, pmp_wire.RESULT, pmp_wire.ERROR)
    assert kinds == (_core.MSG_HELLO, _core.MSG_TASK, _core.MSG_INIT, _core.MSG_RESULT, _core.MSG_ERROR)
    more = (pmp_wire.SHUTDOWN, pmp_wire.GOODBYE, pmp_wire.DEFINE, pmp_wire.FORGET)
    assert more == (_core.MSG_SHUTDOWN, _core.MSG_GOODBYE, _core.MSG_DEFINE, _core.MSG_FORGET)

    assert pmp_link_peer.MAGIC == _core.LINK_MAGIC.encode()
    assert pmp_link_peer.VERSION == _core.LINK_VERSION
    assert pmp_link_peer.MORE == 1 << _core.LINK_MORE_BIT
    assert pmp_link_peer.greeting(b"pw")[:6] == _core.LINK_MAGIC.encode() + b"\x01\x00"


def test_a_link_is_admitted_only_with_the_password_and_gets_the_task():
    """A hand-made local link: a wrong password is closed without a byte;
    the executor's own gets the queued task after its hello."""
    import pmp_link_peer

    ex = core_executor()
    try:
        path = ex.endpoint[len("ipc://") :]
        command = list(ex.command)
        with open(command[command.index("--credentials") + 1]) as f:
            cred = dict(line.split("=", 1) for line in f.read().split() if "=" in line)
        ex.submit(5, _core.MSG_TASK, 0, b"payload", [])
        bad = pmp_link_peer.Link.connect(path)
        bad.send([pmp_link_peer.greeting(b"wrong")])
        assert bad.recv(5.0) is None and bad.closed
        bad.close()
        good = pmp_link_peer.Link.connect(path)
        good.send([pmp_link_peer.greeting(cred["password"].encode())])
        hello = (
            "group=0\nngroups=1\ngroup_size=1\nworld_size=1\nworld_rank=0\n"
            "pid=%d\nhost=h\npython=%d.%d.%d\nmpi=none\nruntime=0\n"
            % ((os.getpid(),) + tuple(sys.version_info[:3]))
        ).encode()
        good.send([pmp_wire.header(pmp_wire.HELLO), hello])
        frames = good.recv(10.0)
        assert frames is not None and frames[1] == b"payload"
        # the C encoder's header, as pmp_wire reads it
        assert pmp_wire.parse_header(frames[0]) == (pmp_wire.VERSION, pmp_wire.TASK, 5, 0, 1)
        good.close()
    finally:
        ex.destroy()


def test_command_endpoint_and_pid_without_launch():
    extra = ["--python-executable", sys.executable, "--cwd", "/"]
    core = core_executor(runtime_args=extra)
    try:
        assert core.pid is None
        assert core.endpoint.startswith("ipc://")
        assert core.endpoint.endswith("/frontend")
        command = core.command
        assert isinstance(command, list) and all(isinstance(a, str) for a in command)
        assert command[0] == _config.MPIEXEC
        assert command[1:3] == ["-n", "1"]
        assert _config.RUNTIME in command
        assert command[command.index("--endpoint") + 1] == core.endpoint
        assert command[-4:] == extra
        assert core.pending() == 0
    finally:
        core.destroy()


def test_invalid_configuration_is_a_value_error():
    with pytest.raises(ValueError):
        core_executor(ranks=0)
    with pytest.raises(ValueError):
        core_executor(ranks=4, ranks_per_group=3)
    with pytest.raises(ValueError):
        core_executor(pipeline_depth=0)
    with pytest.raises(TypeError):
        core_executor(runtime_args=["ok", 3])
    with pytest.raises(ValueError, match="NUL"):
        core_executor(cwd="a\0b")


def test_missing_mpiexec_is_named_by_the_frontend():
    with pytest.raises(FileNotFoundError) as info:
        core_executor(mpiexec="pmp-no-such-mpiexec", launch=True)
    assert info.value.errno == errno.ENOENT
    assert "pmp-no-such-mpiexec" in str(info.value)


def test_destroy_is_idempotent_and_every_method_then_raises():
    core = core_executor()
    core.destroy(grace_ms=0)
    core.destroy()
    assert core.destroyed
    for call in (
        lambda: core.endpoint,
        lambda: core.command,
        lambda: core.pid,
        lambda: core.submit(1, _core.MSG_TASK, 0, b"x", []),
        lambda: core.cancel(1),
        core.cancel_all,
        core.pending,
        core.close,
        lambda: core.wait(0),
    ):
        with pytest.raises(ValueError, match="executor is destroyed"):
            call()


def test_invalid_arguments_and_destroyed_executors_are_distinct_value_errors():
    invalid, destroyed = _core.InvalidArgumentError, _core.DestroyedError
    assert issubclass(invalid, ValueError) and issubclass(destroyed, ValueError)
    assert not issubclass(invalid, destroyed) and not issubclass(destroyed, invalid)
    # Refused by the frontend (EINVAL) and by the binding's own checks.
    for config in (dict(ranks=0), dict(cwd="a\0b"), dict(run_time_max=-1.0)):
        with pytest.raises(invalid):
            core_executor(**config)
    with pytest.raises(invalid):
        _core.Channel(interface="no/such/address")
    core = core_executor()
    calls = (
        lambda: core.submit(0, _core.MSG_TASK, 0, b"p", []),  # task id 0
        lambda: core.broadcast(_core.MSG_FORGET, 7),  # key 7 was never defined
        lambda: core.wait(-1),
    )
    try:
        for call in calls:
            with pytest.raises(invalid) as info:
                call()
            assert not isinstance(info.value, destroyed)
        with pytest.raises(invalid):
            core.destroy(grace_ms=-1)
        assert not core.destroyed
    finally:
        core.destroy(grace_ms=0)
    # Once destroyed, calls that would be valid raise DestroyedError.
    for call in (
        lambda: core.submit(1, _core.MSG_TASK, 0, b"p", []),
        lambda: core.broadcast(_core.MSG_DEFINE, 1, b"f"),
        lambda: core.wait(0),
        core.pending,
    ):
        with pytest.raises(destroyed, match="executor is destroyed") as info:
            call()
        assert not isinstance(info.value, invalid)


def test_the_futures_table_tells_a_destroyed_core_from_a_bad_call():
    from pympipool import _futures

    core = core_executor()
    state = _futures._State(core)
    try:
        with pytest.raises(_core.InvalidArgumentError):  # not a message type
            state.submit(99, 0, b"p", [])
        with pytest.raises(_core.InvalidArgumentError):  # key 0
            state.define_key(0, b"f", [])
        assert state.broken is None and len(state.futures) == 0
        assert core.pending() == 0
    finally:
        core.destroy(grace_ms=0)
    with pytest.raises(_futures.ExecutorBroken, match="was destroyed"):
        state.submit(_core.MSG_TASK, 0, b"p", [])
    with pytest.raises(_futures.ExecutorBroken, match="was destroyed"):
        state.define_key(1, b"f", [])
    assert len(state.futures) == 0
    assert state.pending() == 0  # a destroyed core has nothing pending


def test_wait_timeout_returns_none_in_time():
    core = core_executor()
    try:
        assert core.wait(0) is None
        started = time.monotonic()
        assert core.wait(0.3) is None
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 1.5
        with pytest.raises(ValueError):
            core.wait(-1)
    finally:
        core.destroy()


def test_wait_forever_is_interruptible_by_a_signal():
    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted()

    core = core_executor()
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        started = time.monotonic()
        with pytest.raises(Interrupted):
            core.wait(None)
        assert time.monotonic() - started < 1.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        core.destroy()


def test_submit_cancel_pending_and_close():
    core = core_executor()
    try:
        big = np.zeros(1 << 18)  # 2 MiB: held without copying
        refs = sys.getrefcount(big)
        core.submit(1, _core.MSG_TASK, 0, b"payload", [memoryview(big)])
        assert sys.getrefcount(big) > refs  # held by the frontend
        core.submit(2, _core.MSG_TASK, 0, bytearray(b"p"), [b"small"])
        assert core.pending() == 2
        assert core.cancel(1) is True
        assert core.cancel(1) is False
        assert core.cancel(12345) is False
        assert core.pending() == 1
        core.submit(3, _core.MSG_TASK, 0, b"p", [])
        assert sorted(core.cancel_all()) == [2, 3]
        assert core.cancel_all() == []
        # The cancelled message released the buffer; the next call drains.
        core.wait(0)
        assert sys.getrefcount(big) == refs
        with pytest.raises(ValueError):  # task id 0 is invalid
            core.submit(0, _core.MSG_TASK, 0, b"p", [])
        with pytest.raises(ValueError):
            core.submit(4, 99, 0, b"p", [])
        with pytest.raises(TypeError):
            core.submit(4, _core.MSG_TASK, 0, "not a buffer", [])
        with pytest.raises(TypeError):
            core.submit(4, _core.MSG_TASK, 0, b"p", [object()])
        with pytest.raises((BufferError, ValueError), match="contiguous"):
            core.submit(4, _core.MSG_TASK, 0, b"p", [np.zeros((300, 300))[:, ::2]])
        with pytest.raises(BufferError, match="contiguous"):
            core.submit(4, _core.MSG_TASK, 0, b"p", [memoryview(bytes(1000))[::2]])
        core.close()
        core.close()
        with pytest.raises(RuntimeError):
            core.submit(5, _core.MSG_TASK, 0, b"p", [])
    finally:
        core.destroy(grace_ms=0)


def test_failed_submit_releases_zero_copy_buffers():
    core = core_executor()
    try:
        big = np.zeros(1 << 18)
        refs = sys.getrefcount(big)
        with pytest.raises(ValueError):
            core.submit(0, _core.MSG_TASK, 0, b"p", [memoryview(big)])
        assert sys.getrefcount(big) == refs
    finally:
        core.destroy()
    assert sys.getrefcount(big) == refs


def test_destroy_releases_held_buffers():
    core = core_executor()
    big = bytearray(1 << 20)
    refs = sys.getrefcount(big)
    core.submit(1, _core.MSG_TASK, 0, big, [])
    assert sys.getrefcount(big) > refs
    core.destroy(grace_ms=0)
    assert sys.getrefcount(big) == refs


def test_frames_cannot_be_created_from_python():
    with pytest.raises(TypeError):
        _core.Frame()
    with pytest.raises(TypeError):

        class Sub(_core.Executor):
            pass


# ---- payload helpers ---------------------------------------------------------


def test_should_pickle_by_value_rule():
    assert _serialize.should_pickle_by_value(__name__)  # a test module
    assert not _serialize.should_pickle_by_value("__main__")
    assert not _serialize.should_pickle_by_value("json")  # stdlib
    assert not _serialize.should_pickle_by_value("numpy")  # dist-packages
    assert not _serialize.should_pickle_by_value("sys")  # built in
    assert not _serialize.should_pickle_by_value("pympipool._executor")
    assert not _serialize.should_pickle_by_value("pmp_not_imported_module")
    assert not _serialize.should_pickle_by_value(None)


def test_dumps_call_keeps_large_contiguous_buffers_out_of_band():
    big = np.arange(20_000, dtype=np.float64)  # 160 kB
    small = np.arange(10, dtype=np.float64)
    payload, buffers = _serialize.dumps_call(json.dumps, (big,), {"small": small})
    assert len(buffers) == 1 and buffers[0].nbytes == big.nbytes
    assert len(payload) < 10_000
    fn_bytes, args, kwargs = pickle.loads(payload, buffers=buffers)
    assert isinstance(fn_bytes, bytes)  # the function's own pickle
    assert pickle.loads(fn_bytes) is json.dumps and np.array_equal(args[0], big)
    assert np.array_equal(kwargs["small"], small)


def test_loads_result_with_and_without_rank_table():
    one = pickle.dumps("value", protocol=5)
    assert _serialize.loads_result(0, [one], _core.FLAG_PER_RANK) == "value"
    arr = np.arange(100_000)
    bufs = []
    pickled = pickle.dumps(arr, protocol=5, buffer_callback=bufs.append)
    raw = [bytearray(b.raw()) for b in bufs]
    table = struct.pack("<III", 2, 0, len(raw))
    frames = [table, pickle.dumps(1, protocol=5), pickled] + raw
    result = _serialize.loads_result(1, frames, 1)
    assert result[0] == 1 and np.array_equal(result[1], arr)
    with pytest.raises(ValueError, match="rank table"):
        _serialize.loads_result(1, [struct.pack("<II", 2, 0), one], 1)
    with pytest.raises(ValueError, match="rank table"):
        _serialize.loads_result(1, [b"\x01"], 1)
    # more frames than the table accounts for
    with pytest.raises(ValueError, match="rank table"):
        _serialize.loads_result(1, frames + [b"extra"], 1)


def test_decode_hello_is_the_c_decoder():
    """The hello reaches Python decoded by the frontend's own decoder:
    numbers as int, the ranks line as tuples; malformed text is refused
    with the decoder's reason."""
    text = (
        "group=1\nngroups=2\ngroup_size=2\nworld_size=4\nworld_rank=2\npid=77\n"
        "host=h1\npython=3.11.2\nmpi=MPICH 4\nruntime=9\nranks=2:77:h1,3:78:h2\nnew=ignored\n"
    ).encode()
    hello = _core.decode_hello(text)
    assert hello["group"] == 1 and hello["ngroups"] == 2 and hello["group_size"] == 2
    assert hello["world_size"] == 4 and hello["world_rank"] == 2 and hello["pid"] == 77
    assert (hello["host"], hello["python"], hello["mpi"], hello["runtime"]) == (
        "h1",
        "3.11.2",
        "MPICH 4",
        "9",
    )
    assert hello["ranks"] == [(2, 77, "h1"), (3, 78, "h2")]
    assert _core.decode_hello(text.replace(b"ranks=2:77:h1,3:78:h2\n", b""))["ranks"] == []
    with pytest.raises(ValueError, match="hello"):
        _core.decode_hello(b"group=zero\n")
    with pytest.raises(ValueError, match="hello"):
        _core.decode_hello(text.replace(b"3:78:h2", b"3:x:h2"))


def test_loads_error_rebuilds_or_falls_back():
    record = (
        "pympipool-error",
        1,
        pickle.dumps(KeyError("k")),
        "KeyError",
        "'k'",
        "Traceback...\nKeyError: 'k'\n",
        1,
        2,
        "node7",
    )
    exc = _serialize.loads_error([pickle.dumps(record)])
    assert type(exc) is KeyError
    assert str(exc.__cause__) == "Rank 1 of 2 on node7:\nTraceback...\nKeyError: 'k'\n"
    fallback = _serialize.loads_error([pickle.dumps(record[:2] + (None,) + record[3:])])
    assert type(fallback) is RuntimeError and "KeyError" in str(fallback)
    garbage = record[:2] + (b"garbage",) + record[3:]
    broken = _serialize.loads_error([pickle.dumps(garbage)])
    assert type(broken) is RuntimeError
    foreign = _serialize.loads_error([b"not a pickle"])
    assert type(foreign) is RuntimeError


def test_map_values_hands_out_each_value_once_and_empties_its_slot():
    first, second = [1, 2], [3]
    values = _core.MapValues(iter([first, [], second]))
    assert iter(values) is values
    assert next(values) == 1
    assert first == [None, 2]  # the caller's reference is the only one left
    assert list(values) == [2, 3]
    assert first == [None, None] and second == [None]
    assert list(values) == []


def test_map_values_raises_the_chunks_error_once_then_ends():
    def chunks():
        yield [1]
        raise KeyError("task failed")

    values = _core.MapValues(chunks())
    assert next(values) == 1
    with pytest.raises(KeyError, match="task failed"):
        next(values)
    assert list(values) == []

    bad = _core.MapValues(iter([(1, 2)]))
    with pytest.raises(TypeError, match="a chunk must be a list, not tuple"):
        next(bad)
    with pytest.raises(TypeError):
        _core.MapValues(5)  # not iterable


def test_map_values_close_closes_the_chunks():
    closed = []

    def chunks():
        try:
            yield [1, 2]
            yield [3]
        finally:
            closed.append(True)

    values = _core.MapValues(chunks())
    assert next(values) == 1
    values.close()
    assert closed == [True]
    assert list(values) == []
    values.close()  # twice is fine
    _core.MapValues(iter([[1]])).close()  # a plain iterator has no close()
