"""SocketInterface: boot a user-written backend (backends/socket_backend.py) and let
it evaluate functions defined here.  Prints [array(1), array(4), array(9),
array(16)] and then the re-raised remote error."""

import os
import sys

import numpy as np
import numpy.typing as npt

from pympipool import SocketInterface


def calc(i: int) -> npt.NDArray[np.int_]:
    return np.array(i**2)


def fail(i: int) -> None:
    raise ValueError(f"no square for {i}")


backend = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backends", "socket_backend.py")

with SocketInterface() as interface:
    port = interface.bind_to_random_port()
    interface.bootup([sys.executable, backend, "--host", "127.0.0.1", "--port", str(port)])
    print([interface.send_and_receive_dict({"fn": calc, "args": (i,)}) for i in [1, 2, 3, 4]])
    try:
        interface.send_and_receive_dict({"fn": fail, "args": (5,)})
    except ValueError as error:
        print(f"ValueError: {error}")
