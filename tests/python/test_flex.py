"""FlexExecutor: each call on the ``cores`` ranks it asks for, taken from one
live job of ``max_cores`` ranks (pylib/pympipool/_flex.py).

Overlap and order are proven with files, never with timing: a call that
must run at the same time as another waits for the other's marker file and
returns whether it appeared.
"""

import os
import time
from concurrent.futures import CancelledError

import pytest

from pympipool import Executor, ExecutorBroken, FlexExecutor, PoolExecutor, get_cache_data

#: how long a call waits for a marker file before it gives up (and the
#: test fails): far beyond what a loaded machine needs
WAIT_S = 60.0


def wait_for(path, timeout=WAIT_S):
    """Whether path appears within timeout (polled: the ranks are other
    processes)."""
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def touch(path):
    with open(path, "a"):
        pass


def add(a, b):
    return a + b


def where(comm):
    return (comm.Get_rank(), comm.Get_size(), os.getpid())


def total(comm):
    return comm.allreduce(comm.Get_rank() + 1)


def meet(mine, other, comm=None):
    """Leaves mine, waits for other: both calls ran at the same time."""
    touch(mine)
    return wait_for(other)


def hold(started, gate, value=None, comm=None):
    """Says it started, then runs until gate appears."""
    touch(started)
    wait_for(gate)
    return value


def mark(path, value=None):
    touch(path)
    return value


def environment(comm):
    return (os.getcwd(), os.environ.get("OMP_NUM_THREADS"))


def fail_on_rank1(comm):
    if comm.Get_rank() == 1:
        raise ValueError("rank 1 failed on purpose")
    return comm.Get_rank()


def crash_rank1(comm):
    if comm.Get_rank() == 1:
        os._exit(7)
    comm.barrier()  # never completes: the job ends under it
    return comm.Get_rank()


def init_rank(directory):
    def init():
        touch(os.path.join(directory, f"init-{os.getpid()}"))
        return {"base": 100}

    return init


def with_base(x, base, comm=None):
    return x + base


def counted(directory, x):
    touch(os.path.join(directory, f"run-{time.monotonic_ns()}-{os.getpid()}"))
    return x * 2


def runs(directory):
    return len([n for n in os.listdir(directory) if n.startswith("run-")])


# ---- results -----------------------------------------------------------------


def test_one_core_gives_the_value():
    with FlexExecutor(max_cores=2) as exe:
        assert exe.max_cores == 2
        assert exe.submit(add, 1, 2).result(timeout=60) == 3
        assert exe.submit(add, 1, b=3, resource_dict={"cores": 1}).result(timeout=60) == 4
        rank, size, _ = exe.submit(where).result(timeout=60)
        assert (rank, size) == (0, 1)


@pytest.mark.parametrize("cores", [2, 3])
def test_several_cores_give_every_rank_its_value(cores):
    with FlexExecutor(max_cores=3, oversubscribe=True) as exe:
        values = exe.submit(where, resource_dict={"cores": cores}).result(timeout=60)
        assert [v[:2] for v in values] == [(r, cores) for r in range(cores)]
        assert len({v[2] for v in values}) == cores  # distinct processes
        expected = cores * (cores + 1) // 2
        assert exe.submit(total, resource_dict={"cores": cores}).result(timeout=60) == [
            expected
        ] * cores


def test_two_calls_run_at_the_same_time(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with FlexExecutor(max_cores=3, oversubscribe=True) as exe:
        two = exe.submit(meet, a, b, resource_dict={"cores": 2})
        one = exe.submit(meet, b, a, resource_dict={"cores": 1})
        assert two.result(timeout=90) == [True, True]
        assert one.result(timeout=90) is True


def test_map_takes_a_resource_dict():
    with FlexExecutor(max_cores=2) as exe:
        values = list(exe.map(add, [1, 2, 3], [10, 20, 30], resource_dict={"cores": 2}))
        assert values == [[11, 11], [22, 22], [33, 33]]
        assert list(exe.map(add, [1, 2], [1, 1])) == [2, 3]


# ---- arguments ---------------------------------------------------------------


def test_resource_dict_is_checked():
    with FlexExecutor(max_cores=2) as exe:
        with pytest.raises(ValueError, match=r"max_cores=2.*1 to 2"):
            exe.submit(add, 1, 2, resource_dict={"cores": 3})
        with pytest.raises(ValueError, match="max_cores"):
            exe.submit(add, 1, 2, resource_dict={"cores": 0})
        with pytest.raises(TypeError, match="cores'] must be an int"):
            exe.submit(add, 1, 2, resource_dict={"cores": "2"})
        with pytest.raises(ValueError, match="unknown key.*'gpus'"):
            exe.submit(add, 1, 2, resource_dict={"gpus": 1})
        with pytest.raises(ValueError, match="threads_per_core"):
            exe.submit(add, 1, 2, resource_dict={"threads_per_core": 0})
        with pytest.raises(FileNotFoundError, match="resource_dict\\['cwd'\\]"):
            exe.submit(add, 1, 2, resource_dict={"cwd": "/no/such/directory"})
        with pytest.raises(ValueError, match="max_cores"):  # also in a map
            exe.map(add, [1], [2], resource_dict={"cores": 5})
        assert exe.submit(add, 1, 2).result(timeout=60) == 3  # still working
    with pytest.raises(ValueError, match="max_cores must be greater than 0"):
        FlexExecutor(max_cores=0)
    with pytest.raises(ValueError, match="backfill_limit"):
        FlexExecutor(max_cores=1, backfill_limit=-1)


def test_other_executors_refuse_cores():
    with PoolExecutor(max_workers=1) as exe:
        with pytest.raises(ValueError, match="'cores'.*need a FlexExecutor"):
            exe.submit(add, 1, 2, resource_dict={"cores": 1})
    with Executor(cores=1) as exe:
        with pytest.raises(ValueError, match="need a FlexExecutor"):
            exe.submit(add, 1, 2, resource_dict={"cwd": "/"})


def test_cwd_and_threads_hold_for_the_call_only(tmp_path):
    with FlexExecutor(max_cores=2) as exe:
        before = exe.submit(environment, resource_dict={"cores": 2}).result(timeout=60)
        during = exe.submit(
            environment, resource_dict={"cores": 2, "cwd": tmp_path, "threads_per_core": 3}
        ).result(timeout=60)
        after = exe.submit(environment, resource_dict={"cores": 2}).result(timeout=60)
        assert during == [(str(tmp_path), "3")] * 2
        assert after == before
        assert all(cwd != str(tmp_path) for cwd, _ in before)


def test_init_function_runs_once_on_every_rank(tmp_path):
    with FlexExecutor(
        max_cores=3, oversubscribe=True, init_function=init_rank(str(tmp_path))
    ) as exe:
        assert exe.submit(with_base, 1, resource_dict={"cores": 3}).result(timeout=60) == [
            101
        ] * 3
        assert exe.submit(with_base, 2).result(timeout=60) == 102
        assert exe.submit(with_base, 3, resource_dict={"cores": 2}).result(timeout=60) == [
            103
        ] * 2
    assert len([n for n in os.listdir(tmp_path) if n.startswith("init-")]) == 3


# ---- scheduling ---------------------------------------------------------------


def test_first_in_first_out_with_bounded_backfill(tmp_path):
    """max_cores=3, backfill_limit=1.  A (2 cores) runs; B (2 cores) waits
    at the head, one rank being free; C (1 core) may pass B once and runs
    on the free rank; D (1 core) may not pass B again, so it waits although
    a rank is free, and starts only with B, once A has finished."""
    p = str(tmp_path)
    with FlexExecutor(max_cores=3, backfill_limit=1, oversubscribe=True) as exe:
        a = exe.submit(hold, f"{p}/a", f"{p}/gate", "a", resource_dict={"cores": 2})
        assert wait_for(f"{p}/a")
        b = exe.submit(mark, f"{p}/b", "b", resource_dict={"cores": 2})
        c = exe.submit(mark, f"{p}/c", "c")
        assert c.result(timeout=60) == "c"  # backfilled past the waiting B
        assert not b.running() and not b.done()
        d = exe.submit(mark, f"{p}/d", "d")
        # B was passed once: the free rank is kept for it, D waits behind
        assert not d.running() and not d.done()
        assert not os.path.exists(f"{p}/d") and not os.path.exists(f"{p}/b")
        assert len(exe) == 2
        touch(f"{p}/gate")
        assert a.result(timeout=60) == ["a", "a"]
        assert b.result(timeout=60) == ["b", "b"]
        assert d.result(timeout=60) == "d"


def test_strict_order_without_backfill(tmp_path):
    p = str(tmp_path)
    with FlexExecutor(max_cores=2, backfill_limit=0) as exe:
        a = exe.submit(hold, f"{p}/a", f"{p}/gate", "a")
        assert wait_for(f"{p}/a")
        b = exe.submit(mark, f"{p}/b", "b", resource_dict={"cores": 2})
        c = exe.submit(mark, f"{p}/c", "c")
        assert not c.running() and not b.running()  # a rank is free, C waits
        touch(f"{p}/gate")
        assert [f.result(timeout=60) for f in (a, b, c)] == ["a", ["b", "b"], "c"]


def test_a_waiting_call_is_not_starved(tmp_path):
    """With the default limit (max_cores), a stream of one-core calls
    passes a waiting two-core call a bounded number of times, then it
    starts while the stream continues behind it."""
    p = str(tmp_path)
    with FlexExecutor(max_cores=2) as exe:
        a = exe.submit(hold, f"{p}/a", f"{p}/gate-a", "a")
        assert wait_for(f"{p}/a")
        big = exe.submit(mark, f"{p}/big", "big", resource_dict={"cores": 2})
        passed = [exe.submit(add, i, 0).result(timeout=60) for i in range(2)]
        assert passed == [0, 1]  # two calls backfilled on the free rank
        late = exe.submit(add, 5, 0)
        assert not late.running() and not big.running()
        touch(f"{p}/gate-a")
        assert big.result(timeout=60) == ["big", "big"]
        assert late.result(timeout=60) == 5


# ---- failures, cancel, shutdown -------------------------------------------------


def test_an_exception_on_one_rank_fails_the_call():
    with FlexExecutor(max_cores=2) as exe:
        future = exe.submit(fail_on_rank1, resource_dict={"cores": 2})
        with pytest.raises(ValueError, match="rank 1 failed on purpose"):
            future.result(timeout=60)
        assert "Rank 1 of 2" in str(future.exception().__cause__)
        assert exe.submit(total, resource_dict={"cores": 2}).result(timeout=60) == [3, 3]


def test_cancel_before_start(tmp_path):
    p = str(tmp_path)
    with FlexExecutor(max_cores=1) as exe:
        a = exe.submit(hold, f"{p}/a", f"{p}/gate", "a")
        assert wait_for(f"{p}/a")
        b = exe.submit(mark, f"{p}/b", "b")
        assert b.cancel() and b.cancelled()
        assert not a.cancel()  # running
        with pytest.raises(CancelledError):
            b.result(timeout=0)
        touch(f"{p}/gate")
        assert a.result(timeout=60) == "a"
        assert exe.submit(add, 2, 2).result(timeout=60) == 4
    assert not os.path.exists(f"{p}/b")


def test_shutdown_runs_waiting_calls(tmp_path):
    p = str(tmp_path)
    exe = FlexExecutor(max_cores=1)
    a = exe.submit(hold, f"{p}/a", f"{p}/gate", "a")
    b = exe.submit(mark, f"{p}/b", "b")
    exe.shutdown(wait=False)
    with pytest.raises(RuntimeError, match="after shutdown"):
        exe.submit(add, 1, 1)
    touch(f"{p}/gate")
    assert a.result(timeout=60) == "a" and b.result(timeout=60) == "b"
    exe.shutdown(wait=True)
    assert exe.broken  # the job is gone


def test_shutdown_cancels_waiting_calls(tmp_path):
    p = str(tmp_path)
    exe = FlexExecutor(max_cores=1)
    a = exe.submit(hold, f"{p}/a", f"{p}/gate", "a")
    assert wait_for(f"{p}/a")
    b = exe.submit(mark, f"{p}/b", "b")
    exe.shutdown(wait=False, cancel_futures=True)
    assert b.cancelled()
    touch(f"{p}/gate")
    assert a.result(timeout=60) == "a"
    exe.shutdown(wait=True)
    assert not os.path.exists(f"{p}/b")


def test_a_rank_that_dies_breaks_the_executor():
    exe = FlexExecutor(max_cores=2)
    try:
        future = exe.submit(crash_rank1, resource_dict={"cores": 2})
        with pytest.raises(ExecutorBroken):
            future.result(timeout=60)
        with pytest.raises(ExecutorBroken):
            exe.submit(add, 1, 1)
    finally:
        exe.shutdown(wait=True)


def test_a_restart_runs_the_waiting_calls(tmp_path):
    p = str(tmp_path)
    with FlexExecutor(max_cores=2, restart_limit=1) as exe:
        assert exe.submit(add, 1, 1).result(timeout=60) == 2
        dying = exe.submit(crash_rank1, resource_dict={"cores": 2})
        waiting = exe.submit(total, resource_dict={"cores": 2})
        with pytest.raises(ExecutorBroken, match="restart"):
            dying.result(timeout=90)
        assert waiting.result(timeout=90) == [3, 3]
        assert exe.submit(add, 2, 2).result(timeout=60) == 4
        assert not exe.broken


# ---- futures as arguments, the cache ------------------------------------------


def test_futures_as_arguments():
    with FlexExecutor(max_cores=2) as exe:
        first = exe.submit(add, 1, 2)
        second = exe.submit(add, first, 10, resource_dict={"cores": 2})
        third = exe.submit(add, [second], [1])
        assert second.result(timeout=60) == [13, 13]
        assert third.result(timeout=60) == [[13, 13], 1]


def test_cache_key_leaves_out_the_resources(tmp_path):
    marks = tmp_path / "runs"
    marks.mkdir()
    cache = tmp_path / "cache"
    with FlexExecutor(max_cores=2, cache_directory=cache) as exe:
        first = exe.submit(counted, str(marks), 4, resource_dict={"threads_per_core": 1})
        assert first.result(timeout=60) == 8
        again = exe.submit(counted, str(marks), 4, resource_dict={"threads_per_core": 2})
        assert again.result(timeout=60) == 8
        named = exe.submit(
            counted, str(marks), 5, resource_dict={"cores": 2, "cache_key": "five"}
        )
        assert named.result(timeout=60) == [10, 10]
    assert runs(str(marks)) == 3  # once for 4, twice (two ranks) for 5
    keys = {entry["key"] for entry in get_cache_data(cache)}
    assert "five" in keys and len(keys) == 2


def test_an_exception_leaving_the_block_cancels_and_interrupts(tmp_path):
    p = str(tmp_path)
    with pytest.raises(KeyError):
        with FlexExecutor(max_cores=1) as exe:
            running = exe.submit(hold, f"{p}/a", f"{p}/never", "a")
            assert wait_for(f"{p}/a")
            waiting = exe.submit(mark, f"{p}/b", "b")
            raise KeyError("leaving")
    assert waiting.cancelled()
    assert isinstance(running.exception(timeout=30), KeyboardInterrupt)
    assert not os.path.exists(f"{p}/b")


def test_core_submit_to_checks_its_arguments():
    with FlexExecutor(max_cores=2) as exe:
        core = exe._state.core
        with pytest.raises(ValueError, match="one task id per group"):
            core.submit_to([10**6, 10**6 + 1], [0], 0, b"x", [])
        with pytest.raises(ValueError, match="group 2 does not exist"):
            core.submit_to([10**6], [2], 0, b"x", [])
        with pytest.raises(TypeError, match="needs a payload"):
            core.submit_to([10**6], [0], 0, None, [])
        assert exe.submit(add, 1, 1).result(timeout=60) == 2
