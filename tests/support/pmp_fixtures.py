"""The two fixtures every Python test suite of pympipool uses (autouse in
its conftest.py, which imports them from here): a deadline per test, and
the check that a test leaves no process behind.

* ``deadline``: a test has ``PMP_TEST_TIMEOUT`` seconds (default 120);
  SIGALRM raises in the main thread, so a hang fails the test instead of
  blocking the run (pytest-timeout is not installed).
* ``no_leftover_processes``: after the test, no process that the test
  started may remain: neither a descendant of this process nor any process
  started with ``--frontend-pid <our pid>`` (``pmp_procs.our_processes``).
  The check waits a little, because executors shut down with
  ``wait=False`` or garbage-collected ones leave asynchronously.
"""

from __future__ import annotations

import os
import signal
from typing import Dict

import pytest

from pmp_procs import our_processes, wait_until

TEST_TIMEOUT = int(os.environ.get("PMP_TEST_TIMEOUT", "120"))
LEFTOVER_WAIT = 20.0

class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def deadline():
    """Fails a test that runs longer than TEST_TIMEOUT seconds."""

    def on_alarm(signum, frame):
        raise DeadlineExceeded(f"test exceeded {TEST_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def no_leftover_processes(deadline):
    """Fails a test that leaves an MPI job or any other child process behind."""
    before = set(our_processes())
    yield
    left: Dict[int, str] = {}

    def none_left() -> bool:
        nonlocal left
        left = {p: c for p, c in our_processes().items() if p not in before}
        return not left

    if not wait_until(none_left, LEFTOVER_WAIT, 0.1):
        pytest.fail(f"processes left behind: {left}")
