"""A node that fails under a running step: its slurmd is killed (SIGKILL)
while an ``Executor`` or ``PoolExecutor`` has ranks on both nodes of a
``salloc -N 2`` allocation (backend srun).

SLURM sees a node fail when its slurmd stops answering: slurmctld marks it
DOWN (the test cluster's ``SlurmdTimeout`` makes that about 12 s instead
of minutes, tests/slurm/slurm_cluster.py), kills the job (state
``NODE_FAIL``) and tells srun, which prints ``Node failure on n2`` and the
step's cancellation and exits.  The executor sees its launcher exit: every
future fails with ``ExecutorBroken`` whose text opens with what SLURM
said, in one sentence (frontend/pmp_slurmtext.h): ``SLURM job 12, step
12.0: CANCELLED on n1 due to NODE FAILURE; node n2 failed``, and nothing
hangs.  The ranks on the "failed" node are still
running, as on a node that is only cut off; the node's slurmd, started
again afterwards (``restart_node``), ends them, and the node returns to
service so that the tests after this one have both nodes.  Each test makes
an allocation of its own, since the node failure ends it.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

import slurm_cluster as cluster
from conftest import allocation, job_state, wait_until

from pympipool import Executor, ExecutorBroken, PoolExecutor

#: from the kill to the futures' failure: SLURM's detection (about 12 s
#: with the test cluster's settings) and srun's exit, with room for a busy
#: machine
FAIL_WITHIN = 40.0


def node_of(_):
    time.sleep(0.3)  # long enough that every worker gets a call
    return os.environ["SLURMD_NODENAME"]


def node_of_rank(comm):
    return comm.allgather(os.environ["SLURMD_NODENAME"])


@pytest.fixture
def n2_restored(slurm_cluster):
    """The cluster's directory; node n2 is idle again after the test,
    whatever the test did to it."""
    yield slurm_cluster
    cluster.restart_node(slurm_cluster, "n2")


@pytest.mark.parametrize("kind", ["Executor", "PoolExecutor"])
def test_node_failure_breaks_the_executor(kind, n2_restored):
    d = n2_restored
    with allocation(nodes=2, ntasks_per_node=2) as job:
        if kind == "Executor":
            exe = Executor(cores=4)
        else:
            exe = PoolExecutor(max_workers=4)
        try:
            assert exe.backend == "srun"
            if kind == "Executor":
                assert set(exe.submit(node_of_rank).result(timeout=60)[0]) == {"n1", "n2"}
            else:
                assert set(exe.map(node_of, range(8))) == {"n1", "n2"}
            running = [exe.submit(time.sleep, 120) for _ in range(4)]
            t0 = time.monotonic()
            os.kill(cluster.slurmd_pid(d, "n2"), signal.SIGKILL)
            with pytest.raises(ExecutorBroken) as info:
                running[0].result(timeout=FAIL_WITHIN + 20)
            elapsed = time.monotonic() - t0
            for f in running:
                with pytest.raises(ExecutorBroken):
                    f.result(timeout=5)
            with pytest.raises(ExecutorBroken):
                exe.submit(abs, -1)
        finally:
            t1 = time.monotonic()
            exe.shutdown(wait=True)
            shutdown = time.monotonic() - t1
        text = str(info.value)
        print(f"{kind}: ExecutorBroken {elapsed:.1f} s after the kill, "
              f"shutdown {shutdown:.2f} s:\n{text}")
        # the summary the frontend leads with: job, step, node, state
        assert re.match(rf"SLURM job {job}, step {job}\.\d+: CANCELLED on n[12] due to "
                        rf"NODE FAILURE; node n2 failed", text), text
        assert elapsed < FAIL_WITHIN, elapsed
        assert shutdown < 10, shutdown
        # SLURM agrees: the job ended for the node
        wait_until(lambda: job_state(job) in ("NODE_FAIL", ""), 30, f"job {job} NODE_FAIL")
