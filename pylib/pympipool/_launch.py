"""Which launcher starts the runtime, and with what: the ``backend``,
``threads_per_core``, ``launcher_args``, ``hosts`` and ``hostfile`` keywords
every interface takes.

``backend="auto"`` (the default) picks ``srun`` inside a SLURM allocation
(``SLURM_JOB_ID`` set), ``flux run`` inside a Flux instance (``FLUX_URI``
set) and ``mpiexec`` otherwise; ``"mpiexec"``, ``"srun"`` and ``"flux"``
choose one.  ``enable_flux_backend=True`` is pympipool 0.5's spelling of
``backend="flux"``.  With a ``queue_adapter`` the job is started by the
queuing system, on nodes not yet known: ``"auto"`` then means ``srun`` for
the built-in SLURM adapter (the batch script runs the job as a step of its
allocation) and ``mpiexec`` for an adapter object (the batch job's own
launcher finds its allocation as it would in a job script).

With ``srun`` the runtime's MPI decides the PMI (``pmi2`` for MPICH,
``pmix`` for Open MPI), checked against ``srun --mpi=list`` before anything
starts: a site whose SLURM lacks it gets an error that names what is there.
``--exact`` is added when the SLURM has it (20.11 and later), so that a
step takes only the CPUs it asked for and several executors can share one
allocation.

Ranks may run on another host when ``hosts`` or ``hostfile`` name hosts,
or when the launcher runs inside a SLURM allocation of more than one node.
The frontend then listens with TCP and CURVE (``hostname``) instead of its
private ``ipc://`` socket: on the address this host's name resolves to,
or, when that is a loopback address (Debian's ``127.0.1.1``), on the
first network interface that is up and not loopback.  ``hostname=`` names
the network to use instead.

Checks only (and, for ``srun``, two short runs of ``srun`` itself, cached per
program); the launch itself is ``pmp_command.c``'s.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._checks import _find_program

_LOGGER = logging.getLogger("pympipool")

BACKENDS = ("auto", "mpiexec", "srun", "flux")
#: the PMI srun must give the ranks of each MPI build
SRUN_PMI = {"mpich": "pmi2", "openmpi": "pmix"}
#: srun's answers (--mpi=list, version) per program path
_SRUN_CACHE: Dict[str, Tuple[List[str], Tuple[int, ...]]] = {}


@dataclass
class Launch:
    """What the engine passes to ``_core.Executor`` about the launcher."""

    backend: str  # "mpiexec", "srun" or "flux"
    program: Optional[str]  # the launcher's path (None for flux: "flux" on PATH)
    srun_mpi: Optional[str] = None
    srun_exact: bool = False
    threads_per_core: int = 0
    launcher_args: List[str] = field(default_factory=list)
    hosts: Optional[List[str]] = None
    hostfile: Optional[str] = None
    #: whether ranks may run on another host than this one
    remote: bool = False


def _check_str_list(name: str, value: Any) -> Optional[List[str]]:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"{name} must be a list of str (one entry per argument), "
            f"not {type(value).__name__}"
        )
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold str only, not {type(item).__name__}")
        if "\0" in item:
            raise ValueError(f"{name} entry {item!r} contains a NUL character")
    return items


def choose_backend(
    backend: Any,
    enable_flux_backend: bool,
    queued: bool,
    environ: Mapping[str, str],
    batch_srun: bool = False,
) -> str:
    """The launcher ``backend`` means here: "mpiexec", "srun" or "flux"."""
    if not isinstance(backend, str):
        raise TypeError(
            f"backend must be a str ({', '.join(map(repr, BACKENDS))}), "
            f"not {type(backend).__name__}"
        )
    if backend not in BACKENDS:
        raise ValueError(
            f"backend {backend!r} is not known: use one of {', '.join(map(repr, BACKENDS))}"
        )
    if enable_flux_backend:
        if backend not in ("auto", "flux"):
            raise ValueError(
                f"enable_flux_backend=True means backend='flux', not {backend!r}: "
                f"pass one of them"
            )
        return "flux"
    if backend != "auto":
        return backend
    if batch_srun:  # a SLURM batch job: srun inside its allocation
        return "srun"
    if queued:
        return "mpiexec"
    if environ.get("SLURM_JOB_ID"):
        return "srun"
    if environ.get("FLUX_URI"):
        return "flux"
    return "mpiexec"


def _srun_facts(srun: str) -> Tuple[List[str], Tuple[int, ...]]:
    """The MPI plugins of ``srun --mpi=list`` and SLURM's version."""
    if srun in _SRUN_CACHE:
        return _SRUN_CACHE[srun]
    try:
        listing = subprocess.run(
            [srun, "--mpi=list"], capture_output=True, text=True, timeout=30
        )
        version = subprocess.run(
            [srun, "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"cannot run '{srun} --mpi=list': {e}") from None
    text = listing.stdout + listing.stderr
    if listing.returncode != 0:
        tail = " ".join(text.strip().splitlines()[-2:])
        raise RuntimeError(
            f"'{srun} --mpi=list' failed (exit status {listing.returncode}): {tail}; "
            f"is SLURM configured here (SLURM_CONF, slurm.conf)?"
        )
    plugins = [
        line.strip()
        for line in text.splitlines()
        if line.startswith(("\t", " ")) and line.strip()
    ]
    # "srun: mpi/pmix_v4" lines of newer SLURMs name plugins too
    plugins += [m.group(1) for m in re.finditer(r"mpi/(\w+)", text)]
    numbers = re.search(r"(\d+)\.(\d+)", version.stdout)
    ver = (int(numbers.group(1)), int(numbers.group(2))) if numbers else (0, 0)
    _SRUN_CACHE[srun] = (plugins, ver)
    return plugins, ver


def _pmi_of(plugins: List[str], want: str) -> Optional[str]:
    for p in plugins:
        if p == want or p.startswith(want + "_"):
            return p if p == want else want
    return None


def _remote_slurm(environ: Mapping[str, str]) -> bool:
    try:
        return int(environ.get("SLURM_JOB_NUM_NODES") or environ.get("SLURM_NNODES") or 1) > 1
    except ValueError:
        return True


def check_launch(
    *,
    backend: Any,
    enable_flux_backend: bool,
    queued: bool,
    mpi_flavour: str,
    mpiexec: str,
    threads_per_core: Any,
    launcher_args: Any,
    hosts: Any,
    hostfile: Any,
    environ: Mapping[str, str],
    batch_srun: bool = False,
) -> Launch:
    """Every launcher keyword checked, and the launcher found; raises
    TypeError / ValueError / FileNotFoundError / RuntimeError naming what
    to change."""
    chosen = choose_backend(backend, enable_flux_backend, queued, environ, batch_srun)
    threads = 0
    if threads_per_core is not None:
        if isinstance(threads_per_core, bool) or not isinstance(threads_per_core, int):
            raise TypeError(
                f"threads_per_core must be an int, not {type(threads_per_core).__name__}"
            )
        if not 1 <= threads_per_core <= 4096:
            raise ValueError(
                f"threads_per_core must be between 1 and 4096, not {threads_per_core}"
            )
        threads = int(threads_per_core)
    largs = _check_str_list("launcher_args", launcher_args) or []
    host_list = _check_str_list("hosts", hosts)
    if host_list is not None:
        if not host_list:
            raise ValueError("hosts must name at least one host")
        for h in host_list:
            if not h or any(c in h for c in ", \t\n"):
                raise ValueError(
                    f"host {h!r} is not a host name: give one name per entry "
                    f"(Open MPI's 'name:slots' is accepted)"
                )
    if hostfile is not None:
        if not isinstance(hostfile, (str, os.PathLike)):
            raise TypeError(
                f"hostfile must be a path (str or os.PathLike), not {type(hostfile).__name__}"
            )
        hostfile = os.path.abspath(os.fspath(hostfile))
        if not os.path.isfile(hostfile):
            raise FileNotFoundError(errno.ENOENT, "hostfile not found", hostfile)
    if host_list is not None and hostfile is not None:
        raise ValueError("give hosts or hostfile, not both")
    if (host_list is not None or hostfile is not None) and chosen != "mpiexec":
        raise ValueError(
            f"hosts and hostfile are for backend='mpiexec'; {chosen} places the ranks "
            f"on the nodes of its allocation (backend {backend!r} chose {chosen})"
        )
    launch = Launch(
        backend=chosen,
        program=None,
        threads_per_core=threads,
        launcher_args=largs,
        hosts=host_list,
        hostfile=hostfile,
    )
    if chosen == "flux":
        _find_program("flux", "flux (backend='flux')")
    elif chosen == "srun":
        program = _find_program(
            os.environ.get("PYMPIPOOL_SRUN") or "srun", "srun (backend='srun')"
        )
        if not queued and not environ.get("SLURM_JOB_ID"):
            raise RuntimeError(
                "backend='srun' runs the ranks as a step of a SLURM allocation, and this "
                "process is in none (SLURM_JOB_ID is not set): start it inside salloc or "
                "an sbatch script, or use backend='mpiexec'"
            )
        plugins, version = _srun_facts(program)
        want = SRUN_PMI.get(mpi_flavour)
        if want is not None:
            pmi = _pmi_of(plugins, want)
            if pmi is None:
                raise RuntimeError(
                    f"this SLURM's srun has no '{want}' MPI plugin, which the runtime's "
                    f"MPI ({mpi_flavour}) needs; 'srun --mpi=list' shows: "
                    f"{', '.join(plugins) or 'nothing'}. Ask the site for {want}, or use "
                    f"backend='mpiexec'"
                )
            launch.srun_mpi = pmi
        launch.srun_exact = version >= (20, 11)
        launch.program = program
        launch.remote = _remote_slurm(environ)
    else:
        launch.program = _find_program(mpiexec, f"mpiexec of {mpi_flavour}")
        launch.remote = (
            host_list is not None or hostfile is not None or _remote_slurm(environ)
        ) and not queued
    return launch


def default_tcp_host() -> str:
    """The address other hosts reach this one on: the address of this
    host's name when that is not loopback, else the first interface that is
    up and not loopback (its name: the frontend binds to it), else
    127.0.0.1."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        for info in infos:
            addr = str(info[4][0])
            if not addr.startswith("127."):
                return addr
    except OSError:
        pass
    for _, name in socket.if_nameindex():
        if name == "lo":
            continue
        try:
            with open(f"/sys/class/net/{name}/operstate") as f:
                if f.read().strip() not in ("up", "unknown"):
                    continue
        except OSError:
            continue
        return name
    return "127.0.0.1"


def log_command(backend: str, command: List[str]) -> None:
    _LOGGER.debug("launching the runtime with %s: %s", backend, " ".join(command))
