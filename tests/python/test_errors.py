"""Bad input and failures to start: checked before anything is launched, or
reported as ExecutorBroken with the job's stderr, within seconds."""

import os
import shlex
import sys
import textwrap
import time

import pytest

from pympipool import Executor, ExecutorBroken
from pympipool import _config

from conftest import our_processes


def add(a, b=0):
    return a + b


def nothing_launched():
    assert our_processes() == {}


@pytest.mark.parametrize("cores", [0, -1, -8])
def test_cores_below_one_is_a_value_error(cores):
    with pytest.raises(ValueError, match="cores"):
        Executor(cores=cores)
    nothing_launched()


@pytest.mark.parametrize("cores", [1.0, 2.5, "2", None, True, False, [2]])
def test_cores_not_an_int_is_a_type_error(cores):
    with pytest.raises(TypeError, match="cores"):
        Executor(cores=cores)
    nothing_launched()


def test_missing_cwd_is_file_not_found_naming_it(tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(FileNotFoundError) as info:
        Executor(cwd=str(missing))
    assert info.value.filename == str(missing)
    assert str(missing) in str(info.value)
    nothing_launched()


def test_cwd_that_is_a_file_is_rejected(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(FileNotFoundError):
        Executor(cwd=path)
    nothing_launched()


def test_cwd_is_the_working_directory_of_the_ranks(tmp_path):
    with Executor(cores=2, cwd=tmp_path) as exe:
        assert exe.submit(os.getcwd).result(timeout=60) == [str(tmp_path)] * 2
    with Executor() as exe:
        assert exe.submit(os.getcwd).result(timeout=60) == os.getcwd()


@pytest.mark.parametrize("init_function", [42, "init_k", {"k": 3}])
def test_init_function_must_be_callable(init_function):
    with pytest.raises(TypeError, match="init_function"):
        Executor(init_function=init_function)
    nothing_launched()


def test_missing_mpiexec_path_is_file_not_found(monkeypatch):
    monkeypatch.setenv("PYMPIPOOL_MPIEXEC", "/nonexistent/mpiexec")
    with pytest.raises(FileNotFoundError) as info:
        Executor()
    assert info.value.filename == "/nonexistent/mpiexec"
    assert "mpiexec" in str(info.value)
    nothing_launched()


def test_mpiexec_not_on_path_is_file_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("PYMPIPOOL_MPIEXEC", "pmp-no-such-mpiexec")
    with pytest.raises(FileNotFoundError) as info:
        Executor(cores=2)
    assert info.value.filename == "pmp-no-such-mpiexec"
    assert "PATH" in str(info.value)
    nothing_launched()


def test_recorded_mpiexec_is_the_mpi_libraries_own():
    name = os.path.basename(_config.MPIEXEC)
    assert _config.MPI_FLAVOUR in ("mpich", "openmpi")
    assert os.path.isabs(_config.MPIEXEC) and os.access(_config.MPIEXEC, os.X_OK)
    if name.startswith("mpiexec."):
        assert name.split(".", 1)[1] in ("mpich", "hydra", "openmpi")


def test_missing_flux_is_file_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        Executor(enable_flux_backend=True)
    assert info.value.filename == "flux"
    nothing_launched()


def test_missing_runtime_is_file_not_found(monkeypatch, tmp_path):
    missing = str(tmp_path / "pympipool-runtime")
    monkeypatch.setenv("PYMPIPOOL_RUNTIME", missing)
    with pytest.raises(FileNotFoundError) as info:
        Executor()
    assert info.value.filename == missing
    nothing_launched()


def test_queue_adapter_without_submit_job_is_a_type_error():
    with pytest.raises(TypeError, match="submit_job"):
        Executor(queue_adapter=object())

    class NotCallable:
        submit_job = 3

    with pytest.raises(TypeError, match="submit_job"):
        Executor(queue_adapter=NotCallable())
    nothing_launched()


def test_queue_adapter_kwargs_must_be_a_dict():
    class Adapter:
        def submit_job(self, **kwargs):
            raise AssertionError("must not be called")

    with pytest.raises(TypeError, match="queue_adapter_kwargs"):
        Executor(queue_adapter=Adapter(), queue_adapter_kwargs=[("queue", "x")])
    nothing_launched()


def test_runtime_that_cannot_start_breaks_the_executor_with_its_stderr(
    monkeypatch, bad_runtime
):
    monkeypatch.setenv("PYMPIPOOL_RUNTIME", bad_runtime)
    started = time.monotonic()
    exe = Executor()
    try:
        # The runtime may already be gone when submit() runs (then submit
        # raises) or die while the call waits (then result() raises): the
        # user sees the same error with the runtime's stderr either way.
        with pytest.raises(ExecutorBroken) as info:
            exe.submit(add, 1).result(timeout=30)
        assert time.monotonic() - started < 10
        assert "marker 4711" in str(info.value)
        # Later submits fail at once with the same reason.
        started = time.monotonic()
        with pytest.raises(ExecutorBroken, match="marker 4711"):
            exe.submit(add, 2)
        assert time.monotonic() - started < 1
    finally:
        exe.shutdown(wait=True)


def test_bad_python_executable_breaks_the_executor(monkeypatch, tmp_path):
    """A runtime started with an interpreter that does not exist fails on its
    own; the executor reports that instead of hanging."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    exe = Executor()
    try:
        with pytest.raises(ExecutorBroken) as info:
            exe.submit(add, 1).result(timeout=60)
        assert "no-such-python" in str(info.value), str(info.value)
    finally:
        exe.shutdown(wait=True)


def test_python_version_mismatch_in_hello_breaks_the_executor(monkeypatch, tmp_path):
    """A worker that announces another Python is refused with a clear message
    (a fake runtime speaking the protocol over a local link)."""
    script = tmp_path / "old-python-runtime.py"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            """
            import os, sys
            from pmp_link_peer import Link, greeting
            from pmp_wire import GOODBYE, HELLO, SHUTDOWN, header, parse_header
            args = sys.argv[1:]
            endpoint = args[args.index("--endpoint") + 1]
            # connect and greet as the runtime does (docs/security.md)
            with open(args[args.index("--credentials") + 1]) as f:
                cred = dict(l.split("=", 1) for l in f.read().split() if "=" in l)
            link = Link.connect(endpoint[len("ipc://"):])
            link.send([greeting(cred["password"].encode())])
            hello = ("group=0\\nngroups=1\\ngroup_size=1\\nworld_size=1\\nworld_rank=0\\n"
                     "pid=%d\\nhost=fakehost\\npython=2.7.18\\nmpi=none\\nruntime=0\\n" % os.getpid())
            link.send([header(HELLO), hello.encode()])
            while True:
                frames = link.recv(60.0)
                if frames is None:
                    break
                if parse_header(frames[0])[1] == SHUTDOWN:
                    link.send([header(GOODBYE), b""])
                    break
            link.close()
            """
        )
    )
    script.chmod(0o755)
    monkeypatch.setenv("PYMPIPOOL_RUNTIME", str(script))
    import pmp_link_peer  # tests/support: the stand-in runtime imports it too

    support = os.path.dirname(os.path.abspath(pmp_link_peer.__file__))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, (support, os.environ.get("PYTHONPATH"))))
    )
    exe = Executor()
    try:
        future = exe.submit(add, 1)
        with pytest.raises(ExecutorBroken, match=r"Python 2\.7\.18"):
            future.result(timeout=60)
        with pytest.raises(ExecutorBroken, match="Python"):
            exe.submit(add, 1)
    finally:
        exe.shutdown(wait=True)


class PopenAdapter:
    """A minimal queue adapter: runs the command here with subprocess."""

    def __init__(self):
        self.calls = []
        self.processes = []

    def submit_job(self, working_directory, cores, command, **kwargs):
        import subprocess

        self.calls.append(
            dict(
                working_directory=working_directory,
                cores=cores,
                command=command,
                **kwargs,
            )
        )
        self.processes.append(subprocess.Popen(shlex.split(command), cwd=working_directory))
        return len(self.processes)


def test_queue_adapter_receives_the_command_and_runs_it(tmp_path):
    adapter = PopenAdapter()
    with Executor(
        cores=2,
        cwd=tmp_path,
        queue_adapter=adapter,
        queue_adapter_kwargs={"queue": "debug", "run_time_max": 60},
    ) as exe:
        assert exe.submit(add, 1, 2).result(timeout=60) == [3, 3]
        assert exe.submit(os.getcwd).result(timeout=60) == [str(tmp_path)] * 2
    (call,) = adapter.calls
    assert call["cores"] == 2
    assert call["working_directory"] == str(tmp_path)
    assert call["queue"] == "debug" and call["run_time_max"] == 60
    # One shell-quoted string, as pympipool 0.5 (and pysqa) pass it.
    assert isinstance(call["command"], str)
    command = shlex.split(call["command"])
    assert "--endpoint" in command and "-n" in command
    assert command[command.index("-n") + 1] == "2"
    (process,) = adapter.processes
    assert process.wait(timeout=30) == 0


def test_queue_adapter_that_fails_leaves_nothing_behind():
    class FailingAdapter:
        def submit_job(self, **kwargs):
            raise RuntimeError("queue is full")

    with pytest.raises(RuntimeError, match="queue is full"):
        Executor(queue_adapter=FailingAdapter())
    nothing_launched()
