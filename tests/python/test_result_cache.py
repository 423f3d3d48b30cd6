"""The result cache (pylib/pympipool/_cache.py): ``cache_directory=`` on
``Executor`` and ``PoolExecutor``, ``resource_dict={"cache_key": ...}`` and
``get_cache_data``.  A hit is proven not to have been sent by a function
that counts its runs in a file."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pympipool
from pympipool import Executor, PoolExecutor, get_cache_data
from pympipool._cache import MAGIC, ResultCache


# ---- functions run on the workers (defined here: pickled by value) ---------


def counted(path, value, scale=1):
    """value * scale, appending a line to path for every run."""
    with open(path, "a") as out:
        out.write(f"{os.getpid()} {value}\n")
    return value * scale


def runs(path):
    try:
        with open(path) as stream:
            return len(stream.readlines())
    except FileNotFoundError:
        return 0


def failing(path, value):
    counted(path, value)
    raise ValueError(f"no {value}")


def add(a, b=0):
    return a + b


def double_array(array):
    return array * 2


# ---- hits and misses ----------------------------------------------------------------


def test_hit_is_not_sent(tmp_path):
    marks = str(tmp_path / "runs")
    cache = tmp_path / "cache"
    with PoolExecutor(max_workers=1, cache_directory=cache) as exe:
        assert exe.submit(counted, marks, 3, scale=2).result(timeout=60) == 6
        assert runs(marks) == 1
        again = exe.submit(counted, marks, 3, scale=2)
        assert again.done()  # served at submit, nothing sent
        assert again.result(timeout=0) == 6
        # value by keyword is another call than value by position ...
        assert exe.submit(counted, marks, scale=2, value=3).result(timeout=60) == 6
        assert runs(marks) == 2
        # ... but the order of the keyword arguments does not count
        assert exe.submit(counted, marks, value=3, scale=2).result(timeout=60) == 6
        assert runs(marks) == 2
    assert runs(marks) == 2


def test_different_arguments_miss(tmp_path):
    marks = str(tmp_path / "runs")
    with PoolExecutor(max_workers=1, cache_directory=tmp_path / "cache") as exe:
        assert exe.submit(counted, marks, 1).result(timeout=60) == 1
        assert exe.submit(counted, marks, 2).result(timeout=60) == 2
        assert exe.submit(counted, marks, 1, scale=1).result(timeout=60) == 1  # kwargs count
        assert exe.submit(counted, marks, 1.0).result(timeout=60) == 1.0  # 1.0 pickles unlike 1
        assert exe.submit(add, 1).result(timeout=60) == 1  # another function
    assert runs(marks) == 4
    assert len(get_cache_data(tmp_path / "cache")) == 5


def test_numpy_arguments_and_results(tmp_path):
    cache = tmp_path / "cache"
    big = np.arange(100_000, dtype=np.float64)  # out of band when sent
    with PoolExecutor(max_workers=1, cache_directory=cache) as exe:
        first = exe.submit(double_array, big).result(timeout=60)
        second = exe.submit(double_array, big.copy()).result(timeout=60)
        other = exe.submit(double_array, big + 1).result(timeout=60)
    np.testing.assert_array_equal(first, big * 2)
    np.testing.assert_array_equal(second, big * 2)
    np.testing.assert_array_equal(other, (big + 1) * 2)
    entries = get_cache_data(cache)
    assert len(entries) == 2
    for entry in entries:
        assert entry["result"].dtype == np.float64


def test_cache_key_names_the_entry(tmp_path):
    marks = str(tmp_path / "runs")
    cache = tmp_path / "cache"
    with PoolExecutor(max_workers=1, cache_directory=cache) as exe:
        first = exe.submit(counted, marks, 1, resource_dict={"cache_key": "step-1"})
        assert first.result(timeout=60) == 1
        # another call under the same name: served from the entry
        second = exe.submit(counted, marks, 99, resource_dict={"cache_key": "step-1"})
        assert second.result(timeout=60) == 1
    assert runs(marks) == 1
    assert (cache / "step-1.pmpc").is_file()
    (entry,) = get_cache_data(cache)
    assert entry["key"] == "step-1" and entry["args"] == (marks, 1)


def test_resource_dict_is_checked(tmp_path):
    with PoolExecutor(max_workers=1, cache_directory=tmp_path) as exe:
        with pytest.raises(ValueError, match="unknown key.*'cores'"):
            exe.submit(add, 1, resource_dict={"cores": 2})
        with pytest.raises(ValueError, match="cache_key"):
            exe.submit(add, 1, resource_dict={"cache_key": "../escape"})
        with pytest.raises(TypeError, match="resource_dict must be a dict"):
            exe.submit(add, 1, resource_dict=["cache_key"])
        assert exe.submit(add, 1, resource_dict={}).result(timeout=60) == 1
    # without a cache, too
    with PoolExecutor(max_workers=1) as exe:
        with pytest.raises(ValueError, match="unknown key"):
            exe.submit(add, 1, resource_dict={"threads": 2})


def test_errors_are_not_cached(tmp_path):
    marks = str(tmp_path / "runs")
    cache = tmp_path / "cache"
    with PoolExecutor(max_workers=1, cache_directory=cache) as exe:
        for _ in range(2):
            with pytest.raises(ValueError, match="no 5"):
                exe.submit(failing, marks, 5).result(timeout=60)
    assert runs(marks) == 2
    assert get_cache_data(cache) == []


def test_futures_as_arguments_use_their_values(tmp_path):
    marks = str(tmp_path / "runs")
    with PoolExecutor(max_workers=1, cache_directory=tmp_path / "cache") as exe:
        three = exe.submit(add, 1, 2)
        assert exe.submit(counted, marks, three).result(timeout=60) == 3
        assert exe.submit(counted, marks, 3).result(timeout=60) == 3  # the same call
        plain = concurrent.futures.Future()
        late = exe.submit(counted, marks, plain)
        plain.set_result(3)
        assert late.result(timeout=60) == 3
    assert runs(marks) == 1


def test_map_goes_through_the_cache(tmp_path):
    marks = str(tmp_path / "runs")
    with PoolExecutor(max_workers=2, cache_directory=tmp_path / "cache") as exe:
        assert list(exe.map(counted, [marks] * 4, range(4))) == [0, 1, 2, 3]
        assert list(exe.map(counted, [marks] * 5, range(5), timeout=60)) == [0, 1, 2, 3, 4]
    assert runs(marks) == 5


def test_second_executor_sees_the_entries(tmp_path):
    marks = str(tmp_path / "runs")
    cache = tmp_path / "cache"
    with PoolExecutor(max_workers=1, cache_directory=cache) as exe:
        pid = exe.submit(os.getpid).result(timeout=60)
        assert exe.submit(counted, marks, 7).result(timeout=60) == 7
    with Executor(cores=1, cache_directory=str(cache)) as exe:
        assert exe.submit(os.getpid).result(timeout=60) == pid  # not this job's rank
        assert exe.submit(counted, marks, 7).result(timeout=60) == 7
    assert runs(marks) == 1


def test_key_is_the_same_in_another_interpreter(tmp_path):
    """A rerun of a script (another process, another hash seed) finds the
    entries of the first run."""
    script = tmp_path / "rerun.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import numpy as np
            from pympipool._cache import ResultCache
            SCALE, OFFSET = 3, 4
            def helper(x):
                return x + OFFSET
            def work(x, y=2):
                return helper(x) * SCALE + y
            print(ResultCache(sys.argv[1]).key(work, (1, np.arange(5)), {"y": 2, "z": [1, "a"]}))
            """
        )
    )
    keys = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "c")],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        )
        keys.add(out.stdout.strip())
    assert len(keys) == 1 and len(keys.pop()) == 64


# ---- the entries -------------------------------------------------------------------


def test_get_cache_data_contents(tmp_path):
    cache = tmp_path / "cache"
    with PoolExecutor(max_workers=1, cache_directory=cache) as exe:
        assert exe.submit(add, 2, b=5).result(timeout=60) == 7
    (entry,) = get_cache_data(cache)
    assert set(entry) == {"function", "args", "kwargs", "result", "run_time", "key", "file"}
    assert entry["function"] == f"{__name__}.add"
    assert entry["args"] == (2,) and entry["kwargs"] == {"b": 5}
    assert entry["result"] == 7
    assert isinstance(entry["run_time"], float) and 0 <= entry["run_time"] < 60
    assert os.path.isfile(entry["file"]) and entry["file"].endswith(entry["key"] + ".pmpc")
    assert pympipool.get_cache_data(tmp_path / "missing") == []


def test_corrupt_and_partial_entries_are_misses(tmp_path, caplog):
    marks = str(tmp_path / "runs")
    cache = tmp_path / "cache"
    cache.mkdir()
    store = ResultCache(cache)
    truncated_key = store.key(counted, (marks, 1), {})
    corrupt_key = store.key(counted, (marks, 2), {})
    store.store(truncated_key, counted, (marks, 1), {}, "stale", 0.0)
    store.store(corrupt_key, counted, (marks, 2), {}, "stale", 0.0)
    data = (cache / f"{truncated_key}.pmpc").read_bytes()
    (cache / f"{truncated_key}.pmpc").write_bytes(data[: len(data) // 2])
    corrupt = bytearray((cache / f"{corrupt_key}.pmpc").read_bytes())
    corrupt[-3] ^= 0xFF
    (cache / f"{corrupt_key}.pmpc").write_bytes(bytes(corrupt))
    (cache / ".tmp-leftover").write_bytes(MAGIC + b"half an entry")
    assert get_cache_data(cache) == []
    with caplog.at_level(logging.DEBUG, logger="pympipool"):
        with PoolExecutor(max_workers=1, cache_directory=cache) as exe:
            assert exe.submit(counted, marks, 1).result(timeout=60) == 1
            assert exe.submit(counted, marks, 2).result(timeout=60) == 2
    assert runs(marks) == 2  # both ran
    assert caplog.text.count("is truncated or corrupt") == 2
    assert sorted(e["result"] for e in get_cache_data(cache)) == [1, 2]  # rewritten whole


def test_killed_writer_leaves_no_entry(tmp_path):
    """A process killed in the middle of writing an entry (here: at its
    fsync, the data written, not yet moved into place) leaves at most a
    temporary file, which no reader takes for an entry."""
    cache = tmp_path / "cache"
    script = tmp_path / "killed.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, sys
            from pympipool._cache import ResultCache
            def work(x):
                return x
            store = ResultCache(sys.argv[1])
            key = store.key(work, (1,), {})
            print(key, flush=True)
            os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
            store.store(key, work, (1,), {}, "never", 1.0)
            """
        )
    )
    run = subprocess.run(
        [sys.executable, str(script), str(cache)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == -9
    key = run.stdout.strip()
    leftovers = os.listdir(cache)
    assert leftovers and all(name.startswith(".tmp-") for name in leftovers)
    assert get_cache_data(cache) == []
    assert ResultCache(cache).load(key) is None


def test_cache_directory_is_checked(tmp_path):
    with pytest.raises(TypeError, match="cache_directory"):
        PoolExecutor(max_workers=1, cache_directory=3)
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        PoolExecutor(max_workers=1, cache_directory=tmp_path / "file")
