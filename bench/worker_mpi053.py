"""The backend of pympipool 0.5.3's design (bench/workloads/mpi053.py).

    mpiexec.openmpi -n N python3 bench/worker_mpi053.py --host H --port P

Rank 0 connects a ZeroMQ PAIR socket to tcp://H:P; then, for every message:
rank 0 receives and unpickles it (cloudpickle), ``bcast`` hands it to every
rank, each rank calls ``fn(*args, **kwargs)``, ``gather`` collects the
values on rank 0, which sends ``{"result": [value of rank 0, ...]}`` back
(``{"error": exception}`` if a rank raised).  ``{"shutdown": True}`` ends
every rank.  mpi4py pickles with cloudpickle, as 0.5.3 set it up.
"""

import argparse
import pickle

import cloudpickle
import zmq
from mpi4py import MPI


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True)
    args = parser.parse_args()
    MPI.pickle.__init__(cloudpickle.dumps, cloudpickle.loads, pickle.HIGHEST_PROTOCOL)
    comm = MPI.COMM_WORLD
    root = comm.Get_rank() == 0
    if root:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.PAIR)
        sock.connect(f"tcp://{args.host}:{args.port}")
    while True:
        task = cloudpickle.loads(sock.recv()) if root else None
        task = comm.bcast(task, root=0)
        if "shutdown" in task:
            break
        try:
            value = (True, task["fn"](*task["args"], **task["kwargs"]))
        except Exception as exc:  # sent to the caller
            value = (False, exc)
        values = comm.gather(value, root=0)
        if root and values is not None:
            failed = [v for ok, v in values if not ok]
            reply = {"error": failed[0]} if failed else {"result": [v for _, v in values]}
            sock.send(cloudpickle.dumps(reply))
    if root:
        sock.close(linger=1000)
        ctx.term()


if __name__ == "__main__":
    main()
