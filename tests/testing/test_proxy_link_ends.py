"""What each end sees when LoopbackServer's proxy ends a link: closed, half-closed or reset.

The proxy passes on how a direction ends (``_Relay._pass_on``): where the plan broke
the link (``disconnect_after``) the far end is closed, not half-closed, so both ends
read EOF and a write then fails (FaultPlan: "writes raise BrokenPipeError"); where
only one direction ended (``half_close_after``) the other keeps carrying bytes; a
reset the server->client direction meets (the client's RST, found by writing to it)
resets the server's end too, as one coming from the client does. The "server" here is
a plain socket the proxy is pointed at, so the test sees what its socket gets.
"""

from __future__ import annotations

import select
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _driver_helpers import WAIT, wait_for

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, LoopbackServer, _eager, _proxy

pytestmark = pytest.mark.timeout(60)

HELLO = b"0123456789"
EARLY = b"early"
# The other direction holds a chunk (EARLY) this long: it does not look at the link
# meanwhile, so only the direction that ends can close the far end.
HOLD = DirectionFaults(latency=WAIT * 3)


@contextmanager
def linked(plan: FaultPlan) -> Iterator[tuple[socket.socket, socket.socket, _proxy._Relay]]:
    """A client socket, the server's socket and the proxy's relay between them (with ``plan``)."""
    server = RPCServer()
    try:
        with socket.create_server(("127.0.0.1", 0)) as listener, LoopbackServer(server, faults=plan) as kit:
            kit.direct_address = listener.getsockname()[:2]  # the proxy relays to the plain socket
            listener.settimeout(WAIT)
            with socket.create_connection(kit.address, timeout=WAIT) as client:
                far, _ = listener.accept()
                with far:
                    far.settimeout(WAIT)
                    wait_for(lambda: kit._relays, "the proxy's relay")
                    yield client, far, kit._relays[0]
    finally:
        server.shutdown()


def read_all(sock: socket.socket) -> bytes:
    """Everything ``sock`` reads until EOF."""
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    return got


def write_fails(sock: socket.socket) -> None:
    """After reading EOF from a closed link: one write is answered with a reset, the next fails."""
    sock.send(b"x")  # (taken by the kernel; a closed peer answers it with RST, a half-closed one reads it)
    poller = select.poll()
    poller.register(sock, select.POLLPRI)  # (POLLERR and POLLHUP are always reported)
    events = poller.poll(WAIT * 1000)
    assert events and events[0][1] & (select.POLLERR | select.POLLHUP), "the far end took the write: not closed"
    with pytest.raises(ConnectionError):
        sock.send(b"y")


def test_a_link_broken_by_client_bytes_closes_the_servers_end() -> None:
    plan = FaultPlan(seed=1, disconnect_after=len(EARLY + HELLO), server_to_client=HOLD)
    with linked(plan) as (client, far, relay):
        far.sendall(EARLY)
        wait_for(lambda: isinstance(relay.up_in, _proxy.FaultyTransport) and relay.up_in._held, "EARLY held")
        client.sendall(HELLO + b"lost")
        assert read_all(far) == HELLO
        write_fails(far)  # (a half-closed end would take this write: no reset)
        assert read_all(client) == b""


def test_a_link_broken_by_server_bytes_closes_the_clients_end() -> None:
    plan = FaultPlan(seed=2, disconnect_after=len(EARLY + HELLO), client_to_server=HOLD)
    with linked(plan) as (client, far, relay):
        client.sendall(EARLY)
        wait_for(lambda: isinstance(relay.down, _proxy.FaultyTransport) and relay.down._held, "EARLY held")
        far.sendall(HELLO + b"lost")
        assert read_all(client) == HELLO
        write_fails(client)
        assert read_all(far) == b""


def test_a_half_closed_direction_leaves_the_other_one_carrying() -> None:
    plan = FaultPlan(seed=3, client_to_server=DirectionFaults(half_close_after=len(HELLO)))
    with linked(plan) as (client, far, _):
        client.sendall(HELLO + b"lost")
        assert read_all(far) == HELLO  # the server reads EOF...
        far.sendall(b"reply")  # ...and its reply still reaches the client
        far.shutdown(socket.SHUT_WR)
        assert read_all(client) == b"reply"


def test_a_client_reset_met_by_the_server_to_client_direction_resets_the_server() -> None:
    # The client->server direction holds the client's first bytes (latency) and its
    # reader holds its bound (1 MiB): the client's RST stays unread on the proxy's
    # socket, and the server->client direction meets it when it writes the server's
    # bytes to the client. The server then gets a reset, not an EOF (it got one in 5
    # runs of 6 when the proxy reset the client's end first: that woke the other
    # direction, which half-closed the server's end before it was reset).
    with linked(FaultPlan(seed=4, client_to_server=HOLD)) as (client, far, relay):
        client.sendall(b"z" * (2 << 20))
        reader = next(reader for reader in relay.readers if "client" in reader.thread.name)
        wait_for(lambda: reader._held >= _eager._HOLD, "the proxy's reader of the client holding its bound")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # RST
        far.sendall(b"reply")
        with pytest.raises(ConnectionResetError):
            far.recv(4096)


def test_closing_the_kit_stops_a_direction_holding_a_delayed_chunk_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server->client direction waits out a held chunk's delay (30 s here) in steps
    # of the proxy's poll; close() must end that wait itself. The poll is made longer
    # than WAIT, so a wait that only the poll ends keeps the relay past the join below.
    monkeypatch.setattr(_proxy, "_POLL", WAIT * 2)
    server = RPCServer()
    try:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            kit = LoopbackServer(server, faults=FaultPlan(seed=5, server_to_client=HOLD))
            try:
                kit.direct_address = listener.getsockname()[:2]
                listener.settimeout(WAIT)
                with socket.create_connection(kit.address, timeout=WAIT):
                    far, _ = listener.accept()
                    with far:
                        wait_for(lambda: kit._relays, "the proxy's relay")
                        relay = kit._relays[0]
                        far.sendall(EARLY)
                        wait_for(
                            lambda: isinstance(relay.up_in, _proxy.FaultyTransport) and relay.up_in._held,
                            "EARLY held",
                        )
                        relay.close()
                        assert relay.join(WAIT), "a direction kept waiting out its held chunk after close()"
            finally:
                kit.close()
    finally:
        server.shutdown()
