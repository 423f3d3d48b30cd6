"""Block a mismatched ``mpi4py.MPI`` inside the pympipool runtime.

The runtime is one MPI program: every rank's embedded interpreter already
lives inside the runtime's MPI library.  When the mpi4py on ``sys.path`` was
built for a different MPI library (Debian's mpi4py is built for Open MPI, the
runtime for MPICH), importing ``mpi4py.MPI`` would load a second MPI library
into the process, which crashes the rank or corrupts it.  When the build found
such a mismatch, the runtime installs this module's finder before any user
code runs: ``import mpi4py`` (the pure-Python package) still works, but
``mpi4py.MPI`` - and so everything that imports it, such as ``mpi4py.futures``
- raises an ``ImportError`` that says why and what to use instead: the
``comm`` argument, pympipool's own communicator with mpi4py's method names.

Guarantees: the finder never imports anything itself, raises only for
``mpi4py.MPI`` itself, and ``install`` is idempotent (a second call replaces
the first finder, it does not stack).
"""

import importlib.abc
import sys

__all__ = ["MismatchedMPI4PyFinder", "install", "uninstall"]

_BLOCKED = "mpi4py.MPI"


class MismatchedMPI4PyFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that refuses ``mpi4py.MPI`` with a clear message."""

    # Marks guards even across reloads of this module (see uninstall).
    _pympipool_mpi4py_guard = True

    def __init__(self, runtime_mpi: str, mpi4py_mpi: str) -> None:
        self.runtime_mpi = runtime_mpi
        self.mpi4py_mpi = mpi4py_mpi

    def message(self) -> str:
        return (
            "cannot import mpi4py.MPI here: pympipool-runtime uses %s, but this "
            "mpi4py is built for %s, and loading a second MPI library would crash "
            "the rank. Either use the `comm` argument (a parameter named comm gets "
            "pympipool's own communicator, with mpi4py's method names), or rebuild "
            "pympipool for the MPI mpi4py was built for (%s)"
            % (self.runtime_mpi, self.mpi4py_mpi, _rebuild_hint(self.mpi4py_mpi))
        )

    def find_spec(self, fullname, path=None, target=None):
        if fullname == _BLOCKED:
            raise ImportError(self.message(), name=fullname)
        return None


def _rebuild_hint(mpi4py_mpi: str) -> str:
    """How to build pympipool for the MPI library named mpi4py_mpi."""
    name = mpi4py_mpi.lower()
    flavour = None
    if "open mpi" in name or "openmpi" in name:
        flavour = "openmpi"
    elif "mpich" in name:
        flavour = "mpich"
    if flavour is None:
        return "cmake -DPYMPIPOOL_MPI=<that MPI>, or PYMPIPOOL_MPI=<that MPI> pip install ."
    return "cmake -DPYMPIPOOL_MPI=%s, or PYMPIPOOL_MPI=%s pip install ." % (flavour, flavour)


def install(runtime_mpi: str, mpi4py_mpi: str) -> MismatchedMPI4PyFinder:
    """Put the guard first on ``sys.meta_path`` and return it.

    ``runtime_mpi`` and ``mpi4py_mpi`` name the two MPI libraries for the
    error message, e.g. ``"MPICH 4.0.2"`` and ``"Open MPI 4.1.4"``.  A
    ``mpi4py.MPI`` that is already imported is left alone (it cannot be
    unloaded); the runtime installs the guard before any user code runs.
    """
    uninstall()
    finder = MismatchedMPI4PyFinder(str(runtime_mpi), str(mpi4py_mpi))
    sys.meta_path.insert(0, finder)
    return finder


def uninstall() -> None:
    """Remove every finder that ``install`` put on ``sys.meta_path``."""
    sys.meta_path[:] = [
        f for f in sys.meta_path if not getattr(f, "_pympipool_mpi4py_guard", False)
    ]
