"""`pip install` of the source tree, used from a fresh environment, and removed again.

    check_pip_install.py pip   SOURCE_DIR MPI FLAVOUR VERSION MPI4PY
    check_pip_install.py error SOURCE_DIR

``pip`` (CTest: install.pip), with no package index (PIP_NO_INDEX=1):

1. makes a venv (``python -m venv --system-site-packages``: cloudpickle,
   numpy and mpi4py come from Debian) and runs ``pip install SOURCE_DIR``
   with build isolation, the MPI chosen with ``--config-settings mpi=MPI``
   (mpich, openmpi or auto, as the CMake build this test belongs to);
2. from a directory outside the source tree, runs ``Executor(cores=2)`` and
   ``PoolExecutor(max_workers=2)`` with the venv's Python, and
   ``pympipool --version`` / ``python -m pympipool --info``, whose rows must
   name the venv's package and runtime, the MPI FLAVOUR that CMake found
   (mpich, openmpi), the version CMake's project() gives (VERSION) and the
   mpi4py decision of the CMake build this test belongs to (MPI4PY: the
   build inside pip must see the venv's mpi4py, not pip's isolated
   environment);
3. ``pip uninstall -y pympipool`` must leave the venv as it was.

A build without isolation, from the sdist, installed with ``--prefix``, is
install.sdist's (check_sdist.py, which uses check_installed from here).

``error`` (CTest: install.pip_error): a build that fails (a bad CMake
argument through ``--config-settings cmake-args=``) must fail pip and show
CMake's own error text and the tail of the build log; a setting the backend
does not know must be refused.

Prints how long each step took.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Dict, List, Mapping, Optional, Sequence, Set

USE_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import pympipool
    from pympipool import Executor, PoolExecutor, _config

    def square_on_rank(x):
        return x * x, os.getpid()

    with Executor(cores=2) as exe:
        per_rank = exe.submit(square_on_rank, 7).result()
    assert [v for v, _ in per_rank] == [49, 49], per_rank
    assert len({pid for _, pid in per_rank}) == 2, per_rank

    with PoolExecutor(max_workers=2) as pool:
        values = [v for v, _ in pool.map(square_on_rank, range(10))]
    assert values == [x * x for x in range(10)], values

    print("package", os.path.dirname(pympipool.__file__))
    print("runtime", _config.RUNTIME)
    print("ok")
    """
)


class Failure(Exception):
    """A check failed; the message says which."""


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    timeout: float = 900,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Runs a command, prints what ran and how long it took; raises Failure
    (with its output) when check is set and it fails."""
    start = time.monotonic()
    proc = subprocess.run(
        list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    took = time.monotonic() - start
    print("[%6.1f s] %s -> %d" % (took, " ".join(argv), proc.returncode), flush=True)
    if check and proc.returncode != 0:
        raise Failure(
            "%s exited %d\n--- stdout ---\n%s\n--- stderr ---\n%s"
            % (" ".join(argv), proc.returncode, proc.stdout[-6000:], proc.stderr[-6000:])
        )
    return proc


def clean_env(**extra: str) -> Dict[str, str]:
    """This environment without anything that would point pympipool or
    Python elsewhere, with no package index for pip."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYMPIPOOL_RUNTIME", "PYMPIPOOL_MPIEXEC",
                     "PYMPIPOOL_MPI", "PYMPIPOOL_CMAKE_ARGS", "PYMPIPOOL_BUILD_DIR",
                     "VIRTUAL_ENV")
    }
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def snapshot(root: str) -> Set[str]:
    """Every path below root (files, links and directories), relative."""
    paths = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            paths.add(os.path.relpath(os.path.join(dirpath, name), root))
    return paths


def leftovers(before: Set[str], after: Set[str]) -> List[str]:
    """Paths that appeared, except bytecode caches of what was there
    before (pip compiles its own modules as it runs)."""
    new = []
    for path in sorted(after - before):
        parts = path.split(os.sep)
        if "__pycache__" in parts and "pympipool" not in path:
            continue
        new.append(path)
    return new


def info_rows(text: str) -> Dict[str, str]:
    """The key: value lines of --info."""
    rows = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key not in rows:
            rows[key] = value
    return rows


def expect(condition: bool, what: str) -> None:
    """Raises Failure(what) unless condition holds."""
    if not condition:
        raise Failure(what)


def check_installed(
    python: str,
    command: str,
    site: str,
    bindir: str,
    env: Mapping[str, str],
    cwd: str,
    flavour: str,
    version: str,
    mpi4py: Optional[str],
) -> None:
    """The package installed into site, with its runtime in bindir, works
    and describes itself."""
    package = os.path.join(site, "pympipool")
    runtime = os.path.join(bindir, "pympipool-runtime")
    expect(os.access(runtime, os.X_OK), "%s is not an executable file" % runtime)
    script = os.path.join(cwd, "use_pympipool.py")
    with open(script, "w", encoding="utf-8") as f:
        f.write(USE_SCRIPT)
    used = run([python, script], env, cwd, timeout=180)
    expect(used.stdout.splitlines()[-1:] == ["ok"], "the executors failed: %s" % used.stdout)
    expect("package %s" % package in used.stdout, "imported another pympipool: %s" % used.stdout)
    expect("runtime %s" % runtime in used.stdout, "used another runtime: %s" % used.stdout)

    out = run([command, "--version"], env, cwd, timeout=60).stdout
    expect(out == "pympipool %s\n" % version, "%s --version printed %r" % (command, out))

    proc = run([python, "-m", "pympipool", "--info"], env, cwd, timeout=120)
    print(textwrap.indent(proc.stdout, "    "), end="")
    rows = info_rows(proc.stdout)
    wanted = {
        "pympipool": version,
        "package": package,
        "runtime": runtime,
        "status": "ok",
    }
    for key, value in wanted.items():
        expect(rows.get(key) == value, "--info %s: %r, expected %r" % (key, rows.get(key), value))
    expect(rows.get("python", "").startswith(python + " "), "--info python: %r" % rows.get("python"))
    expect(rows.get("mpi", "").startswith(flavour + " "), "--info mpi: %r" % rows.get("mpi"))
    expect(rows.get("runtime check", "").startswith("ok: pympipool-runtime %s " % version),
           "--info runtime check: %r" % rows.get("runtime check"))
    expect(rows.get("mpiexec check", "").startswith("ok: "),
           "--info mpiexec check: %r" % rows.get("mpiexec check"))
    if mpi4py is not None:
        expect(rows.get("mpi4py at build", "").split(":")[0] == mpi4py,
               "--info mpi4py at build: %r, the CMake build found %r"
               % (rows.get("mpi4py at build"), mpi4py))


def check_pip(source: str, mpi: str, flavour: str, version: str, mpi4py: str) -> None:
    """Steps 1-3 of the module docstring."""
    base = sys.executable
    tmp = tempfile.mkdtemp(prefix="pympipool-pip-")
    try:
        outside = os.path.join(tmp, "elsewhere")
        os.mkdir(outside)
        venv = os.path.join(tmp, "venv")
        # pip's and the backend's temporary directories (a failed build's is
        # kept on purpose) go away with ours.
        os.mkdir(os.path.join(tmp, "tmp"))
        env = clean_env(TMPDIR=os.path.join(tmp, "tmp"))
        run([base, "-m", "venv", "--system-site-packages", venv], env, outside, timeout=300)
        python = os.path.join(venv, "bin", "python")
        site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['platlib'])"],
                   env, outside).stdout.strip()
        before = snapshot(venv)

        run([python, "-m", "pip", "install", "--config-settings", "mpi=" + mpi, source],
            env, outside)
        check_installed(python, os.path.join(venv, "bin", "pympipool"), site,
                        os.path.join(venv, "bin"), env, outside, flavour, version, mpi4py)
        run([python, "-m", "pip", "uninstall", "-y", "pympipool"], env, outside)
        left = leftovers(before, snapshot(venv))
        expect(not left, "pip uninstall left in the venv: %s" % ", ".join(left))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_error(source: str) -> None:
    """A failing CMake step fails pip, with CMake's message and the log's tail."""
    tmp = tempfile.mkdtemp(prefix="pympipool-pip-")
    try:
        build = os.path.join(tmp, "build")
        proc = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", os.path.join(tmp, "wheels"),
                    "--config-settings", "cmake-args=-DPYMPIPOOL_MPI=no-such-mpi",
                    "--config-settings", "build-dir=" + build, source],
                   clean_env(), tmp, timeout=300, check=False)
        output = proc.stdout + proc.stderr
        expect(proc.returncode != 0, "pip succeeded with a bad CMake argument")
        expect(re.search(r"PYMPIPOOL_MPI must be mpich, openmpi or auto, not\s+'no-such-mpi'", output)
               is not None, "CMake's error is not in pip's output:\n" + output[-4000:])
        expect("cmake configure failed" in output and "last lines of" in output,
               "the failing step and the log's tail are not in pip's output:\n" + output[-4000:])
        expect(not os.path.exists(os.path.join(tmp, "wheels")) or not os.listdir(
            os.path.join(tmp, "wheels")), "a wheel was written anyway")
        print("pip failed as it should, showing:")
        for line in output.splitlines():
            if "PYMPIPOOL_MPI must be" in line or "cmake configure failed" in line:
                print("    " + line.strip()[:200])

        # A misspelt setting is refused before anything is built.
        proc = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", os.path.join(tmp, "wheels"), "--config-settings", "mpi-flavour=openmpi",
                    source], clean_env(), tmp, timeout=300, check=False)
        output = proc.stdout + proc.stderr
        expect(proc.returncode != 0 and "unknown --config-settings 'mpi-flavour'" in output,
               "a misspelt setting was not refused:\n" + output[-4000:])
        print("    " + [l for l in output.splitlines() if "unknown --config-settings" in l][0].strip())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    """Entry point; returns the exit status."""
    start = time.monotonic()
    try:
        if len(argv) == 7 and argv[1] == "pip":
            check_pip(argv[2], argv[3], argv[4], argv[5], argv[6])
        elif len(argv) == 3 and argv[1] == "error":
            check_error(argv[2])
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (Failure, subprocess.TimeoutExpired) as exc:
        print("check_pip_install: %s" % exc, file=sys.stderr)
        return 1
    print("check_pip_install %s: ok in %.0f s" % (argv[1], time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
