"""LoopbackServer's proxy with a fault plan keeps back-pressure: it holds a bounded amount.

With a plan, each end of the proxy is read by a thread that stamps when bytes came
(testing/_eager.py). Reading without bound, it took every reply a server made for a
client that reads nothing, so the server never blocked and never closed that client
(its read_timeout bounds a reply the peer takes no byte of), and the test process
held every byte. Now it stops reading once it holds 1 MiB.

Closing the kit then must stop that reader too: it waits for room, not on its
socket, so closing the socket did not end it ('jsonrpc_mini-proxy-0-server-reader'
outlived the test, and close() waited 5 s for it in vain). The proxy now stops
its readers itself.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest
from _driver_helpers import wait_for

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import FaultPlan, LoopbackServer

pytestmark = pytest.mark.timeout(60)

CALLS = 150
REPLY = 1_000_000  # bytes: all replies together are far more than any buffer holds


def test_a_client_that_reads_nothing_is_closed_by_the_server_through_a_fault_plan() -> None:
    ran: list[int] = []
    server = RPCServer(read_timeout=1.0)

    @server.register
    def big() -> str:
        ran.append(1)
        return "x" * REPLY

    requests = b"".join(json.dumps({"jsonrpc": "2.0", "method": "big", "id": i}).encode() + b"\n" for i in range(CALLS))
    before = set(threading.enumerate())
    try:
        with (
            LoopbackServer(server, faults=FaultPlan(seed=1, max_chunk=65536)) as kit,
            socket.create_connection(kit.address) as client,
        ):
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.sendall(requests)
            wait_for(lambda: ran and server.connection_count == 0, "the server closing the client that reads nothing")
            assert len(ran) < CALLS  # the server's sends blocked: it stopped running calls
        # close() stopped and joined every thread of the proxy, the readers holding their bound too.
        proxy = [t.name for t in threading.enumerate() if t not in before and t.name.startswith("jsonrpc_mini-proxy")]
        assert not proxy, f"threads of the proxy still running after close(): {proxy}"
    finally:
        server.shutdown()
