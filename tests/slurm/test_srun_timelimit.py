"""backend="srun": an allocation that reaches its time limit (``salloc
--time=1``) under a running step breaks the executor, naming the job, the
step, the node and the state.  SLURM counts time limits in whole minutes
and looks at them every 30 s, so this takes 60 to 95 s: a test of its own,
in the MPICH build only, like slurm.batch_timelimit (the step's end is
SLURM's; the MPI-dependent path of a step that SLURM ends under the
executor, srun exiting, is slurm.srun's scancel tests, in both builds).
"""

from __future__ import annotations

import os
import re
import time

import pytest

from conftest import allocation

from pympipool import ExecutorBroken, PoolExecutor


def node_of(_):
    time.sleep(0.3)
    return os.environ["SLURMD_NODENAME"]


def test_time_limit_of_the_allocation_breaks_the_executor():
    with allocation(nodes=2, ntasks_per_node=1, extra=("--time=1",)) as job:
        with PoolExecutor(max_workers=2) as exe:
            assert exe.backend == "srun"
            assert set(exe.map(node_of, range(4))) == {"n1", "n2"}
            t0 = time.monotonic()
            slow = exe.submit(time.sleep, 300)
            with pytest.raises(ExecutorBroken) as info:
                slow.result(timeout=110)
            elapsed = time.monotonic() - t0
    text = str(info.value)
    print(f"ExecutorBroken {elapsed:.1f} s after the last call began:\n{text}")
    # the summary the frontend leads with: job, step, node, state
    assert re.match(rf"SLURM job {job}(, step {job}\.\d+)?: CANCELLED on n[12] due to "
                    rf"TIME LIMIT", text), text
    assert elapsed < 100, elapsed
