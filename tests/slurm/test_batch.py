"""queue_adapter="slurm": the runtime submitted as a batch job with sbatch
from a process that has no allocation, on one or both emulated nodes, and
every way the job can end under its executor: shutdown, garbage
collection, a job that fails at start, one that is cancelled.  (A job that
hits its time limit: test_timelimits.py.)
"""

from __future__ import annotations

import gc
import os
import subprocess
import time

import pytest

from conftest import job_state, wait_until

from pympipool import Executor, ExecutorBroken, MPISpawnPool, PoolExecutor


def where(x):
    time.sleep(0.3)
    return x * x, os.environ["SLURMD_NODENAME"]


def group_nodes(x, comm):
    time.sleep(0.3)
    return x + 1, comm.allgather(os.environ["SLURMD_NODENAME"])


def node(comm):
    return os.environ["SLURMD_NODENAME"], comm.allreduce(1)


@pytest.fixture(autouse=True)
def no_allocation(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_JOB_NUM_NODES"):
        monkeypatch.delenv(name, raising=False)


TWO_NODES = {"partition": "two", "nodes": 2, "time": "5", "job_name": "pmp-batch"}


def check_gone(job):
    wait_until(lambda: job_state(job) in ("", "COMPLETED", "CANCELLED"), 15,
               f"job {job} gone from the queue")


def test_pool_executor_as_a_batch_job_on_two_nodes(tmp_path):
    exe = PoolExecutor(max_workers=4, cwd=str(tmp_path), queue_adapter="slurm",
                       queue_adapter_kwargs=TWO_NODES)
    try:
        job = exe.job_id
        assert job and job.isdigit()
        assert exe.backend == "srun"
        endpoint = exe.command[exe.command.index("--endpoint") + 1]
        assert endpoint.startswith("tcp://")  # never unauthenticated: CURVE
        # the job's directory: script, output, credentials, nothing readable by others
        (jobdir,) = [p for p in tmp_path.iterdir() if p.name.startswith(".pympipool-slurm-")]
        assert oct(jobdir.stat().st_mode & 0o777) == "0o700"
        script = (jobdir / "job.sh").read_text()
        for line in ("#SBATCH --ntasks=4", "#SBATCH --partition=two", "#SBATCH --nodes=2",
                     "#SBATCH --time=5", "#SBATCH --job-name=pmp-batch"):
            assert line in script.splitlines(), script
        out = list(exe.map(where, range(8)))
        assert job_state(job) == "RUNNING"
    finally:
        exe.shutdown()
    assert [o[0] for o in out] == [x * x for x in range(8)]
    assert {o[1] for o in out} == {"n1", "n2"}
    check_gone(job)
    assert not jobdir.exists()


def test_executor_and_spawn_pool_as_batch_jobs():
    with Executor(cores=4, queue_adapter="slurm", queue_adapter_kwargs=TWO_NODES) as exe:
        assert sorted(set(exe.submit(node).result(timeout=60))) == [("n1", 4), ("n2", 4)]
        job = exe.job_id
    check_gone(job)
    with MPISpawnPool(max_ranks=4, ranks_per_task=2, queue_adapter="slurm",
                      queue_adapter_kwargs=TWO_NODES) as pool:
        out = pool.map(group_nodes, range(6))
        job = pool.job_id
    assert [o[0] for o in out] == [x + 1 for x in range(6)]
    assert set().union(*(o[1] for o in out)) == {"n1", "n2"}
    check_gone(job)


def test_job_that_fails_at_start():
    t0 = time.monotonic()
    exe = PoolExecutor(max_workers=2, queue_adapter="slurm",
                       launcher_args=["--no-such-option"])
    try:
        future = exe.submit(abs, -1)  # waits for the job
        with pytest.raises(ExecutorBroken) as info:
            future.result(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        exe.shutdown()
    text = str(info.value)
    assert f"SLURM job {exe.job_id}" in text and "FAILED" in text, text
    assert "--no-such-option" in text, text  # the tail of the job's output
    assert elapsed < 10, elapsed


def test_cancelled_job():
    exe = PoolExecutor(max_workers=2, queue_adapter="slurm")
    try:
        exe.submit(abs, -1).result(timeout=60)
        slow = exe.submit(time.sleep, 60)
        t0 = time.monotonic()
        subprocess.run(["scancel", exe.job_id], check=True)
        with pytest.raises(ExecutorBroken) as info:
            slow.result(timeout=30)
        elapsed = time.monotonic() - t0
        with pytest.raises(ExecutorBroken):
            exe.submit(abs, -1)
    finally:
        exe.shutdown()
    text = str(info.value)
    assert f"SLURM job {exe.job_id}" in text and "CANCELLED" in text, text
    assert elapsed < 10, elapsed


PENDING = {"extra": ["--begin=now+1hour"]}  # stays pending


def test_pending_job_waits_and_is_cancelled_at_shutdown():
    exe = PoolExecutor(max_workers=2, queue_adapter="slurm", queue_adapter_kwargs=PENDING)
    job = exe.job_id
    future = exe.submit(abs, -1)
    time.sleep(1.0)
    assert job_state(job) == "PENDING"
    assert not future.done()  # waits while the job is pending
    t0 = time.monotonic()
    exe.shutdown(cancel_futures=True)
    assert future.cancelled()
    assert time.monotonic() - t0 < 10
    check_gone(job)


def test_garbage_collection_cancels_the_job():
    exe = PoolExecutor(max_workers=2, queue_adapter="slurm", queue_adapter_kwargs=PENDING)
    job = exe.job_id
    assert job_state(job) == "PENDING"
    del exe
    gc.collect()
    check_gone(job)


def test_bad_queue_adapter_arguments(tmp_path):
    with pytest.raises(ValueError, match="queue_adapter 'pbs' is not built in"):
        PoolExecutor(queue_adapter="pbs")
    with pytest.raises(TypeError, match="does not take queue"):
        PoolExecutor(queue_adapter="slurm", queue_adapter_kwargs={"queue": "debug"})
    with pytest.raises(ValueError, match="nodes"):
        PoolExecutor(queue_adapter="slurm", queue_adapter_kwargs={"nodes": 0})
    with pytest.raises(ValueError, match="not one #SBATCH line"):
        PoolExecutor(queue_adapter="slurm", queue_adapter_kwargs={"extra": ["a\nb"]})
    with pytest.raises(RuntimeError, match="sbatch refused the job"):
        PoolExecutor(cwd=str(tmp_path), queue_adapter="slurm",
                     queue_adapter_kwargs={"partition": "nosuchpartition"})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pympipool-slurm-")]
