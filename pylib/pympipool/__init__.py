"""pympipool: run Python functions on MPI ranks from a serial Python process.

``Executor(cores=N)`` is a ``concurrent.futures.Executor`` whose every call
runs on all N ranks of one MPI job (``mpiexec -n N pympipool-runtime``).

Configuration: the runtime executable and the matching ``mpiexec`` are
recorded at build time in ``pympipool._config``; the environment variables
``PYMPIPOOL_RUNTIME`` (path of ``pympipool-runtime``) and
``PYMPIPOOL_MPIEXEC`` (name or path of ``mpiexec``) override them.
``PYMPIPOOL_LOG_LEVEL`` (error, warning, info, debug) sets the C side's
logging.

Importing the package starts no thread, opens no socket and launches no
process; each executor does so when it is created.
"""

from ._config import VERSION as __version__
from ._executor import Executor, ExecutorBroken
from ._serialize import RemoteTraceback

__all__ = ["Executor", "ExecutorBroken", "RemoteTraceback", "__version__"]
