import numpy as np
import numpy.typing as npt
from pympipool import Pool

def calc(i: int) -> npt.NDArray[np.int_]:
    return np.array(i ** 2)

with Pool(cores=2) as p:
    print(p.map(func=calc, iterable=[1, 2, 3, 4]))
