"""Fixtures of the SLURM tests: the throwaway cluster, allocations in it,
and the checks every Python test of pympipool has.

* The cluster (``slurm_cluster.py``) is started once per test session.
  Under CTest the fixture tests ``slurm.start`` / ``slurm.stop`` do it once
  for every SLURM test of the build tree and pass its directory in
  ``PMP_SLURM_DIR``; a plain ``pytest tests/slurm`` starts its own and
  stops it at the end of the session.  Either way ``SLURM_CONF`` points at
  it for this process and everything it starts.
* ``allocation(nodes, ...)``: a SLURM allocation made with
  ``salloc --no-shell``, entered the way ``salloc`` enters its shell (its
  job id and node count in this process's environment), cancelled at the
  end of the test and waited for until it is gone.
* The per-test deadline and the check that no process is left behind are
  those of every Python suite (``tests/support/pmp_fixtures.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, List

import pytest

from pmp_fixtures import deadline, no_leftover_processes  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))


CLUSTER = os.path.join(HERE, "slurm_cluster.py")
#: how long an allocation of the idle test cluster may take to be granted
GRANT_TIMEOUT = 60


@pytest.fixture(scope="session", autouse=True)
def slurm_cluster() -> Iterator[str]:
    """The cluster's directory; SLURM_CONF set for the whole session."""
    given = os.environ.get("PMP_SLURM_DIR")
    if given:
        os.environ["SLURM_CONF"] = os.path.join(given, "slurm.conf")
        yield given
        return
    d = tempfile.mkdtemp(prefix="pmp-slurm-")
    subprocess.run([sys.executable, CLUSTER, "start", d], check=True)
    os.environ["SLURM_CONF"] = os.path.join(d, "slurm.conf")
    try:
        yield d
    finally:
        subprocess.run([sys.executable, CLUSTER, "stop", d], check=True)


def slurm(*args: str) -> str:
    """A SLURM client command's stdout; raises with its stderr on failure."""
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def job_state(job: str) -> str:
    """The state of a job as squeue shows it, or "" once it is gone."""
    return slurm("squeue", "-h", "-j", job, "-o", "%T").strip() if job else ""


def steps(job: str) -> List[str]:
    """The ids (job.step) of a job's running steps."""
    out = slurm("squeue", "-h", "-s", "-j", job, "-o", "%i")
    return [s for s in out.split() if re.fullmatch(rf"{job}\.\d+", s)]


def wait_until(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def allocation(nodes: int, ntasks_per_node: int = 2, extra: tuple = ()) -> Iterator[str]:
    """Holds an allocation of ``nodes`` nodes and enters it; yields its id."""
    partition = "one" if nodes == 1 else "two"
    r = subprocess.run(
        ["salloc", "--no-shell", f"--partition={partition}", f"--nodes={nodes}",
         f"--ntasks-per-node={ntasks_per_node}", f"--immediate={GRANT_TIMEOUT}",
         "--job-name=pmptest", *extra],
        capture_output=True, text=True, timeout=GRANT_TIMEOUT + 10,
    )
    m = re.search(r"Granted job allocation (\d+)", r.stderr)
    assert m, f"salloc failed: {r.stderr}"
    job = m.group(1)
    saved: Dict[str, str | None] = {
        k: os.environ.get(k) for k in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_JOB_NUM_NODES")
    }
    os.environ.update(
        SLURM_JOB_ID=job, SLURM_JOBID=job, SLURM_JOB_NUM_NODES=str(nodes)
    )
    try:
        yield job
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        subprocess.run(["scancel", job], capture_output=True, timeout=60)
        wait_until(lambda: job_state(job) in ("", "COMPLETED", "CANCELLED"), 30,
                   f"job {job} gone after scancel")
