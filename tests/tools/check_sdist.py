"""The source distribution, a wheel built from it alone, and that wheel installed.

    check_sdist.py SOURCE_DIR MPI FLAVOUR VERSION MPI4PY

(CTest: install.sdist.)  Calls the build backend's ``build_sdist``
(backend/pympipool_build.py, the hook ``python -m build`` uses) and checks
the tarball: ``pympipool-VERSION/`` holds exactly the files git tracks (in a
git checkout) plus PKG-INFO, with their executable bits, and PKG-INFO says
name, VERSION (CMake's project version), Requires-Python and Requires-Dist.

Then ``pip wheel --no-build-isolation`` builds a wheel from that tarball
alone (no git, no source tree: the sdist must be complete), for the MPI
given by ``PYMPIPOOL_MPI=MPI`` and in a kept ``build-dir``, and the wheel is
checked against the wheel format: every file listed in RECORD with its
sha256 and size, the package at the root (with the extension and the
generated _config.py), the runtime and the library under ``.data/data/``
with the runtime executable, the console script as an entry point, the tag
of this interpreter, no symbolic links and no ``bin/pympipool`` file of its
own.

Last, this interpreter's pip installs the wheel with ``--prefix P`` (on
Debian that is the ``P/local/...`` layout) and the installed copy must work
through ``PYTHONPATH`` alone: executors, ``pympipool --version``, ``--info``
naming the runtime pip put under P, FLAVOUR and the build's mpi4py decision
MPI4PY (check_pip_install.check_installed).
"""

import base64
import csv
import glob
import hashlib
import io
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zipfile
from email.parser import Parser
from typing import Dict, List, Sequence

from check_pip_install import Failure, check_installed, expect, run


def tracked_files(source: str) -> List[str]:
    """git ls-files of the source tree (files that exist), or [] outside git."""
    if not os.path.exists(os.path.join(source, ".git")) or shutil.which("git") is None:
        return []
    out = subprocess.run(["git", "-C", source, "ls-files", "-z"], check=True,
                         capture_output=True).stdout.decode()
    return sorted(n for n in out.split("\0") if n and os.path.isfile(os.path.join(source, n)))


def check_metadata(text: str, version: str, what: str) -> None:
    """Core metadata fields of PKG-INFO / METADATA."""
    meta = Parser().parsestr(text)
    expect(meta["Name"] == "pympipool", "%s Name: %r" % (what, meta["Name"]))
    expect(meta["Version"] == version, "%s Version: %r, CMake says %r" % (what, meta["Version"], version))
    expect(meta["Requires-Python"] == ">=3.9", "%s Requires-Python: %r" % (what, meta["Requires-Python"]))
    expect(meta.get_all("Requires-Dist") == ["cloudpickle"],
           "%s Requires-Dist: %r" % (what, meta.get_all("Requires-Dist")))
    expect(bool(meta["Summary"]) and "MPI" in meta["Summary"], "%s Summary: %r" % (what, meta["Summary"]))
    expect("# pympipool" in meta.get_payload(), "%s carries no README" % what)


def check_sdist(source: str, tmp: str, version: str) -> str:
    """Builds and checks the sdist; returns its path."""
    sys.path.insert(0, os.path.join(source, "backend"))
    sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
    import pympipool_build

    name = pympipool_build.build_sdist(tmp)
    expect(name == "pympipool-%s.tar.gz" % version, "sdist named %r" % name)
    path = os.path.join(tmp, name)
    top = "pympipool-%s/" % version
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        expect(all(n.startswith(top) for n in members), "members outside %s" % top)
        expect(all(m.isfile() for m in members.values()), "the sdist holds more than files")
        pkg_info = tar.extractfile(top + "PKG-INFO").read().decode()
    check_metadata(pkg_info, version, "PKG-INFO")
    files = sorted(n[len(top):] for n in members if n != top + "PKG-INFO")
    tracked = tracked_files(source)
    if tracked:
        missing = sorted(set(tracked) - set(files))
        extra = sorted(set(files) - set(tracked))
        expect(not missing and not extra,
               "sdist differs from git ls-files: missing %s, extra %s" % (missing[:10], extra[:10]))
    for rel in files:
        executable = os.access(os.path.join(source, rel), os.X_OK)
        expect(bool(members[top + rel].mode & 0o100) == executable, "%s lost its mode" % rel)
    for needed in ("CMakeLists.txt", "pyproject.toml", "backend/pympipool_build.py",
                   "pylib/pympipool/__init__.py", "README.md"):
        expect(needed in files, "the sdist lacks %s" % needed)
    print("sdist %s: %d files + PKG-INFO" % (name, len(files)))
    return path


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def check_wheel(path: str, version: str) -> None:
    """The wheel format, file by file."""
    dist = "pympipool-%s" % version
    info = dist + ".dist-info/"
    data = dist + ".data/data/"
    py = "cp%d%d" % sys.version_info[:2]
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    expect(os.path.basename(path) == "%s-%s-%s-%s.whl" % (dist, py, py, plat),
           "wheel named %s" % os.path.basename(path))
    with zipfile.ZipFile(path) as whl:
        names = whl.namelist()
        contents: Dict[str, bytes] = {n: whl.read(n) for n in names}
        modes = {i.filename: i.external_attr >> 16 for i in whl.infolist()}
    record = list(csv.reader(io.StringIO(contents[info + "RECORD"].decode())))
    listed = {row[0]: row for row in record}
    expect(set(listed) == set(names), "RECORD and the zip differ: %s"
           % sorted(set(listed) ^ set(names)))
    for name, row in listed.items():
        if name == info + "RECORD":
            expect(row[1:] == ["", ""], "RECORD lists a hash for itself")
            continue
        expect(row[1] == record_hash(contents[name]), "%s: wrong hash in RECORD" % name)
        expect(row[2] == str(len(contents[name])), "%s: wrong size in RECORD" % name)
    for name, mode in modes.items():
        expect(not (mode & 0o170000) or (mode & 0o170000) == 0o100000,
               "%s is not a regular file in the zip" % name)
    for needed in ("pympipool/__init__.py", "pympipool/__main__.py", "pympipool/_config.py",
                   "pympipool/_elf.py", data + "bin/pympipool-runtime",
                   data + "lib/libpympipool-frontend.so"):
        expect(needed in names, "the wheel lacks %s" % needed)
    expect(any(n.startswith("pympipool/_core.") and n.endswith(".so") for n in names),
           "the wheel lacks the extension")
    expect(modes[data + "bin/pympipool-runtime"] & 0o111 == 0o111, "the runtime is not executable")
    expect(data + "bin/pympipool" not in names, "the wheel ships its own bin/pympipool")
    expect(all(n.startswith(("pympipool/", info, data)) for n in names),
           "files outside the package, .dist-info and .data: %s"
           % [n for n in names if not n.startswith(("pympipool/", info, data))])
    wheel = Parser().parsestr(contents[info + "WHEEL"].decode())
    expect(wheel["Root-Is-Purelib"] == "false", "Root-Is-Purelib: %r" % wheel["Root-Is-Purelib"])
    expect(wheel["Tag"] == "%s-%s-%s" % (py, py, plat), "Tag: %r" % wheel["Tag"])
    entry = contents[info + "entry_points.txt"].decode()
    expect("[console_scripts]\npympipool = pympipool.__main__:main" in entry,
           "entry_points.txt: %r" % entry)
    check_metadata(contents[info + "METADATA"].decode(), version, "METADATA")
    config = contents["pympipool/_config.py"].decode()
    expect('RUNTIME = ""' in config and '_RUNTIME_RELATIVE = "../../../../bin/pympipool-runtime"'
           in config, "_config.py does not find the runtime relative to the package")
    print("wheel %s: %d files, RECORD verified" % (os.path.basename(path), len(names)))


def install_and_check(wheel: str, tmp: str, env: Dict[str, str], flavour: str, version: str,
                      mpi4py: str) -> None:
    """pip install --prefix of the wheel, then the installed copy used from elsewhere."""
    prefix = os.path.join(tmp, "prefix")
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--prefix", prefix, wheel], env, tmp,
        timeout=300)
    inits = glob.glob(os.path.join(prefix, "**", "pympipool", "__init__.py"), recursive=True)
    runtimes = glob.glob(os.path.join(prefix, "**", "bin", "pympipool-runtime"), recursive=True)
    expect(len(inits) == 1 and len(runtimes) == 1, "installed %s and %s" % (inits, runtimes))
    site = os.path.dirname(os.path.dirname(inits[0]))
    bindir = os.path.dirname(runtimes[0])
    print("installed into %s, runtime in %s" % (site, bindir))
    elsewhere = os.path.join(tmp, "elsewhere")
    os.mkdir(elsewhere)
    used = dict(env, PYTHONPATH=site)
    check_installed(sys.executable, os.path.join(bindir, "pympipool"), site, bindir, used,
                    elsewhere, flavour, version, mpi4py)


def main(argv: Sequence[str]) -> int:
    """Entry point; returns the exit status."""
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    source, mpi, flavour, version, mpi4py = argv[1:]
    start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="pympipool-sdist-")
    try:
        sdist = check_sdist(source, tmp, version)
        wheels = os.path.join(tmp, "wheels")
        build = os.path.join(tmp, "build")
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYMPIPOOL_MPI", "PYMPIPOOL_CMAKE_ARGS",
                            "PYMPIPOOL_BUILD_DIR", "PYMPIPOOL_RUNTIME", "PYMPIPOOL_MPIEXEC")}
        env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1",
                   PYTHONDONTWRITEBYTECODE="1", TMPDIR=os.path.join(tmp, "tmp"))
        os.mkdir(env["TMPDIR"])
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                               "--no-build-isolation", "-w", wheels,
                               "--config-settings", "build-dir=" + build, sdist],
                              env=dict(env, PYMPIPOOL_MPI=mpi), cwd=tmp, capture_output=True,
                              text=True, timeout=900)
        print("[%6.1f s] pip wheel --no-build-isolation %s -> %d"
              % (time.monotonic() - t0, os.path.basename(sdist), proc.returncode))
        expect(proc.returncode == 0, "pip wheel failed:\n%s\n%s"
               % (proc.stdout[-4000:], proc.stderr[-4000:]))
        expect(os.path.isfile(os.path.join(build, "pympipool-build.log")),
               "the build directory %s was not kept" % build)
        built = [n for n in os.listdir(wheels) if n.endswith(".whl")]
        expect(len(built) == 1, "pip wheel made %s" % built)
        check_wheel(os.path.join(wheels, built[0]), version)
        install_and_check(os.path.join(wheels, built[0]), tmp, env, flavour, version, mpi4py)
    except (Failure, subprocess.TimeoutExpired) as exc:
        print("check_sdist: %s" % exc, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("check_sdist: ok in %.0f s" % (time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
