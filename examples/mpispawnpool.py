from typing import Any

from pympipool import MPISpawnPool

def calc(i: int, comm: Any) -> tuple[int, int, int]:
    return i, comm.Get_size(), comm.Get_rank()

with MPISpawnPool(cores=4, cores_per_task=2) as p:
    print(p.map(func=calc, iterable=[1, 2, 3, 4]))
