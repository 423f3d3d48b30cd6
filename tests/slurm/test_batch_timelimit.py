"""queue_adapter="slurm": a batch job that hits its time limit breaks its
executor with the state TIMEOUT.  SLURM counts time limits in whole
minutes and looks at them every 30 s, so this takes 60 to 95 s: a test of
its own, which CTest runs beside the others, in the MPICH build only (the
job's state does not depend on the MPI)."""

from __future__ import annotations

import time

import pytest

from pympipool import ExecutorBroken, PoolExecutor


@pytest.fixture(autouse=True)
def no_allocation(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_JOB_NUM_NODES"):
        monkeypatch.delenv(name, raising=False)


def test_time_limit_breaks_the_executor():
    exe = PoolExecutor(max_workers=1, queue_adapter="slurm", queue_adapter_kwargs={"time": "1"})
    try:
        exe.submit(abs, -1).result(timeout=60)
        t0 = time.monotonic()
        slow = exe.submit(time.sleep, 300)
        with pytest.raises(ExecutorBroken) as info:
            slow.result(timeout=110)
        elapsed = time.monotonic() - t0
    finally:
        exe.shutdown()
    text = str(info.value)
    assert f"SLURM job {exe.job_id}" in text and "TIMEOUT" in text, text
    assert "TIME LIMIT" in text, text  # the tail of the job's output
    assert elapsed < 100, elapsed
