"""The PEP 517 backend's decisions, without building (backend/pympipool_build.py).

install.pip, install.sdist and install.pip_error run the backend through
pip with real builds; this module checks, in this process and in
milliseconds, what those builds depend on: the version is CMake's (the
build tree's _config.py was written by CMake from the same project()), the
settings and their precedence (--config-settings over the environment, a
misspelt key refused), the CMake environment without pip's build isolation,
the wheel tag of this interpreter, and the metadata.
"""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

from pympipool import _config

BACKEND = Path(__file__).resolve().parents[2] / "backend" / "pympipool_build.py"


@pytest.fixture(scope="module")
def backend() -> ModuleType:
    """The backend module, loaded from the source tree."""
    if not BACKEND.is_file():
        pytest.skip("the build backend is not next to the tests")
    spec = importlib.util.spec_from_file_location("pympipool_build_under_test", BACKEND)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


def test_version_is_cmakes(backend):
    assert backend.project_version() == _config.VERSION


def test_version_read_from_project_call(backend, tmp_path):
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.25)\n"
        "project(pympipool\n  VERSION 2.3.4 DESCRIPTION \"x\" LANGUAGES C)\n"
    )
    assert backend.project_version(tmp_path) == "2.3.4"
    (tmp_path / "CMakeLists.txt").write_text("project(other VERSION 1.0)\n")
    with pytest.raises(backend.BuildError, match="project\\(pympipool VERSION"):
        backend.project_version(tmp_path)


def test_mpi_setting_precedence(backend, monkeypatch):
    monkeypatch.delenv("PYMPIPOOL_MPI", raising=False)
    assert backend.mpi_flavour(None) == "mpich"
    monkeypatch.setenv("PYMPIPOOL_MPI", "openmpi")
    assert backend.mpi_flavour({}) == "openmpi"
    assert backend.mpi_flavour({"mpi": "auto"}) == "auto"
    assert backend.mpi_flavour({"mpi": ["openmpi", "mpich"]}) == "mpich"  # the last one given
    with pytest.raises(backend.BuildError, match="unknown MPI 'lam'"):
        backend.mpi_flavour({"mpi": "lam"})
    monkeypatch.setenv("PYMPIPOOL_MPI", "lam")
    with pytest.raises(backend.BuildError, match="from PYMPIPOOL_MPI"):
        backend.mpi_flavour(None)


def test_cmake_args_from_environment_then_settings(backend, monkeypatch):
    monkeypatch.setenv("PYMPIPOOL_CMAKE_ARGS", "-DA=1 '-DB=two words'")
    args = backend.extra_cmake_args({"cmake-args": ["-DC=3", "-DD=4 -DE=5"]})
    assert args == ["-DA=1", "-DB=two words", "-DC=3", "-DD=4", "-DE=5"]
    monkeypatch.delenv("PYMPIPOOL_CMAKE_ARGS")
    assert backend.extra_cmake_args(None) == []


def test_unknown_settings_are_refused(backend):
    backend.check_settings(None)
    backend.check_settings({"mpi": "mpich", "cmake-args": "", "build-dir": "/tmp/x"})
    with pytest.raises(backend.BuildError, match="unknown --config-settings 'mpi-flavour'"):
        backend.check_settings({"mpi-flavour": "openmpi"})


def test_cmake_runs_without_pips_isolation(backend, tmp_path):
    """pip's isolated PYTHONPATH entry (a pip-build-env-*/site directory with
    a sitecustomize.py) and PYTHONNOUSERSITE go; anything else stays."""
    site = tmp_path / "pip-build-env-abc123" / "site"
    site.mkdir(parents=True)
    (site / "sitecustomize.py").write_text("")
    mine = str(tmp_path / "mine")
    env = backend.cmake_environment(
        {"PYTHONPATH": f"{site}:{mine}", "PYTHONNOUSERSITE": "1", "PATH": "/usr/bin"}
    )
    assert env == {"PYTHONPATH": mine, "PATH": "/usr/bin"}
    env = backend.cmake_environment({"PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"})
    assert env == {}
    # Not an isolated build: left alone.
    plain = {"PYTHONPATH": mine, "PYTHONNOUSERSITE": "1"}
    assert backend.cmake_environment(plain) == plain


def test_wheel_tag_is_this_interpreter(backend):
    py = "cp%d%d" % sys.version_info[:2]
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert backend.wheel_tag() == f"{py}-{py}-{platform}"


def test_python_install_dir_matches_pips_layout(backend):
    """The package's place below the staging prefix is where pip's scheme
    puts it below the environment's prefix, so that the runtime is found
    at the same relative path ../../../../bin."""
    paths = sysconfig.get_paths(scheme="venv", vars={"base": "/P", "platbase": "/P"})
    assert "/P/" + backend.python_install_dir() == paths["platlib"]
    assert paths["data"] == "/P"


def test_metadata(backend):
    text = backend.metadata_text()
    head, _, body = text.partition("\n\n")
    assert head.splitlines()[:5] == [
        "Metadata-Version: 2.1",
        "Name: pympipool",
        f"Version: {_config.VERSION}",
        "Summary: Run Python functions on MPI ranks from a serial Python process",
        "Requires-Python: >=3.9",
    ]
    assert "Requires-Dist: cloudpickle" in head.splitlines()
    assert not any(line.startswith("License") for line in head.splitlines())
    assert body.startswith("# pympipool")


def test_prepare_metadata_writes_the_wheels_dist_info(backend, tmp_path):
    name = backend.prepare_metadata_for_build_wheel(str(tmp_path))
    assert name == f"pympipool-{_config.VERSION}.dist-info"
    files = sorted(p.name for p in (tmp_path / name).iterdir())
    assert files == ["METADATA", "WHEEL", "entry_points.txt"]
    entry_points = (tmp_path / name / "entry_points.txt").read_text()
    assert entry_points == "[console_scripts]\npympipool = pympipool.__main__:main\n"
    assert backend.get_requires_for_build_wheel(None) == []
    assert backend.get_requires_for_build_sdist(None) == []
