"""Executor: every call runs on all ranks; init_function fills parameter k."""
import numpy as np
from pympipool import Executor


def calc(i, j, k):
    return np.array([i, j, k])


def init_k():
    return {"k": 3}


with Executor(cores=2, init_function=init_k) as exe:
    fut = exe.submit(calc, 2, j=4)
    print(fut.result())
