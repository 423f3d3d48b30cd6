"""backend="srun": every interface inside a SLURM allocation of two
(emulated) nodes, with the ranks on both, and the ways a step can end
under an executor.

The allocations are made with ``salloc --no-shell`` and entered as
``salloc`` enters its shell (``SLURM_JOB_ID`` in the environment), so that
``backend="auto"`` must find srun by itself.  Ranks tell where they run by
``SLURMD_NODENAME``, which slurmd sets for every task.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from conftest import allocation, steps, wait_until

import pympipool
from pympipool import Executor, ExecutorBroken, MPISpawnPool, PoolExecutor
from pympipool import _config

PMI = {"mpich": "pmi2", "openmpi": "pmix"}[_config.MPI_FLAVOUR]


def where(x):
    time.sleep(0.3)  # long enough that every worker gets a call
    return x * x, os.environ["SLURMD_NODENAME"], os.environ.get("SLURM_PROCID")


def group_nodes(x, comm):
    time.sleep(0.3)
    return x + 1, comm.allgather(os.environ["SLURMD_NODENAME"])


def ranks_and_nodes(comm):
    return comm.Get_rank(), comm.allreduce(comm.Get_rank()), os.environ["SLURMD_NODENAME"]


@pytest.fixture(scope="module")
def two_nodes():
    with allocation(nodes=2, ntasks_per_node=2) as job:
        yield job


def test_executor_cores4_on_two_nodes(two_nodes):
    with Executor(cores=4) as exe:
        assert exe.backend == "srun"
        cmd = exe.command
        assert os.path.basename(cmd[0]) == "srun"
        for flag in ("--ntasks=4", "--cpus-per-task=1", "--kill-on-bad-exit=1",
                     f"--mpi={PMI}", "--exact"):
            assert flag in cmd, (flag, cmd)
        # ranks on another node: TCP with CURVE, never the private ipc socket
        assert cmd[cmd.index("--endpoint") + 1].startswith("tcp://")
        results = exe.submit(ranks_and_nodes).result(timeout=60)
    assert [r[0] for r in results] == [0, 1, 2, 3]
    assert all(r[1] == 6 for r in results)
    assert {r[2] for r in results} == {"n1", "n2"}


def test_pool_executor_max_workers4_on_two_nodes(two_nodes):
    with PoolExecutor(max_workers=4) as exe:
        assert exe.backend == "srun"
        out = list(exe.map(where, range(8)))
    assert [o[0] for o in out] == [x * x for x in range(8)]
    assert {o[1] for o in out} == {"n1", "n2"}
    assert {o[2] for o in out} == {"0", "1", "2", "3"}  # every worker got work


def test_spawn_pool_max_ranks4_on_two_nodes(two_nodes):
    with MPISpawnPool(max_ranks=4, ranks_per_task=2) as pool:
        assert pool.backend == "srun"
        out = pool.map(group_nodes, range(6))
    assert [o[0] for o in out] == [x + 1 for x in range(6)]
    assert all(len(o[1]) == 2 for o in out)
    assert set().union(*(o[1] for o in out)) == {"n1", "n2"}


def env_of(names):
    return {n: os.environ.get(n) for n in names}


def test_threads_per_core_and_launcher_args(two_nodes):
    with PoolExecutor(
        max_workers=2, threads_per_core=2, launcher_args=["--job-name=pmp-step"]
    ) as exe:
        assert "--cpus-per-task=2" in exe.command
        assert exe.command.index("--job-name=pmp-step") < exe.command.index("--endpoint")
        out = [exe.submit(env_of, ["OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"]).result()
               for _ in range(2)]
    assert out[0] == {"OMP_NUM_THREADS": "2", "SLURM_CPUS_PER_TASK": "2"}


def test_cwd_is_passed_to_srun(two_nodes, tmp_path):
    with Executor(cores=1, cwd=str(tmp_path)) as exe:
        assert exe.command[exe.command.index("--chdir") + 1] == str(tmp_path)
        assert exe.submit(os.getcwd).result() == str(tmp_path)


# ---- how a step ends under an executor ------------------------------------


def die_on_rank_2():
    """Rank 2 dies at its first call; the others sleep."""
    if os.environ["SLURM_PROCID"] == "2":
        os._exit(3)
    time.sleep(30)


def test_dead_rank_breaks_the_executor(two_nodes):
    with PoolExecutor(max_workers=4) as exe:
        exe.submit(abs, -1).result(timeout=60)  # the step runs
        t0 = time.monotonic()
        # eight calls reach every worker, whichever order they go in
        futures = [exe.submit(die_on_rank_2) for _ in range(8)]
        with pytest.raises(ExecutorBroken) as info:
            futures[0].result(timeout=30)
        for f in futures:
            with pytest.raises(ExecutorBroken):
                f.result(timeout=30)
        elapsed = time.monotonic() - t0
    text = str(info.value)
    assert "srun" in text and two_nodes in text, text
    assert "n1" in text or "n2" in text, text
    # the summary: which task died where, and how
    assert text.startswith(f"SLURM job {two_nodes}"), text
    assert re.search(r"; tasks? [0-9,-]+ on n[12]: Exited with exit code 3", text), text
    assert elapsed < 15, elapsed


def test_scancel_of_the_step_breaks_the_executor(two_nodes):
    with PoolExecutor(max_workers=4) as exe:
        exe.submit(abs, -1).result(timeout=60)  # the step runs
        running = steps(two_nodes)
        assert len(running) == 1, running
        slow = exe.submit(time.sleep, 60)
        t0 = time.monotonic()
        subprocess.run(["scancel", running[0]], check=True)
        with pytest.raises(ExecutorBroken) as info:
            slow.result(timeout=30)
        elapsed = time.monotonic() - t0
    text = str(info.value)
    assert "CANCELLED" in text and running[0] in text, text
    assert text.startswith(f"SLURM job {two_nodes}, step {running[0]}: CANCELLED on n"), text
    assert elapsed < 15, elapsed


def test_end_of_the_allocation_breaks_the_executor():
    with allocation(nodes=2, ntasks_per_node=1) as job:
        exe = PoolExecutor(max_workers=2)
        try:
            exe.submit(abs, -1).result(timeout=60)
            slow = exe.submit(time.sleep, 60)
            t0 = time.monotonic()
            subprocess.run(["scancel", job], check=True)
            with pytest.raises(ExecutorBroken) as info:
                slow.result(timeout=30)
            elapsed = time.monotonic() - t0
            with pytest.raises(ExecutorBroken):
                exe.submit(abs, -2)
        finally:
            exe.shutdown(wait=True)
    text = str(info.value)
    assert job in text, text
    assert text.startswith(f"SLURM job {job}"), text
    assert elapsed < 15, elapsed


@pytest.mark.parametrize("backend", ["auto", "mpiexec"])
def test_salloc_runs_a_script_on_both_nodes(tmp_path, backend):
    """The way users run it: a script started by salloc itself, with every
    variable salloc sets.  "auto" is srun there; backend="mpiexec" is still
    there for who wants it: both MPIs' mpiexec find the allocation
    themselves (hydra and Open MPI start their daemons with srun).  Either
    way the ranks run on both nodes and the frontend listens on TCP."""
    script = tmp_path / "job.py"
    script.write_text(
        "import os, sys\n"
        "from pympipool import Executor\n"
        "def node(comm):\n"
        "    return os.environ['SLURMD_NODENAME'], comm.allreduce(1)\n"
        "if __name__ == '__main__':\n"
        "    with Executor(cores=4, backend=sys.argv[1]) as exe:\n"
        "        endpoint = exe.command[exe.command.index('--endpoint') + 1]\n"
        "        out = exe.submit(node).result()\n"
        "        print(exe.backend, endpoint.split(':')[0], sorted(set(out)))\n"
    )
    r = subprocess.run(
        ["salloc", "--partition=two", "--nodes=2", "--ntasks-per-node=2", "--immediate=60",
         sys.executable, str(script), backend],
        capture_output=True, text=True, timeout=100,
    )
    assert r.returncode == 0, r.stderr
    expected = "srun" if backend == "auto" else "mpiexec"
    assert r.stdout.strip().splitlines()[-1] == (
        f"{expected} tcp [('n1', 4), ('n2', 4)]"
    ), r.stdout + r.stderr
