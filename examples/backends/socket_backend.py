"""A user-written backend for pympipool.SocketInterface.

SocketInterface.bootup() starts this program as
``python socket_backend.py --host HOST --port PORT``.  It connects back,
then answers instructions until it is told to shut down.  Each instruction
is a dict ``{"fn": callable, "args": tuple, "kwargs": dict}``; the answer is
``{"result": value}`` or, if the call raised, ``{"error": exception}``,
which the interface re-raises (same class, with this traceback as cause).
"""

import argparse

from pympipool import (
    close_connection,
    connect_to_socket_interface,
    receive_instruction,
    send_result,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()

    context, socket = connect_to_socket_interface(host=options.host, port=options.port)
    try:
        while True:
            instruction = receive_instruction(socket)
            if instruction.get("shutdown", False):
                break
            try:
                fn = instruction["fn"]
                result = fn(*instruction.get("args", ()), **instruction.get("kwargs", {}))
            except Exception as error:
                send_result(socket, {"error": error})
            else:
                send_result(socket, {"result": result})
    finally:
        close_connection(socket, context)


if __name__ == "__main__":
    main()
