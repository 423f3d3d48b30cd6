"""A worker of the raw pyzmq + cloudpickle limit (bench/workloads/raw.py).

    python3 bench/worker_zmq.py ENDPOINT IDENTITY

Connects a DEALER socket to ENDPOINT, says hello, then answers every
``[task id, pickled (fn, args, kwargs), out-of-band buffers...]`` with
``[task id, pickled (ok, value), buffers...]``, in order, until an empty
message comes.  cloudpickle protocol 5; large buffers travel as frames of
their own, without a copy.
"""

import sys

import cloudpickle
import zmq


def main() -> None:
    endpoint, identity = sys.argv[1], sys.argv[2]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity.encode())
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(endpoint)
    sock.send(b"hello")
    while True:
        frames = sock.recv_multipart(copy=False)
        if len(frames) == 1 and not frames[0].bytes:
            break
        tid, payload, extra = frames[0], frames[1], frames[2:]
        fn, args, kwargs = cloudpickle.loads(payload.buffer, buffers=[f.buffer for f in extra])
        try:
            reply = (True, fn(*args, **kwargs))
        except Exception as exc:  # the caller raises it
            reply = (False, exc)
        buffers: list = []
        data = cloudpickle.dumps(reply, protocol=5, buffer_callback=buffers.append)
        out = [tid.bytes, data] + [b.raw() for b in buffers]
        sock.send_multipart(out, copy=len(out) == 2)
    sock.close(linger=1000)
    ctx.term()


if __name__ == "__main__":
    main()
