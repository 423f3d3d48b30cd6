"""``python -m pympipool``: what this installation of pympipool is.

    python -m pympipool --version    prints ``pympipool <version>``
    python -m pympipool --info       prints one ``key: value`` per line

The same command is installed as ``pympipool``: by pip from the wheel's
entry point, by ``cmake --install`` as ``<prefix>/bin/pympipool``.

``--info`` is what a bug report needs: the package (version, directory,
extension), the interpreter, the runtime it launches and the mpiexec it
launches it with (both resolved the way an executor resolves them, so
``PYMPIPOOL_RUNTIME`` and ``PYMPIPOOL_MPIEXEC`` are honoured), the MPI the
build is for, and whether the mpi4py this interpreter would import belongs
to that MPI.  The runtime and mpiexec are asked for their versions (neither
starts MPI for that); mpi4py is judged from the ELF ``DT_NEEDED`` entries of
its ``mpi4py.MPI`` extension (pympipool/_elf.py, the same check the runtime
makes at start-up), so no second MPI library is ever loaded into this
process.  The last line is ``status: ok``, or ``status: broken`` followed by
``problem:`` lines; the exit status is 0 or 1 accordingly.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
from typing import List, Optional, Sequence, Tuple

from . import _config, _elf

#: Seconds a --version probe of the runtime or mpiexec may take.
PROBE_TIMEOUT = 20.0


def version_text() -> str:
    """The line ``--version`` prints."""
    return "pympipool %s" % _config.VERSION


def find_program(program: str) -> Tuple[Optional[str], str]:
    """(path, "") of an executable given as a path or a name looked up in
    PATH, or (None, why not).  The same rule the executors apply
    (pympipool/_checks.py, ``_find_program``)."""
    if os.sep in program:
        if not os.path.exists(program):
            return None, "does not exist"
        if not os.path.isfile(program) or not os.access(program, os.X_OK):
            return None, "is not an executable file"
        return program, ""
    found = shutil.which(program)
    if found is None:
        return None, "is not on PATH"
    return found, ""


def _probe(argv: Sequence[str]) -> Tuple[Optional[int], str]:
    """(exit status, stdout + stderr) of a short command; (None, why) if it
    cannot be run or does not finish in time."""
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "did not answer within %g s" % PROBE_TIMEOUT
    except OSError as exc:
        return None, str(exc)
    return proc.returncode, proc.stdout.decode("utf-8", "replace").strip()


def _check_runtime(runtime: str) -> Tuple[str, List[str]]:
    """(text for 'runtime check', problems) from ``runtime --version``."""
    status, out = _probe([runtime, "--version"])
    first = out.splitlines()[0] if out else ""
    if status != 0:
        why = out if status is None else "exit status %d: %s" % (status, out or "no output")
        return "cannot run: %s" % why, ["the runtime %s cannot run: %s" % (runtime, why)]
    problems = []
    match = re.search(r"pympipool-runtime (\S+)", first)
    if not match or match.group(1) != _config.VERSION:
        problems.append(
            "the runtime %s is not version %s: it says %r" % (runtime, _config.VERSION, first)
        )
    match = re.search(r"Python (\d+)\.(\d+)", first)
    ours = "%d.%d" % sys.version_info[:2]
    if match and "%s.%s" % match.groups() != ours:
        problems.append(
            "the runtime %s embeds Python %s.%s, this is Python %s: pickles cannot cross"
            % ((runtime,) + match.groups() + (ours,))
        )
    return ("ok: " if not problems else "") + first, problems


def _check_mpiexec(mpiexec: str) -> Tuple[str, List[str]]:
    """(text for 'mpiexec check', problems): which MPI ``mpiexec --version``
    says it belongs to, against the runtime's."""
    status, out = _probe([mpiexec, "--version"])
    if status != 0:
        why = out if status is None else "exit status %d" % status
        return "cannot run --version: %s" % why, []
    flavour: Optional[str]
    match = re.search(r"\(OpenRTE\)\s*(\S+)|Open MPI\D*(\d\S*)", out)
    if match:
        flavour, text = "openmpi", "Open MPI %s" % (match.group(1) or match.group(2))
    else:
        match = re.search(r"HYDRA build details:\s*Version:\s*(\S+)", out)
        flavour, text = ("mpich", "MPICH (hydra) %s" % match.group(1)) if match else (None, "")
    if flavour is None:
        return "unknown MPI (its --version says %r)" % out.splitlines()[0], []
    if _config.MPI_FLAVOUR in ("mpich", "openmpi") and flavour != _config.MPI_FLAVOUR:
        return text, [
            "mpiexec %s belongs to %s, the runtime was built for %s: set PYMPIPOOL_MPIEXEC "
            "to the mpiexec of %s" % (mpiexec, text, _config.RUNTIME_MPI, _config.RUNTIME_MPI)
        ]
    return "ok: " + text, []


def _mpi4py_text(runtime_ok: bool, runtime: str) -> str:
    """What a task's ``comm`` will be with the mpi4py this interpreter finds."""
    extension = _elf.mpi4py_extension()
    if extension is None:
        return "not importable: a task's comm is pympipool's own Comm"
    package = sys.modules.get("mpi4py")
    version = getattr(package, "__version__", "?")
    where = "%s (%s)" % (version, extension)
    ours = "a task's comm is pympipool's own Comm and importing mpi4py.MPI in a task raises ImportError"
    if not runtime_ok:
        return "%s: not checked, the runtime is missing" % where
    links, why = _elf.mpi4py_matches_executable(extension, runtime)
    if links and _config.MPI4PY == "matching":
        return "%s: matching (%s): a task's comm is an mpi4py.MPI.Intracomm" % (where, why)
    if links:
        return "%s: links the runtime's MPI (%s) but the build found mpi4py %s: %s" % (
            where,
            why,
            _config.MPI4PY,
            ours,
        )
    return "%s: mismatched (%s): %s" % (where, why, ours)


def info() -> Tuple[List[Tuple[str, str]], List[str]]:
    """The rows of ``--info`` as (key, value) pairs, and the problems that
    make this installation unusable (empty when it works)."""
    import pympipool

    rows: List[Tuple[str, str]] = []
    problems: List[str] = []
    rows.append(("pympipool", _config.VERSION))
    rows.append(("package", os.path.dirname(os.path.abspath(pympipool.__file__))))
    rows.append(("python", "%s (%s)" % (sys.executable, sys.version.split()[0])))
    rows.append(("built for python", _config.PYTHON_EXECUTABLE))
    core = sys.modules.get("pympipool._core")
    rows.append(("extension", getattr(core, "__file__", None) or "not loaded"))

    override = os.environ.get("PYMPIPOOL_RUNTIME")
    runtime, why = find_program(override or _config.RUNTIME)
    shown = override or _config.RUNTIME
    source = " (from PYMPIPOOL_RUNTIME)" if override else ""
    if runtime is None:
        rows.append(("runtime", "%s%s" % (shown, source)))
        rows.append(("runtime check", "missing: %s" % why))
        problems.append("the runtime %s%s %s" % (shown, source, why))
    else:
        rows.append(("runtime", "%s%s" % (os.path.abspath(runtime), source)))
        text, found = _check_runtime(runtime)
        rows.append(("runtime check", text))
        problems.extend(found)

    rows.append(("mpi", "%s %s" % (_config.MPI_FLAVOUR, _config.MPI_VERSION)))
    override = os.environ.get("PYMPIPOOL_MPIEXEC")
    wanted = override or _config.MPIEXEC
    source = " (from PYMPIPOOL_MPIEXEC=%s)" % override if override else ""
    mpiexec, why = find_program(wanted)
    if mpiexec is None:
        rows.append(("mpiexec", "%s%s" % (wanted, source)))
        rows.append(("mpiexec check", "missing: %s" % why))
        problems.append("mpiexec %s%s %s" % (wanted, source, why))
    else:
        rows.append(("mpiexec", "%s%s" % (mpiexec, source)))
        text, found = _check_mpiexec(mpiexec)
        rows.append(("mpiexec check", text))
        problems.extend(found)

    built = _config.MPI4PY
    if _config.MPI4PY_MPI:
        built += ": mpi4py %s for %s, runtime %s" % (
            _config.MPI4PY_VERSION,
            _config.MPI4PY_MPI,
            _config.RUNTIME_MPI,
        )
    rows.append(("mpi4py at build", built))
    rows.append(("mpi4py", _mpi4py_text(runtime is not None, runtime or "")))
    return rows, problems


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="pympipool",
        description="Run Python functions on MPI ranks from a serial Python process. "
        "This command describes the installation.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--info",
        action="store_true",
        help="print the package, interpreter, runtime, MPI and mpi4py this installation "
        "uses, one 'key: value' per line; exit status 1 if it cannot work",
    )
    args = parser.parse_args(argv)
    if args.version:
        print(version_text())
        return 0
    if not args.info:
        parser.print_help()
        return 0
    rows, problems = info()
    for key, value in rows:
        print("%s: %s" % (key, value))
    print("status: %s" % ("ok" if not problems else "broken"))
    for problem in problems:
        print("problem: %s" % problem)
    sys.stdout.flush()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
