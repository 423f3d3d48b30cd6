"""Time limits: SLURM ending a job under an executor breaks it, naming
the job and the state, for both ways of running on SLURM at once:

* ``queue_adapter="slurm"``: a batch job submitted with ``time=1`` hits
  its limit; the futures fail with ``ExecutorBroken`` naming the job, the
  state TIMEOUT and the tail of the job's output.
* ``backend="srun"``: the allocation the caller runs in (``salloc
  --time=1``, two nodes) reaches its limit under a running step; the
  futures fail naming the job, the step, the node and the state.

SLURM counts time limits in whole minutes and looks at them every 30 s,
so a limit strikes 60 to 90 s after the job starts, nearly all of it idle.
The batch job (one task on ``n1``) and the allocation (one task on each
node) fit on the cluster together (four CPUs a node), so both limits run
out in the same minute and a half.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from conftest import allocation

from pympipool import ExecutorBroken, PoolExecutor

#: seconds from a job's last call to ExecutorBroken, at most
LIMIT_SECONDS = 100


def node_of(_):
    time.sleep(0.3)
    return os.environ["SLURMD_NODENAME"]


def broken_after(future, t0: float, timeout: float):
    """The ExecutorBroken that ends future, and the seconds since t0."""
    with pytest.raises(ExecutorBroken) as info:
        future.result(timeout=timeout)
    return str(info.value), time.monotonic() - t0


def test_time_limits_of_a_batch_job_and_of_an_allocation(monkeypatch):
    signal.alarm(60 + 2 * LIMIT_SECONDS)  # the per-test deadline, for both waits
    for name in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_JOB_NUM_NODES"):
        monkeypatch.delenv(name, raising=False)
    batch = PoolExecutor(max_workers=1, queue_adapter="slurm", queue_adapter_kwargs={"time": "1"})
    try:
        assert batch.submit(abs, -1).result(timeout=60) == 1
        t_batch = time.monotonic()
        batch_slow = batch.submit(time.sleep, 300)
        with allocation(nodes=2, ntasks_per_node=1, extra=("--time=1",)) as job:
            with PoolExecutor(max_workers=2) as exe:
                assert exe.backend == "srun"
                assert set(exe.map(node_of, range(4))) == {"n1", "n2"}
                t_step = time.monotonic()
                slow = exe.submit(time.sleep, 300)
                step_text, step_elapsed = broken_after(slow, t_step, LIMIT_SECONDS + 10)
        # the batch job started first, so its limit has struck or is close
        batch_text, batch_elapsed = broken_after(batch_slow, t_batch, LIMIT_SECONDS + 10)
    finally:
        batch.shutdown()
    print(f"srun step: ExecutorBroken {step_elapsed:.1f} s after its last call began:\n"
          f"{step_text}\nbatch job: {batch_elapsed:.1f} s:\n{batch_text}")

    # the step: the summary the frontend leads with (job, step, node, state)
    assert re.match(rf"SLURM job {job}(, step {job}\.\d+)?: CANCELLED on n[12] due to "
                    rf"TIME LIMIT", step_text), step_text
    assert step_elapsed < LIMIT_SECONDS, step_elapsed
    # the batch job: its id, its state, and the tail of its output
    assert f"SLURM job {batch.job_id}" in batch_text and "TIMEOUT" in batch_text, batch_text
    assert "TIME LIMIT" in batch_text, batch_text
    assert batch_elapsed < LIMIT_SECONDS, batch_elapsed
