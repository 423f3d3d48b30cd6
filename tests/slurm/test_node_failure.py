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
service so that the tests after this one have both nodes.  Each executor
has an allocation of its own, since the node failure ends it; the two run
side by side, so that one node failure is waited for, not two.
"""

from __future__ import annotations

import contextlib
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


KINDS = ("Executor", "PoolExecutor")


def test_node_failure_breaks_the_executor(n2_restored):
    """Both kinds at once, each in an allocation of its own (two tasks on
    each node apiece: together they fill the two nodes), so that one kill
    of n2's slurmd and one wait for SLURM to notice serve both."""
    d = n2_restored
    with contextlib.ExitStack() as stack:
        jobs, executors = {}, {}
        for kind in KINDS:
            # the executor takes its allocation from the environment when
            # it starts, inside allocation()
            jobs[kind] = stack.enter_context(allocation(nodes=2, ntasks_per_node=2))
            executors[kind] = Executor(cores=4) if kind == "Executor" else PoolExecutor(
                max_workers=4
            )
            stack.callback(executors[kind].shutdown, wait=True)
        for kind, exe in executors.items():
            assert exe.backend == "srun", kind
            if kind == "Executor":
                assert set(exe.submit(node_of_rank).result(timeout=60)[0]) == {"n1", "n2"}
            else:
                assert set(exe.map(node_of, range(8))) == {"n1", "n2"}
        running = {
            kind: [exe.submit(time.sleep, 120) for _ in range(4)]
            for kind, exe in executors.items()
        }
        t0 = time.monotonic()
        os.kill(cluster.slurmd_pid(d, "n2"), signal.SIGKILL)
        texts, elapsed = {}, {}
        for kind, exe in executors.items():
            with pytest.raises(ExecutorBroken) as info:
                running[kind][0].result(timeout=FAIL_WITHIN + 20)
            elapsed[kind] = time.monotonic() - t0
            texts[kind] = str(info.value)
            for f in running[kind]:
                with pytest.raises(ExecutorBroken):
                    f.result(timeout=5)
            with pytest.raises(ExecutorBroken):
                exe.submit(abs, -1)
        for kind, exe in executors.items():
            t1 = time.monotonic()
            exe.shutdown(wait=True)
            shutdown = time.monotonic() - t1
            job, text = jobs[kind], texts[kind]
            print(f"{kind}: ExecutorBroken {elapsed[kind]:.1f} s after the kill, "
                  f"shutdown {shutdown:.2f} s:\n{text}")
            # the summary the frontend leads with: job, step, node, state
            assert re.match(rf"SLURM job {job}, step {job}\.\d+: CANCELLED on n[12] due to "
                            rf"NODE FAILURE; node n2 failed", text), text
            assert elapsed[kind] < FAIL_WITHIN, (kind, elapsed[kind])
            assert shutdown < 10, (kind, shutdown)
            # SLURM agrees: the job ended for the node
            wait_until(lambda: job_state(job) in ("NODE_FAIL", ""), 30, f"job {job} NODE_FAIL")
