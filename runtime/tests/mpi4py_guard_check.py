"""The mismatched-mpi4py guard inside an MPI process of the runtime's MPI.

Run on every rank of an MPICH job (the embedding harness, or as a task of
pympipool-runtime when the build found mpi4py built for another MPI): after
``install``, ``import mpi4py`` still works, while ``from mpi4py import MPI``
and ``import mpi4py.futures`` raise ImportError with the explanation instead
of loading a second MPI library into the rank.  Prints "mpi4py guard ok on
rank r" (r from the harness's ``comm`` when there is one) and exits 0;
exits 1 on failure.
"""

import importlib.util
import os
import sys


def _load_guard():
    try:
        import _pympipool_mpi4py_guard as guard  # as the runtime embeds it

        return guard
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(os.path.dirname(here), "pmp_mpi4py_guard.py")
    spec = importlib.util.spec_from_file_location("_pympipool_mpi4py_guard", path)
    guard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guard)
    return guard


def run(comm=None):
    guard = _load_guard()
    guard.install("MPICH 4.0.2", "Open MPI 4.1.4")
    guard.install("MPICH 4.0.2", "Open MPI 4.1.4")  # idempotent
    assert sum(hasattr(f, "_pympipool_mpi4py_guard") for f in sys.meta_path) == 1
    import mpi4py  # the pure package stays importable

    assert mpi4py.__name__ == "mpi4py"
    for stmt in ("from mpi4py import MPI", "import mpi4py.MPI", "import mpi4py.futures"):
        try:
            exec(stmt, {})
        except ImportError as exc:
            text = str(exc)
            assert "built for Open MPI 4.1.4" in text, text
            assert "pympipool-runtime uses MPICH 4.0.2" in text, text
            assert "`comm` argument" in text, text
        else:
            raise AssertionError("%r was not blocked" % stmt)
    assert "mpi4py.MPI" not in sys.modules
    guard.uninstall()
    assert not any(hasattr(f, "_pympipool_mpi4py_guard") for f in sys.meta_path)
    rank = comm.Get_rank() if comm is not None else 0
    if comm is not None:
        comm.Barrier()  # the rank's MPI still works
    return "mpi4py guard ok on rank %d" % rank


if __name__ == "__main__":
    try:
        print(run(globals().get("comm")), flush=True)
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.exit(1)
