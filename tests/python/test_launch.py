"""The launcher keywords of every interface (pympipool/_launch.py):
``backend``, ``threads_per_core``, ``launcher_args``, ``hosts`` and
``hostfile``.  What ``backend="auto"`` picks where, every refusal (before
anything is launched), the srun checks against a stand-in ``srun`` that
answers ``--mpi=list`` as a site without the right PMI would, and real
jobs with ``mpiexec``: hosts, OMP_NUM_THREADS on the ranks, the launcher's
extra arguments.  The srun launch itself is tested on a real SLURM
(tests/slurm).
"""

from __future__ import annotations

import logging
import os
import stat

import pytest

from pympipool import Executor, MPISpawnPool, Pool, PoolExecutor, _config
from pympipool._launch import check_launch, choose_backend

INTERFACES = [
    lambda **kw: Executor(cores=1, **kw),
    lambda **kw: PoolExecutor(max_workers=1, **kw),
    lambda **kw: Pool(max_workers=1, **kw),
    lambda **kw: MPISpawnPool(max_ranks=1, **kw),
]


def test_auto_picks_by_environment():
    assert choose_backend("auto", False, False, {}) == "mpiexec"
    assert choose_backend("auto", False, False, {"SLURM_JOB_ID": "7"}) == "srun"
    assert choose_backend("auto", False, False, {"FLUX_URI": "local:///x"}) == "flux"
    # a queue adapter starts the job elsewhere: the batch job's mpiexec
    assert choose_backend("auto", False, True, {"SLURM_JOB_ID": "7"}) == "mpiexec"
    assert choose_backend("mpiexec", False, False, {"SLURM_JOB_ID": "7"}) == "mpiexec"
    assert choose_backend("auto", True, False, {}) == "flux"
    assert choose_backend("flux", True, False, {}) == "flux"


@pytest.mark.parametrize("make", INTERFACES)
def test_every_interface_refuses_bad_launcher_keywords(make, new_processes):
    with pytest.raises(ValueError, match="backend 'slurm' is not known"):
        make(backend="slurm")
    with pytest.raises(TypeError, match="backend must be a str"):
        make(backend=1)
    with pytest.raises(ValueError, match="threads_per_core must be between 1 and 4096"):
        make(threads_per_core=0)
    with pytest.raises(TypeError, match="threads_per_core must be an int"):
        make(threads_per_core=2.0)
    with pytest.raises(TypeError, match="launcher_args must be a list of str"):
        make(launcher_args="-bind-to core")
    with pytest.raises(TypeError, match="launcher_args must hold str only"):
        make(launcher_args=["-n", 2])
    with pytest.raises(ValueError, match="is not a host name"):
        make(hosts=["h1,h2"])
    with pytest.raises(ValueError, match="at least one host"):
        make(hosts=[])
    with pytest.raises(FileNotFoundError, match="hostfile not found"):
        make(hostfile="/nonexistent/hosts")
    with pytest.raises(ValueError, match="hosts and hostfile are for backend='mpiexec'"):
        make(backend="flux", hosts=["h1"])
    assert not new_processes()


def test_flux_spellings_must_agree():
    with pytest.raises(ValueError, match="enable_flux_backend=True means backend='flux'"):
        PoolExecutor(max_workers=1, enable_flux_backend=True, backend="srun")


def test_srun_outside_an_allocation_is_refused(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises((RuntimeError, FileNotFoundError), match="srun"):
        PoolExecutor(max_workers=1, backend="srun")


def _fake_srun(tmp_path, plugins):
    """An srun that answers --mpi=list and --version like SLURM 22.05."""
    path = tmp_path / "srun"
    listing = "".join(f"\\t{p}\\n" for p in plugins)
    path.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f'  --mpi=list) printf "MPI plugin types are...\\n{listing}" ;;\n'
        '  --version) echo "slurm-wlm 22.05.8" ;;\n'
        "  *) exit 99 ;;\n"
        "esac\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _check_srun(srun, monkeypatch):
    monkeypatch.setenv("PYMPIPOOL_SRUN", srun)
    return check_launch(
        backend="srun", enable_flux_backend=False, queued=False,
        mpi_flavour=_config.MPI_FLAVOUR, mpiexec=_config.MPIEXEC, threads_per_core=None,
        launcher_args=None, hosts=None, hostfile=None,
        environ={"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2"},
    )


def test_srun_without_the_pmi_of_this_mpi_is_refused(tmp_path, monkeypatch):
    want = {"mpich": "pmi2", "openmpi": "pmix"}[_config.MPI_FLAVOUR]
    srun = _fake_srun(tmp_path, ["none", "cray_shasta"])
    with pytest.raises(RuntimeError, match=f"no '{want}' MPI plugin.*none, cray_shasta"):
        _check_srun(srun, monkeypatch)


def test_srun_with_the_pmi_of_this_mpi(tmp_path, monkeypatch):
    want = {"mpich": "pmi2", "openmpi": "pmix"}[_config.MPI_FLAVOUR]
    srun = _fake_srun(tmp_path, ["none", f"{want}_v4" if want == "pmix" else want])
    launch = _check_srun(srun, monkeypatch)
    assert (launch.backend, launch.srun_mpi, launch.srun_exact) == ("srun", want, True)
    assert launch.remote  # two nodes: TCP


def getenv(name):
    return os.environ.get(name)


def test_threads_per_core_and_launcher_args_with_mpiexec(caplog):
    extra = ["-genv", "PMP_MARK", "7"] if _config.MPI_FLAVOUR == "mpich" else ["-x", "PMP_MARK=7"]
    with caplog.at_level(logging.DEBUG, logger="pympipool"):
        with PoolExecutor(
            max_workers=2, oversubscribe=True, threads_per_core=3, launcher_args=extra
        ) as exe:
            assert exe.backend == "mpiexec"
            assert exe.command.index(extra[0]) < exe.command.index("--endpoint")
            assert exe.submit(getenv, "OMP_NUM_THREADS").result() == "3"
            assert exe.submit(getenv, "PMP_MARK").result() == "7"
    assert any("launching the runtime with mpiexec" in r.getMessage() for r in caplog.records)


def test_hosts_with_mpiexec_listen_on_tcp():
    """Ranks on named hosts may be elsewhere: the socket is TCP with CURVE."""
    with PoolExecutor(max_workers=2, oversubscribe=True, hosts=["localhost:2"]) as exe:
        cmd = exe.command
        flag = "--host" if _config.MPI_FLAVOUR == "openmpi" else "-hosts"
        assert cmd[cmd.index(flag) + 1] == "localhost:2"
        assert cmd[cmd.index("--endpoint") + 1].startswith("tcp://")
        assert list(exe.map(abs, [-1, -2, -3])) == [1, 2, 3]


def test_hostfile_with_mpiexec(tmp_path):
    hostfile = tmp_path / "hosts"
    line = "localhost slots=2" if _config.MPI_FLAVOUR == "openmpi" else "localhost:2"
    hostfile.write_text(line + "\n")
    with Executor(cores=2, hostfile=hostfile, hostname="127.0.0.1") as exe:
        flag = "--hostfile" if _config.MPI_FLAVOUR == "openmpi" else "-f"
        assert exe.command[exe.command.index(flag) + 1] == str(hostfile)
        assert exe.submit(abs, -4).result() == [4, 4]
