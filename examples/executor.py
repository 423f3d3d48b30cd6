"""Executor: every call runs on all ranks; init_function fills parameter k."""
import numpy as np
import numpy.typing as npt
from pympipool import Executor


def calc(i: int, j: int, k: int) -> npt.NDArray[np.int_]:
    return np.array([i, j, k])


def init_k() -> dict[str, int]:
    return {"k": 3}


with Executor(cores=2, init_function=init_k) as exe:
    fut = exe.submit(calc, 2, j=4)
    print(fut.result())
