"""pympipool: run Python functions on MPI ranks from a serial Python process.

* ``Executor(cores=N)``: a ``concurrent.futures.Executor`` whose every call
  runs on all N ranks of one MPI job (``mpiexec -n N pympipool-runtime``).
* ``PoolExecutor(max_workers=N)``: a ``concurrent.futures.Executor`` over N
  serial workers, load-balanced.
* ``FlexExecutor(max_cores=N)``: a ``concurrent.futures.Executor`` over one
  job of N ranks, each call on the ``cores`` ranks (``resource_dict``) that
  are free when it starts, with its own communicator.
* ``Pool(max_workers=N)``: the ``multiprocessing.pool.Pool`` interface over N
  serial workers.
* ``MPISpawnPool(max_ranks=N, ranks_per_task=k)``: the Pool interface for
  MPI-parallel functions, N/k groups of k ranks; functions get ``comm``.
* ``get_cache_data(directory)``: the entries of the result cache that
  ``cache_directory=`` of ``Executor`` / ``PoolExecutor`` writes.

Configuration: the runtime executable and the matching ``mpiexec`` are
recorded at build time in ``pympipool._config``; the environment variables
``PYMPIPOOL_RUNTIME`` (path of ``pympipool-runtime``) and
``PYMPIPOOL_MPIEXEC`` (name or path of ``mpiexec``) override them.
``PYMPIPOOL_LOG_LEVEL`` (error, warning, info, debug) sets the C side's
logging.

Importing the package starts no thread, opens no socket and launches no
process; each executor does so when it is created.
"""

from ._cache import get_cache_data
from ._config import VERSION as __version__
from ._executor import Executor, ExecutorBroken, PoolExecutor, cancel_items_in_queue
from ._flex import FlexExecutor
from ._pool import MPISpawnPool, Pool
from ._pool_results import AsyncResult, IMapIterator, MapResult
from ._serialize import RemoteTraceback, TaskExitError

__all__ = [
    "Executor",
    "PoolExecutor",
    "FlexExecutor",
    "Pool",
    "MPISpawnPool",
    "AsyncResult",
    "MapResult",
    "IMapIterator",
    "ExecutorBroken",
    "RemoteTraceback",
    "TaskExitError",
    "cancel_items_in_queue",
    "get_cache_data",
    "__version__",
]

# ---- the socket coupling (SocketInterface and the functions for the other
# end) is added below by pympipool._socket; keep it last. -------------------
from ._socket import (
    SocketInterface,
    close_connection,
    connect_to_socket_interface,
    receive_instruction,
    send_result,
)

__all__ += [
    "SocketInterface",
    "connect_to_socket_interface",
    "receive_instruction",
    "send_result",
    "close_connection",
]
