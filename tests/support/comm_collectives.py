"""Every method of the communicator a pympipool function gets as ``comm``.

Run on every rank of a group, with 2 or more ranks.  It is written against
the subset of mpi4py's API that pympipool's own communicator
(``_pympipool_runtime.Comm``) provides, so the same checks run:

* under pympipool-runtime, where ``run(comm)`` is the task (a function that
  takes ``comm`` gets the group's communicator; tests/python/test_comm.py);
* directly under mpi4py (``mpiexec -n 4 python3 comm_collectives.py``), with
  ``MPI.COMM_WORLD``.

Checks that only pympipool's communicator can pass (error propagation across
ranks, ValueError for a freed communicator, a waiting rank that releases the
GIL and does not spin) run only there: mpi4py hangs or spins in those cases.

``run`` returns ``"comm tests passed on rank r"``; as a script it prints that
line and exits 0, or prints the failure and aborts the job (exit status 1),
so that no rank is left waiting in a collective.
"""

import os
import pickle
import sys
import threading
import time
import traceback


def get_comm(comm=None):
    """The communicator under test: the argument, the harness's, or mpi4py's."""
    if comm is not None:
        return comm
    injected = globals().get("comm")
    if injected is not None:
        return injected
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _ops(comm):
    """The module holding SUM, ANY_SOURCE, ...: mpi4py.MPI or _pympipool_runtime."""
    return sys.modules[type(comm).__module__]


def _is_pympipool(comm):
    return type(comm).__module__ == "_pympipool_runtime"


def _raises(expected, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except expected as exc:
        return exc
    raise AssertionError(
        "%s did not raise %s" % (getattr(fn, "__name__", fn), expected)
    )


def _check_basics(comm, ops, rank, size):
    assert comm.Get_rank() == rank == comm.rank, (comm.Get_rank(), rank)
    assert comm.Get_size() == size == comm.size, (comm.Get_size(), size)
    assert 0 <= rank < size and size >= 2, (rank, size)
    assert isinstance(comm.py2f(), int)
    assert comm.Barrier() is None
    assert comm.barrier() is None


def _check_bcast(comm, ops, rank, size):
    import numpy as np

    data = {"a": [1, 2, 3], "rank": rank} if rank == 0 else None
    got = comm.bcast(data, root=0)
    assert got == {"a": [1, 2, 3], "rank": 0}, got
    last = size - 1
    got = comm.bcast(("from", rank), root=last)
    assert got == ("from", last), got
    arr = np.arange(10.0) * 3 if rank == 1 else None
    got = comm.bcast(arr, 1)
    assert isinstance(got, np.ndarray) and np.array_equal(got, np.arange(10.0) * 3)
    got[0] = 42.0  # a received array is writable
    # More than one 64 MiB chunk of the pympipool implementation.
    big = bytes(range(256)) * (65 * 4096 + 1) if rank == 0 else None
    got = comm.bcast(big)
    assert len(got) == 256 * (65 * 4096 + 1) and got[:256] == bytes(range(256))
    assert comm.bcast(None) is None


def _check_gather(comm, ops, rank, size):
    got = comm.gather({"r": rank}, root=0)
    if rank == 0:
        assert got == [{"r": r} for r in range(size)], got
    else:
        assert got is None, got
    got = comm.gather(rank * rank, root=size - 1)
    if rank == size - 1:
        assert got == [r * r for r in range(size)], got
    else:
        assert got is None, got
    got = comm.allgather(("x", rank))
    assert got == [("x", r) for r in range(size)], got


def _check_scatter(comm, ops, rank, size):
    items = [{"item": r, "pad": "y" * r} for r in range(size)] if rank == 0 else None
    got = comm.scatter(items, root=0)
    assert got == {"item": rank, "pad": "y" * rank}, got
    items = [r * 10 for r in range(size)] if rank == 1 else None
    got = comm.scatter(items, root=1)
    assert got == rank * 10, got


def _check_reduce(comm, ops, rank, size):
    import numpy as np

    total = sum(range(size))
    got = comm.reduce(rank, op=ops.SUM, root=0)
    assert got == (total if rank == 0 else None), got
    assert comm.reduce(rank) == (total if rank == 0 else None)
    got = comm.reduce(rank + 1, op=ops.PROD, root=size - 1)
    if rank == size - 1:
        prod = 1
        for r in range(size):
            prod *= r + 1
        assert got == prod, got
    assert comm.allreduce(rank, op=ops.MAX) == size - 1
    assert comm.allreduce(rank, op=ops.MIN) == 0
    assert comm.allreduce(rank) == total
    # Python semantics: SUM concatenates lists, in rank order.
    assert comm.allreduce([rank], op=ops.SUM) == list(range(size))
    # numpy arrays, element-wise.
    arr = np.arange(5, dtype=np.float64) * (rank + 1)
    got = comm.allreduce(arr, op=ops.SUM)
    want = np.arange(5, dtype=np.float64) * sum(r + 1 for r in range(size))
    assert isinstance(got, np.ndarray) and np.array_equal(got, want), got
    got = comm.reduce(np.full(3, rank + 1, dtype=np.int64), op=ops.PROD, root=0)
    if rank == 0:
        prod = 1
        for r in range(size):
            prod *= r + 1
        assert np.array_equal(got, np.full(3, prod)), got
    # Logical and bitwise operators.
    assert comm.allreduce(rank > 0, op=ops.LAND) is False
    assert comm.allreduce(True, op=ops.LAND) is True
    assert comm.allreduce(rank == size - 1, op=ops.LOR) is True
    assert comm.allreduce(1 << rank, op=ops.BOR) == (1 << size) - 1
    assert comm.allreduce(0xFF, op=ops.BAND) == 0xFF
    assert comm.allreduce(1, op=ops.BXOR) == size % 2
    assert bool(comm.allreduce(rank == 0, op=ops.LXOR)) is True
    # MAXLOC / MINLOC: ties go to the lower index.
    assert comm.allreduce((rank % 2, rank), op=ops.MAXLOC) == (1, 1)
    assert comm.allreduce((rank % 2, rank), op=ops.MINLOC) == (0, 0)
    assert comm.allreduce((-rank, rank), op=ops.MINLOC) == (-(size - 1), size - 1)
    # Callables as operators; concatenation is associative but not
    # commutative, so the result shows the rank order.
    got = comm.allreduce("%d" % rank, op=lambda a, b: a + b)
    assert got == "".join("%d" % r for r in range(size)), got
    got = comm.reduce(np.array([rank, -rank]), op=np.maximum, root=0)
    if rank == 0:
        assert np.array_equal(got, np.array([size - 1, 0])), got
    # The operator objects apply themselves.
    assert ops.SUM(2, 3) == 5 and ops.MAX(2, 3) == 3


def _check_p2p(comm, ops, rank, size):
    right, left = (rank + 1) % size, (rank - 1) % size
    comm.send({"from": rank}, dest=right, tag=7)
    got = comm.recv(source=left, tag=7)
    assert got == {"from": left}, got
    comm.send(("any", rank), right)
    got = comm.recv(source=ops.ANY_SOURCE, tag=ops.ANY_TAG)
    assert got == ("any", left), got
    # Tags select: the later message is received first.
    comm.send("one", dest=right, tag=1)
    comm.send("two", dest=right, tag=2)
    assert comm.recv(source=left, tag=2) == "two"
    assert comm.recv(source=left, tag=1) == "one"
    got = comm.sendrecv(rank * 3, dest=right, source=left)
    assert got == left * 3, got
    comm.Barrier()


def _check_split_dup_free(comm, ops, rank, size):
    half = size // 2
    color = 0 if rank < half else 1
    # key = -rank reverses the order inside each half.
    sub = comm.Split(color, -rank)
    members = list(range(half)) if color == 0 else list(range(half, size))
    assert sub.Get_size() == len(members), (sub.Get_size(), members)
    assert sub.Get_rank() == len(members) - 1 - members.index(rank)
    assert sub.allgather(rank) == list(reversed(members))
    assert sub.allreduce(1) == len(members)
    sub.Free()
    sub = comm.Split(color=ops.UNDEFINED if rank == 0 else 3, key=0)
    if rank == 0:
        assert sub is None or sub == getattr(ops, "COMM_NULL", object()), sub
    else:
        assert sub.Get_size() == size - 1 and sub.allreduce(1) == size - 1
        sub.Free()
    dup = comm.Dup()
    assert dup.Get_size() == size and dup.Get_rank() == rank
    # Traffic on the duplicate does not mix with traffic on comm.
    right, left = (rank + 1) % size, (rank - 1) % size
    dup.send("dup", dest=right, tag=0)
    comm.send("comm", dest=right, tag=0)
    assert comm.recv(source=left, tag=0) == "comm"
    assert dup.recv(source=left, tag=0) == "dup"
    dup.Free()
    freed_error = ValueError if _is_pympipool(comm) else Exception
    _raises(freed_error, dup.Get_rank)
    _raises(freed_error, dup.bcast, 1)
    _raises(freed_error, dup.Free)
    if _is_pympipool(comm):
        assert repr(dup) == "<_pympipool_runtime.Comm (freed)>"
    clone = comm.Clone()
    assert clone.allreduce(rank) == sum(range(size))
    clone.Free()
    comm.Barrier()


def _check_pympipool_errors(comm, ops, rank, size):
    """Error paths that pympipool's communicator makes safe on every rank."""
    import numpy as np

    # scatter: the wrong number of items on the root -> ValueError on all.
    items = list(range(size + 1)) if rank == 0 else None
    exc = _raises(ValueError, comm.scatter, items, root=0)
    assert "expected %d" % size in str(exc), exc
    _raises((ValueError, TypeError), comm.scatter, 12345 if rank == 0 else None)
    # bcast of something the root cannot pickle -> the same error on all.
    lock = threading.Lock() if rank == 0 else None
    _raises(TypeError, comm.bcast, lock, root=0)
    # gather: rank 1 cannot pickle -> it raises its error, others RuntimeError.
    obj = threading.Lock() if rank == 1 else rank
    _raises(TypeError if rank == 1 else RuntimeError, comm.gather, obj)
    _raises(TypeError if rank == 1 else RuntimeError, comm.allgather, obj)
    # Objects that pickle but fail to unpickle: the error where they are
    # unpickled, and for allreduce (unpickled on rank 0) on every rank.
    class FailsOnLoad:
        def __reduce__(self):
            return (int, ("not a number",))

    bad = FailsOnLoad() if rank == size - 1 else rank
    _raises(ValueError, comm.allreduce, bad)
    got = comm.gather(bad, root=1) if rank != 1 else _raises(ValueError, comm.gather, bad, 1)
    assert rank == 1 or got is None, got
    _raises(ValueError, comm.bcast, FailsOnLoad() if rank == 0 else None)
    # allreduce whose operator fails on the root -> the same error on all.
    _raises(ZeroDivisionError, comm.allreduce, rank, op=lambda a, b: a / 0)
    # Operators by name; bad operators fail before any communication.
    assert comm.allreduce(rank, op="SUM") == sum(range(size))
    assert comm.allreduce(rank, op="MPI_MAX") == size - 1
    _raises(ValueError, comm.allreduce, rank, op="AVERAGE")
    _raises(TypeError, comm.reduce, rank, op=42)
    # MPI errors -> RuntimeError with MPI's text.
    exc = _raises(RuntimeError, comm.bcast, 1, root=size)
    assert "root" in str(exc).lower(), exc
    exc = _raises(RuntimeError, comm.send, 1, dest=size + 5)
    assert "MPI_Isend" in str(exc), exc
    _raises(TypeError, comm.recv, source=0, status=object())
    # The type: no instances from Python, not picklable, an int handle.
    _raises(TypeError, type(comm))
    _raises(TypeError, pickle.dumps, comm)
    assert isinstance(comm.handle, int)
    assert pickle.loads(pickle.dumps(ops.SUM)) is ops.SUM
    assert "rank %d of %d" % (rank, size) in repr(comm)
    # The runtime hands each task a borrowed wrapper of the group
    # communicator: freeing it leaves the group communicator usable.
    lent = comm._borrow()
    assert lent.allreduce(1) == size
    lent.Free()
    _raises(ValueError, lent.Get_rank)
    _raises(ValueError, lent._borrow)
    dup = comm.Dup()
    _raises(RuntimeError, dup._borrow)
    dup.Free()
    # A wrapped world/group communicator survives all of the above.
    assert comm.allreduce(np.ones(2)).tolist() == [float(size)] * 2
    comm.Barrier()


def _check_waits_release_gil(comm, ops, rank, size):
    """A waiting rank lets Python threads run and does not burn a core."""
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0.001)

    if rank == 0:
        time.sleep(1.0)
        comm.bcast("late", root=0)
        comm.Barrier()
        return
    thread = threading.Thread(target=spin)
    thread.start()
    cpu0, wall0 = time.process_time(), time.monotonic()
    got = comm.bcast(None, root=0)
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    stop.set()
    thread.join()
    assert got == "late", got
    assert wall > 0.5, wall
    # The helper thread ran while this thread waited in MPI ...
    assert counter[0] > 50, counter[0]
    # ... and the wait slept: well under the ~1 s a spinning wait costs.
    assert cpu < 0.5 * wall, (cpu, wall)
    comm.Barrier()


def run(comm):
    """Run every check on this rank; returns the success line or raises."""
    comm = get_comm(comm)
    ops = _ops(comm)
    rank, size = comm.Get_rank(), comm.Get_size()
    checks = [
        _check_basics,
        _check_bcast,
        _check_gather,
        _check_scatter,
        _check_reduce,
        _check_p2p,
        _check_split_dup_free,
    ]
    if _is_pympipool(comm):
        checks += [_check_pympipool_errors, _check_waits_release_gil]
    for check in checks:
        check(comm, ops, rank, size)
    return "comm tests passed on rank %d" % rank


def main():
    comm = get_comm()
    try:
        line = run(comm)
    except BaseException:
        sys.stdout.flush()
        sys.stderr.write(
            "comm tests FAILED on rank %d of %d:\n%s"
            % (comm.Get_rank(), comm.Get_size(), traceback.format_exc())
        )
        sys.stderr.flush()
        comm.Abort(1)  # do not leave the other ranks waiting in a collective
        os._exit(1)
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
