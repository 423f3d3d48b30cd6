"""PoolExecutor: serial calls, each handed to whichever of the workers is free."""
import time
from concurrent.futures import as_completed

from pympipool import PoolExecutor


def calc(i: int) -> int:
    time.sleep(0.5)
    return i**2


with PoolExecutor(max_workers=2) as exe:
    futures = [exe.submit(calc, i) for i in [1, 2, 3, 4]]
    print(sorted(f.result() for f in as_completed(futures)))
    print(list(exe.map(calc, [5, 6])))
