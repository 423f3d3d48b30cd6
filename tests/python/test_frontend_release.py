"""Argument buffers are released promptly: a large array passed without
copying is referenced by the frontend only until its task is done, so once
``result()`` has returned nothing of pympipool's keeps it alive (the
frontend releases a task's buffers before it queues the completion, and the
binding lets them go before it hands the completion to Python).  With
``restart_limit`` the frontend keeps a task's frames until the completion,
so that it could send them again: that path too."""

import gc
import weakref

import pytest

np = pytest.importorskip("numpy")

from pympipool import Executor, PoolExecutor


def total(a):
    import time

    time.sleep(0.2)  # so that the caller has dropped its reference by then
    return float(a.sum())


@pytest.mark.parametrize(
    "make",
    [
        lambda: Executor(cores=1),
        lambda: Executor(cores=1, restart_limit=1),
        lambda: PoolExecutor(max_workers=2, run_time_max=60),
    ],
    ids=["Executor", "Executor-restart_limit", "PoolExecutor-run_time_max"],
)
def test_argument_is_released_when_the_result_is_there(make):
    with make() as exe:
        for round in range(5):
            a = np.ones(200_000)  # 1.6 MB: passed without copying
            alive = weakref.ref(a)
            seen = []
            future = exe.submit(total, a)
            del a
            # Checked where the future completes (the dispatcher thread, before
            # it waits again) and where the caller gets the result.
            future.add_done_callback(lambda f: seen.append(alive() is None))
            assert future.result(timeout=60) == 200_000.0
            assert alive() is None, f"round {round}: the argument is still referenced"
            assert seen == [True], f"round {round}: referenced when the future completed"
        gc.collect()
