"""Socket calls for the hot loops, without pyzmq's per-call Python layers.

Measured on pyzmq 27 (bench/README.md, "Where the time goes"):

- ``zmq.Socket.send`` is a Python method (it handles draft sockets' routing_id
  and group) in front of the Cython send: calling the Cython one directly
  costs about 0.4 us a frame instead of 1.2 us.
- ``send_multipart`` and ``recv_multipart`` ask ``getsockopt(RCVMORE)`` per
  part, and every ``getsockopt`` looks its option up in an enum (1.6 us).
- pyzmq's flag constants are enums, so ``zmq.SNDMORE | zmq.NOBLOCK`` in a loop
  runs ``Flag.__or__`` and ``EnumType.__call__`` in Python: plain ints here.
- A ``zmq.Again`` is an exception object built with its message (5 us).

    from zex.nodes.runtime.hotpath import send, NOBLOCK, MORE_NOBLOCK
    send(router, client, MORE_NOBLOCK)   # same semantics as router.send(client, ...)
    send(router, frame, NOBLOCK)
"""

from __future__ import annotations

import zmq
from zmq.backend import Socket as _BackendSocket

send = _BackendSocket.send  # send(socket, data, flags): the Cython method, unbound

NOBLOCK = int(zmq.NOBLOCK)
MORE_NOBLOCK = int(zmq.SNDMORE) | NOBLOCK
POLLIN = int(zmq.POLLIN)
EVENTS = int(zmq.EVENTS)
RCVMORE = int(zmq.RCVMORE)
