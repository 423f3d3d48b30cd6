"""The PEP 517 build backend of pympipool: CMake builds, the standard library packs.

``pip install .`` (pyproject.toml names this module, with ``requires = []``,
so pip installs nothing before calling it and works without any package
index) runs, for the interpreter pip installs into (``sys.executable``):

    cmake -S <source> -B <build> -DPython3_EXECUTABLE=<python> -DPYMPIPOOL_MPI=<mpi>
          -DPYMPIPOOL_WHEEL=ON ...
    cmake --build <build> --target pympipool_installable
    cmake --install <build> --prefix <staging>

and zips the staging prefix into a wheel: the package from
``<staging>/lib/pythonX.Y/site-packages`` at the wheel's root (pip puts it
into the environment's site-packages), everything else
(``bin/pympipool-runtime``, ``lib/libpympipool-frontend.so``, the C headers)
under ``pympipool-<version>.data/data/`` (pip puts it under the environment's
prefix: ``<venv>/bin``, ``~/.local/bin`` with ``--user``, ``P/bin`` with
``--prefix P``).  The installed ``pympipool/_config.py`` finds the runtime
relative to itself, which is the same in every one of those layouts.
docs/install.md says why a backend of our own and how to use it.

Settings (``pip install . -C key=value``, or the environment):

* ``mpi`` / ``PYMPIPOOL_MPI``: ``mpich`` (default), ``openmpi`` or ``auto``.
* ``cmake-args`` / ``PYMPIPOOL_CMAKE_ARGS``: more CMake arguments
  (shell-quoted; both are used, the environment's first).
* ``build-dir`` / ``PYMPIPOOL_BUILD_DIR``: a build directory to keep and
  reuse (default: a fresh temporary one, removed after a successful build;
  one directory per MPI flavour).

The build's output goes to ``<build>/pympipool-build.log``; when a step
fails the error carries the log's last lines and the build directory is
kept.  Hooks: build_wheel, build_sdist, prepare_metadata_for_build_wheel and
the two get_requires_* (nothing is required).  No editable installs: the
package needs its compiled parts; use the build tree
(``PYTHONPATH=<build>/python``) to work on the sources.
"""

import base64
import csv
import gzip
import hashlib
import io
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

NAME = "pympipool"
REQUIRES_PYTHON = ">=3.9"
REQUIRES_DIST = ["cloudpickle"]
CONSOLE_SCRIPTS = {"pympipool": "pympipool.__main__:main"}
CLASSIFIERS = [
    "Programming Language :: Python :: 3",
    "Programming Language :: C",
    "Operating System :: POSIX :: Linux",
    "Topic :: System :: Distributed Computing",
]
MPI_FLAVOURS = ("mpich", "openmpi", "auto")
#: The --config-settings keys build_wheel understands.
SETTINGS = ("mpi", "cmake-args", "build-dir")
#: Lines of the build log an error message carries.
LOG_TAIL_LINES = 60

SOURCE_DIR = Path(__file__).resolve().parent.parent

ConfigSettings = Optional[Mapping[str, Union[str, Sequence[str]]]]


class BuildError(RuntimeError):
    """A step of the build failed; the message says which and shows why."""


# ---- metadata -----------------------------------------------------------------


def project_version(source: Path = SOURCE_DIR) -> str:
    """The version in CMakeLists.txt's ``project(pympipool VERSION x.y.z ...)``:
    the one place the version is written."""
    text = (source / "CMakeLists.txt").read_text(encoding="utf-8")
    match = re.search(r"project\s*\(\s*pympipool\b[^)]*?\bVERSION\s+([0-9][0-9A-Za-z.]*)", text)
    if not match:
        raise BuildError("no 'project(pympipool VERSION ...)' in %s" % (source / "CMakeLists.txt"))
    return match.group(1)


def _readme(source: Path) -> str:
    path = source / "README.md"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def summary(readme: str) -> str:
    """The first sentence of the README's first paragraph (the title skipped)."""
    for block in re.split(r"\n\s*\n", readme):
        block = block.strip()
        if block and not block.startswith(("#", "```", "|", "*", "-", "<", "[", "!")):
            text = " ".join(block.split())
            return re.split(r"(?<=[a-z)])\.\s| — | - ", text, maxsplit=1)[0].rstrip(".")
    return "Python functions on MPI ranks from a serial Python process"


def metadata_text(source: Path = SOURCE_DIR) -> str:
    """The core metadata (METADATA / PKG-INFO), version 2.1."""
    readme = _readme(source)
    lines = [
        "Metadata-Version: 2.1",
        "Name: %s" % NAME,
        "Version: %s" % project_version(source),
        "Summary: %s" % summary(readme),
        "Requires-Python: %s" % REQUIRES_PYTHON,
    ]
    lines += ["Requires-Dist: %s" % req for req in REQUIRES_DIST]
    lines += ["Classifier: %s" % c for c in CLASSIFIERS]
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        return "\n".join(lines) + "\n\n" + readme
    return "\n".join(lines) + "\n"


def wheel_tag() -> str:
    """interpreter-abi-platform of the running interpreter (cp311-cp311-linux_x86_64):
    the wheel holds a CPython extension and executables for this machine."""
    impl = sys.implementation.name
    short = {"cpython": "cp", "pypy": "pp"}.get(impl, impl)
    interp = "%s%d%d" % ((short,) + tuple(sys.version_info[:2]))
    abi = interp + getattr(sys, "abiflags", "") if impl == "cpython" else "none"
    platform = re.sub(r"[^A-Za-z0-9]", "_", sysconfig.get_platform())
    return "%s-%s-%s" % (interp, abi, platform)


def _dist_info_files(source: Path) -> Dict[str, bytes]:
    """The .dist-info files except RECORD, by name."""
    version = project_version(source)
    wheel = (
        "Wheel-Version: 1.0\n"
        "Generator: pympipool_build %s\n"
        "Root-Is-Purelib: false\n"
        "Tag: %s\n" % (version, wheel_tag())
    )
    entry_points = "[console_scripts]\n" + "".join(
        "%s = %s\n" % item for item in sorted(CONSOLE_SCRIPTS.items())
    )
    return {
        "METADATA": metadata_text(source).encode("utf-8"),
        "WHEEL": wheel.encode("utf-8"),
        "entry_points.txt": entry_points.encode("utf-8"),
    }


def _dist_name(source: Path) -> str:
    return "%s-%s" % (NAME, project_version(source))


# ---- settings -------------------------------------------------------------------


def _setting(config_settings: ConfigSettings, key: str) -> List[str]:
    """Every value given for key with -C / --config-settings (pip passes a
    list when a key is repeated)."""
    if not config_settings or key not in config_settings:
        return []
    value = config_settings[key]
    return [value] if isinstance(value, str) else [str(v) for v in value]


def check_settings(config_settings: ConfigSettings) -> None:
    """Refuses settings this backend does not know, so that a misspelt one
    (``mpi-flavour=openmpi``) cannot quietly build the default."""
    unknown = sorted(set(config_settings or ()) - set(SETTINGS))
    if unknown:
        raise BuildError(
            "unknown --config-settings %s: pympipool's are %s"
            % (", ".join(repr(k) for k in unknown), ", ".join(SETTINGS))
        )


def mpi_flavour(config_settings: ConfigSettings = None) -> str:
    """-C mpi=..., else PYMPIPOOL_MPI, else mpich (CMake's default)."""
    values = _setting(config_settings, "mpi")
    flavour = (values[-1] if values else os.environ.get("PYMPIPOOL_MPI", "")).strip() or "mpich"
    if flavour not in MPI_FLAVOURS:
        raise BuildError(
            "unknown MPI %r (from %s): use one of %s"
            % (flavour, "-C mpi" if values else "PYMPIPOOL_MPI", ", ".join(MPI_FLAVOURS))
        )
    return flavour


def extra_cmake_args(config_settings: ConfigSettings = None) -> List[str]:
    """PYMPIPOOL_CMAKE_ARGS, then every -C cmake-args=..., shell-split."""
    args = shlex.split(os.environ.get("PYMPIPOOL_CMAKE_ARGS", ""))
    for value in _setting(config_settings, "cmake-args"):
        args += shlex.split(value)
    return args


def _build_dir_setting(config_settings: ConfigSettings) -> Optional[Path]:
    values = _setting(config_settings, "build-dir")
    value = values[-1] if values else os.environ.get("PYMPIPOOL_BUILD_DIR", "")
    return Path(value).resolve() if value.strip() else None


def cmake_environment(environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment CMake runs in: this one, less pip's build isolation.

    In an isolated build pip points PYTHONPATH at a directory whose
    sitecustomize.py hides the target environment's site-packages, and sets
    PYTHONNOUSERSITE.  The build asks the target interpreter whether mpi4py
    is there and for which MPI (cmake/PympipoolMPI4py.cmake), which must see
    that environment as it will be when the package runs, so both go."""
    env = dict(os.environ if environ is None else environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    kept = [p for p in parts if not _is_pip_isolation_dir(p)]
    if len(kept) != len(parts):
        env.pop("PYTHONNOUSERSITE", None)
        if kept:
            env["PYTHONPATH"] = os.pathsep.join(kept)
        else:
            env.pop("PYTHONPATH", None)
    return env


def _is_pip_isolation_dir(path: str) -> bool:
    p = Path(path)
    return p.parent.name.startswith("pip-build-env-") and (p / "sitecustomize.py").is_file()


# ---- running CMake ------------------------------------------------------------------


def _log(message: str) -> None:
    print("pympipool: %s" % message, file=sys.stderr, flush=True)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _run(step: str, argv: Sequence[str], log: Path, env: Mapping[str, str], build: Path) -> None:
    """Runs one CMake step, its output appended to log; raises BuildError
    with the log's tail when it fails."""
    with open(log, "a", encoding="utf-8") as out:
        out.write("\n$ %s\n" % " ".join(shlex.quote(a) for a in argv))
        out.flush()
        try:
            status = subprocess.call(
                list(argv), stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=str(build)
            )
        except OSError as exc:
            raise BuildError("%s: cannot run %s: %s" % (step, argv[0], exc)) from None
    if status != 0:
        raise BuildError(
            "%s failed (exit status %d): %s\n"
            "---- last lines of %s ----\n%s\n---- end of log; the build directory %s is kept ----"
            % (step, status, " ".join(shlex.quote(a) for a in argv), log, _tail(log), build)
        )


def _cmake() -> str:
    cmake = shutil.which("cmake")
    if cmake is None:
        raise BuildError(
            "cmake is not on PATH: pympipool's C parts are built with CMake >= 3.25 "
            "(Debian: apt-get install cmake)"
        )
    return cmake


def python_install_dir() -> str:
    """Where the package goes below the staging prefix: the same relative
    place as in a venv, a --user or a --prefix install."""
    return "%s/python%d.%d/site-packages" % (
        (getattr(sys, "platlibdir", "lib"),) + tuple(sys.version_info[:2])
    )


def build_and_stage(staging: Path, config_settings: ConfigSettings = None) -> Path:
    """Configures, builds and installs pympipool into staging for
    sys.executable; returns the package's site-packages directory in it."""
    cmake = _cmake()
    flavour = mpi_flavour(config_settings)
    keep = _build_dir_setting(config_settings)
    build = keep if keep is not None else Path(tempfile.mkdtemp(prefix="pympipool-build-"))
    build.mkdir(parents=True, exist_ok=True)
    log = build / "pympipool-build.log"
    log.write_text("pympipool %s for %s, MPI %s\n" % (project_version(), sys.executable, flavour))
    pydir = python_install_dir()
    configure = [
        cmake,
        "-S", str(SOURCE_DIR),
        "-B", str(build),
        "-DPython3_EXECUTABLE=%s" % sys.executable,
        "-DPYMPIPOOL_MPI=%s" % flavour,
        "-DPYMPIPOOL_WHEEL=ON",
        "-DPYMPIPOOL_PYTHON_INSTALL_DIR=%s" % pydir,
        "-DCMAKE_INSTALL_BINDIR=bin",
        "-DCMAKE_INSTALL_LIBDIR=lib",
        # One file per library: a wheel cannot hold the usual soname symlinks.
        "-DCMAKE_PLATFORM_NO_VERSIONED_SONAME=ON",
    ] + extra_cmake_args(config_settings)
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
    env = cmake_environment()
    _log("building with CMake in %s (MPI %s, Python %s; log %s)" % (build, flavour, sys.executable, log))
    start = time.monotonic()
    _run("cmake configure", configure, log, env, build)
    _run(
        "cmake --build",
        [cmake, "--build", str(build), "--target", "pympipool_installable", "--parallel", jobs],
        log,
        env,
        build,
    )
    _run("cmake --install", [cmake, "--install", str(build), "--prefix", str(staging)], log, env, build)
    _log("built in %.0f s" % (time.monotonic() - start))
    if keep is None:
        shutil.rmtree(build, ignore_errors=True)
    site = staging / pydir
    if not (site / NAME / "__init__.py").is_file():
        raise BuildError("cmake --install put no %s package into %s" % (NAME, site))
    return site


# ---- the wheel --------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _zip_time(path: Optional[Path]) -> Tuple[int, int, int, int, int, int]:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = int(epoch) if epoch else int(path.stat().st_mtime) if path else int(time.time())
    return time.gmtime(max(when, 315532800))[:6]  # zip cannot go before 1980


class _WheelWriter:
    """Writes the files of a wheel and its RECORD."""

    def __init__(self, path: Path, dist_info: str) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.dist_info = dist_info
        self.records: List[Tuple[str, str, str]] = []

    def add(self, arcname: str, data: bytes, mode: int = 0o644, source: Optional[Path] = None) -> None:
        """One file; executable bits survive (pip restores them)."""
        info = zipfile.ZipInfo(arcname, date_time=_zip_time(source))
        info.external_attr = (stat.S_IFREG | (mode & 0o777)) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        self.records.append((arcname, _record_hash(data), str(len(data))))

    def add_tree(self, root: Path, prefix: str, skip: Iterable[Path] = ()) -> None:
        """Every file below root as prefix/<relative path> (symbolic links
        to files become copies: a wheel has no links)."""
        skipped = {p.resolve() for p in skip}
        for path in sorted(root.rglob("*")):
            if path.resolve() in skipped or any(q in skipped for q in path.resolve().parents):
                continue
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            rel = path.relative_to(root).as_posix()
            self.add(prefix + rel, path.read_bytes(), path.stat().st_mode, path)

    def close(self) -> None:
        record = self.dist_info + "/RECORD"
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows(self.records)
        writer.writerow((record, "", ""))
        info = zipfile.ZipInfo(record, date_time=_zip_time(None))
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, out.getvalue().encode("utf-8"))
        self.zip.close()


def build_wheel(
    wheel_directory: str,
    config_settings: ConfigSettings = None,
    metadata_directory: Optional[str] = None,
) -> str:
    """PEP 517: builds the C parts with CMake for sys.executable and writes
    the wheel into wheel_directory; returns its file name."""
    check_settings(config_settings)
    dist = _dist_name(SOURCE_DIR)
    dist_info = dist + ".dist-info"
    name = "%s-%s.whl" % (dist, wheel_tag())
    target = Path(wheel_directory) / name
    with tempfile.TemporaryDirectory(prefix="pympipool-stage-") as tmp:
        staging = Path(tmp)
        site = build_and_stage(staging, config_settings)
        Path(wheel_directory).mkdir(parents=True, exist_ok=True)
        partial = target.with_name(name + ".part")
        writer = _WheelWriter(partial, dist_info)
        try:
            writer.add_tree(site, "")
            data = dist + ".data/data/"
            for top in sorted(staging.iterdir()):
                if top.is_dir():
                    writer.add_tree(top, data + top.name + "/", skip=[site])
                else:
                    writer.add(data + top.name, top.read_bytes(), top.stat().st_mode, top)
            for file_name, content in _dist_info_files(SOURCE_DIR).items():
                writer.add(dist_info + "/" + file_name, content)
        finally:
            writer.close()
        os.replace(partial, target)
    _log("wrote %s" % target)
    return name


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: ConfigSettings = None
) -> str:
    """PEP 517: the wheel's .dist-info (without RECORD), without building."""
    dist_info = Path(metadata_directory) / (_dist_name(SOURCE_DIR) + ".dist-info")
    dist_info.mkdir(parents=True, exist_ok=True)
    for file_name, content in _dist_info_files(SOURCE_DIR).items():
        (dist_info / file_name).write_bytes(content)
    return dist_info.name


def get_requires_for_build_wheel(config_settings: ConfigSettings = None) -> List[str]:
    """PEP 517: nothing from an index (CMake, a C compiler, MPI and ZeroMQ
    come from the system; see docs/install.md)."""
    return []


def get_requires_for_build_sdist(config_settings: ConfigSettings = None) -> List[str]:
    """PEP 517: nothing."""
    return []


# ---- the sdist ---------------------------------------------------------------------------


def source_files(source: Path = SOURCE_DIR) -> List[str]:
    """The files of the source distribution, relative, sorted: what git
    tracks in a git checkout; in an unpacked sdist, every file but PKG-INFO
    and build output."""
    if (source / ".git").exists() and shutil.which("git"):
        out = subprocess.run(
            ["git", "-C", str(source), "ls-files", "-z", "--cached"],
            stdout=subprocess.PIPE,
            check=True,
        ).stdout.decode("utf-8", "surrogateescape")
        names = [n for n in out.split("\0") if n]
        return sorted(n for n in names if (source / n).is_file())
    files = []
    for path in _walk(source):
        rel = path.relative_to(source).as_posix()
        if rel != "PKG-INFO":
            files.append(rel)
    return sorted(files)


def _walk(source: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        dirnames[:] = [
            d
            for d in dirnames
            if d not in ("__pycache__", ".git", ".pytest_cache")
            and not (here == source and d.startswith("build"))
        ]
        for f in filenames:
            if not f.endswith(".pyc"):
                yield here / f


def build_sdist(sdist_directory: str, config_settings: ConfigSettings = None) -> str:
    """PEP 517: pympipool-<version>.tar.gz of the tracked source files and PKG-INFO."""
    dist = _dist_name(SOURCE_DIR)
    name = dist + ".tar.gz"
    target = Path(sdist_directory) / name
    Path(sdist_directory).mkdir(parents=True, exist_ok=True)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")

    def member(arcname: str, size: int, mode: int, mtime: float) -> tarfile.TarInfo:
        info = tarfile.TarInfo(dist + "/" + arcname)
        info.size, info.mode = size, mode & 0o755 | 0o644
        info.mtime = int(epoch) if epoch else int(mtime)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    partial = target.with_name(name + ".part")
    with open(partial, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=int(epoch or 0)) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                pkg_info = metadata_text(SOURCE_DIR).encode("utf-8")
                tar.addfile(member("PKG-INFO", len(pkg_info), 0o644, time.time()), io.BytesIO(pkg_info))
                for rel in source_files(SOURCE_DIR):
                    path = SOURCE_DIR / rel
                    st = path.stat()
                    with open(path, "rb") as f:
                        tar.addfile(member(rel, st.st_size, st.st_mode, st.st_mtime), f)
    os.replace(partial, target)
    return name
