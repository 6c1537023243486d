"""A reset reaches an end the proxy's write to it is blocked on at once, and closing the kit ends that write.

The server floods the client, which reads nothing, so the proxy's write to the
client blocks; then the client's bytes pass the plan's ``reset_after``. The proxy
resets both ends (SO_LINGER 0, close), but its socket to the client stayed open in
the kernel while the write held it: the RST left only once the client had read
enough for that write to return (about 1.4 MB, 36 s with a small receive buffer),
and the kit's close() could not end the write either (it waited 5 s, warned and left
the thread running). Now the proxy's writes wait for room a short while at a time
and stop once their socket was closed: the client reads what its own socket holds,
then the reset, and close() ends every proxy thread.

The kernel sends the RST of a socket closed with SO_LINGER 0 only once no thread
waits on it (a poll() holds it open), and until then it goes on sending the proxy's
queued bytes as the client reads. So the client reads only once the proxy's threads
have all ended, which they must do on their own (the old write waited for the
client to read): what it reads then is what its own socket held. Reading while they
ended measured how late a loaded machine ran the woken thread: once 266,240 bytes.
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _driver_helpers import WAIT, wait_for

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import DirectionFaults, FaultPlan, LoopbackServer, _eager, _relay

pytestmark = pytest.mark.timeout(60)

REQUEST = b'{"jsonrpc": "2.0", "method": "flood", "id": 1}\n'
PLAN = FaultPlan(seed=1, client_to_server=DirectionFaults(reset_after=len(REQUEST) + 4))
FLOOD = 16 << 20  # the reply: far more than the sockets and the proxy hold


def blocked(kit: LoopbackServer) -> bool:
    """Whether the proxy's write to the client is held up: no room on its socket, its reader of the server full."""
    if not kit._relays:
        return False
    relay = kit._relays[0]
    sock = relay.down_out
    assert isinstance(sock, _relay.SocketTransport)
    if relay.readers[-1]._held < _eager._HOLD:  # (the server's end: the direction takes nothing more)
        return False
    return not select.select([], [sock.sock], [], 0)[1]


@contextmanager
def reset_while_writing_to_the_client() -> Iterator[tuple[socket.socket, LoopbackServer, _relay._Relay]]:
    """The client's socket, the kit and the relay, the plan's reset done while the write to the client blocks."""
    server = RPCServer()
    server.register_function(lambda: "x" * FLOOD, name="flood")
    try:
        with LoopbackServer(server, faults=PLAN) as kit, socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (before connecting: a small window)
            client.settimeout(WAIT)
            client.connect(kit.address)
            client.sendall(REQUEST)
            wait_for(lambda: blocked(kit), "the proxy's write to the client blocking")
            relay = kit._relays[0]
            client.sendall(b"past")  # (past reset_after: the plan resets the link)
            wait_for(lambda: not relay.threads[0].is_alive(), "the client->server direction meeting the reset")
            yield client, kit, relay
    finally:
        server.shutdown()


def test_the_client_reads_the_reset_after_what_its_socket_held() -> None:
    got = 0
    with reset_while_writing_to_the_client() as (client, _, relay):
        # (The old write ended only as the client read: it never did here.)
        wait_for(lambda: relay.finished, "the proxy's threads ending after the reset, the client reading nothing")
        # What the client's socket can hold: the kernel's figure for its buffer (twice
        # the 4096 asked, bookkeeping included), more than the bytes it holds.
        most = client.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        with pytest.raises(ConnectionResetError):
            while got <= most:
                chunk = client.recv(1 << 16)
                assert chunk, f"EOF after {got} bytes, not a reset"
                got += len(chunk)
            pytest.fail(f"the client read {got} bytes after the reset (its buffer: {most}) and no reset yet")
    assert got > 0  # (the flood filled its socket before the reset: it read that first)


def test_closing_the_kit_ends_the_write_the_reset_cut_short(caplog: pytest.LogCaptureFixture) -> None:
    # The client stays open and reads nothing: only the proxy can end its write.
    with (
        caplog.at_level(logging.WARNING, "jsonrpc_mini.testing"),
        reset_while_writing_to_the_client() as (_, kit, relay),
    ):
        kit.close()
        assert relay.finished, [t.name for t in relay._all_threads() if t.is_alive()]
    assert "did not stop" not in caplog.text
