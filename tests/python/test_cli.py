"""``python -m pympipool --version`` and ``--info`` (pylib/pympipool/__main__.py).

Run from the build tree's package (PYTHONPATH), so every row is checked
against facts found here independently: the package directory, the runtime
and mpiexec the build recorded, the runtime's own ``--version``, which MPI
the importable mpi4py was built for (asked in a separate process), and the
executors' own path resolution (``_checks._find_program``), which ``--info``
must agree with for every kind of ``PYMPIPOOL_RUNTIME`` / ``PYMPIPOOL_MPIEXEC``
value.  A broken installation (no runtime, a runtime of another version, an
mpiexec of another MPI) must say so and exit with status 1.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest

import pympipool
from pympipool import _checks, _config
from pympipool import __main__ as cli

KEYS = [
    "pympipool",
    "package",
    "python",
    "built for python",
    "extension",
    "runtime",
    "runtime check",
    "mpi",
    "mpiexec",
    "mpiexec check",
    "mpi4py at build",
    "mpi4py",
    "status",
]


def run_cli(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """python -m pympipool ARGS with this environment (less the overrides) plus env."""
    full = {k: v for k, v in os.environ.items()
            if k not in ("PYMPIPOOL_RUNTIME", "PYMPIPOOL_MPIEXEC")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "pympipool", *args], env=full,
                          capture_output=True, text=True, timeout=120)


def rows_of(text: str) -> Dict[str, str]:
    """The first value of every key of --info's output."""
    rows: Dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        assert sep, f"not a 'key: value' line: {line!r}"
        rows.setdefault(key, value)
    return rows


def mpi4py_flavour() -> Optional[str]:
    """Which MPI the importable mpi4py is built for, asked in another process
    (loading it here could bring a second MPI library into this one)."""
    code = ("import mpi4py; mpi4py.rc.initialize = False; mpi4py.rc.finalize = False\n"
            "from mpi4py import MPI; print(MPI.Get_library_version())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        return None
    if "Open MPI" in proc.stdout:
        return "openmpi"
    if "MPICH" in proc.stdout:
        return "mpich"
    return "other"


def fake_runtime(tmp_path: Path, text: str, status: int = 0) -> str:
    """An executable that answers --version with text."""
    path = tmp_path / "pympipool-runtime"
    path.write_text(f"#!/bin/sh\necho '{text}'\nexit {status}\n")
    path.chmod(0o755)
    return str(path)


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"pympipool {_config.VERSION}\n"
    assert pympipool.__version__ == _config.VERSION


def test_no_arguments_prints_usage():
    proc = run_cli()
    assert proc.returncode == 0, proc.stderr
    assert "--info" in proc.stdout and "--version" in proc.stdout


def test_info_describes_this_build():
    proc = run_cli("--info")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = rows_of(proc.stdout)
    assert list(rows) == KEYS, proc.stdout
    package = os.path.dirname(os.path.abspath(pympipool.__file__))
    assert rows["pympipool"] == _config.VERSION
    assert rows["package"] == package
    assert rows["python"] == f"{sys.executable} ({sys.version.split()[0]})"
    assert rows["built for python"] == _config.PYTHON_EXECUTABLE
    assert rows["extension"].startswith(os.path.join(package, "_core."))
    assert rows["runtime"] == os.path.abspath(_config.RUNTIME)
    # The runtime's own answer, asked here directly.
    answer = subprocess.run([_config.RUNTIME, "--version"], capture_output=True, text=True,
                            timeout=30).stdout.strip()
    assert answer.startswith(f"pympipool-runtime {_config.VERSION} ")
    assert rows["runtime check"] == "ok: " + answer
    assert rows["mpi"] == f"{_config.MPI_FLAVOUR} {_config.MPI_VERSION}"
    assert rows["mpiexec"] == shutil.which(_config.MPIEXEC)
    assert rows["mpiexec check"].startswith("ok: ")
    assert rows["status"] == "ok"


def test_info_mpi4py_verdict():
    rows = rows_of(run_cli("--info").stdout)
    assert rows["mpi4py at build"].split(":")[0] == _config.MPI4PY
    assert _config.MPI4PY in ("matching", "mismatched", "absent")
    flavour = mpi4py_flavour()
    if flavour is None:
        assert rows["mpi4py"].startswith("not importable"), rows["mpi4py"]
        return
    if flavour == _config.MPI_FLAVOUR:
        expected = "matching" if _config.MPI4PY == "matching" else "links the runtime's MPI"
        assert f": {expected} (" in rows["mpi4py"], rows["mpi4py"]
    else:
        assert ": mismatched (" in rows["mpi4py"], rows["mpi4py"]
        assert "pympipool's own Comm" in rows["mpi4py"]
        assert _config.MPI4PY != "matching"


def test_info_loads_no_mpi_library():
    """--info judges mpi4py from its ELF entries: no mpi4py.MPI and no MPI
    library in the process afterwards."""
    code = textwrap.dedent(
        """
        import contextlib, io, sys
        from pympipool.__main__ import main
        with contextlib.redirect_stdout(io.StringIO()):
            status = main(["--info"])
        maps = open("/proc/self/maps").read()
        loaded = sorted({line.split()[-1] for line in maps.splitlines()
                         if "libmpi" in line or "libmpich" in line})
        print(status, "mpi4py.MPI" in sys.modules, loaded)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip() == "0 False []", proc.stdout + proc.stderr


def test_missing_runtime_is_broken(tmp_path):
    missing = str(tmp_path / "no-such-runtime")
    proc = run_cli("--info", env={"PYMPIPOOL_RUNTIME": missing})
    assert proc.returncode == 1
    rows = rows_of(proc.stdout)
    assert rows["runtime"] == f"{missing} (from PYMPIPOOL_RUNTIME)"
    assert rows["runtime check"] == "missing: does not exist"
    assert rows["status"] == "broken"
    assert f"problem: the runtime {missing} (from PYMPIPOOL_RUNTIME) does not exist" in proc.stdout


def test_runtime_of_another_version_is_broken(tmp_path):
    python = "%d.%d.%d" % sys.version_info[:3]
    runtime = fake_runtime(tmp_path, f"pympipool-runtime 9.9.9 (MPI: X, Python {python})")
    proc = run_cli("--info", env={"PYMPIPOOL_RUNTIME": runtime})
    assert proc.returncode == 1
    assert f"problem: the runtime {runtime} is not version {_config.VERSION}" in proc.stdout
    runtime = fake_runtime(tmp_path, "cannot start", status=127)
    proc = run_cli("--info", env={"PYMPIPOOL_RUNTIME": runtime})
    assert proc.returncode == 1
    assert rows_of(proc.stdout)["runtime check"].startswith("cannot run: exit status 127")


def test_runtime_override_that_works(tmp_path):
    copy = tmp_path / "bin" / "pympipool-runtime"
    copy.parent.mkdir()
    shutil.copy2(_config.RUNTIME, copy)
    proc = run_cli("--info", env={"PYMPIPOOL_RUNTIME": str(copy)})
    assert proc.returncode == 0, proc.stdout
    rows = rows_of(proc.stdout)
    assert rows["runtime"] == f"{copy} (from PYMPIPOOL_RUNTIME)"
    assert rows["status"] == "ok"


def test_mpiexec_override_by_name():
    name = os.path.basename(_config.MPIEXEC)
    proc = run_cli("--info", env={"PYMPIPOOL_MPIEXEC": name})
    assert proc.returncode == 0, proc.stdout
    assert rows_of(proc.stdout)["mpiexec"] == f"{shutil.which(name)} (from PYMPIPOOL_MPIEXEC={name})"


def test_mpiexec_of_another_mpi_is_broken():
    other = {"mpich": "mpiexec.openmpi", "openmpi": "mpiexec.mpich"}.get(_config.MPI_FLAVOUR)
    if other is None or shutil.which(other) is None:
        pytest.skip("no mpiexec of another MPI installed")
    proc = run_cli("--info", env={"PYMPIPOOL_MPIEXEC": other})
    assert proc.returncode == 1
    assert rows_of(proc.stdout)["status"] == "broken"
    assert f"problem: mpiexec {shutil.which(other)} belongs to" in proc.stdout


def resolve_like_the_engine(value: str) -> Tuple[Optional[str], bool]:
    try:
        return _checks._find_program(value, "program"), True
    except FileNotFoundError:
        return None, False


def test_resolution_agrees_with_the_executors(tmp_path):
    not_executable = tmp_path / "plain-file"
    not_executable.write_text("")
    not_executable.chmod(stat.S_IRUSR | stat.S_IWUSR)
    values = [
        _config.RUNTIME,
        _config.MPIEXEC,
        os.path.basename(_config.MPIEXEC),
        "no-such-program-on-path",
        str(tmp_path / "no-such-file"),
        str(not_executable),
        str(tmp_path),
    ]
    for value in values:
        found, ok = resolve_like_the_engine(value)
        ours, why = cli.find_program(value)
        assert ours == found, (value, ours, why)
        assert (why == "") == ok, (value, why)
