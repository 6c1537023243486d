"""``close_delay`` on the blocking kits: a close takes that long to reach the peer, both ways alike.

A ``FaultyTransport`` reads its peer's close (EOF) ``close_delay`` after it came, as
its own ``close()`` waits that long before the peer sees it: so on ``loopback()`` the
server's close reaches the client as late as the client's reaches the server, and
``LoopbackServer``'s proxy, which reads both ends through one, holds either end's close
that long (it used to hold only the server's, and the client's close through the
``loopback()`` pipe only). Closing a ``LoopbackServer`` waits the delay out once for
all its connections (it paid it once per connection, one after another), at most
``_proxy._CLOSE_WAIT``. The waits are an hour here: nothing a test does outlasts one,
so no test depends on timing, and one that waited it would hang (pytest-timeout).
"""

from __future__ import annotations

import select
import socket

import pytest
from _driver_helpers import WAIT, wait_for
from _proxy_linked import HOLDING, linked, note_holding

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import FaultPlan, FaultyTransport, LoopbackServer, _proxy, _relay, pipe_pair

pytestmark = pytest.mark.timeout(60)

HOUR = 3600.0
SLOW_CLOSE = FaultPlan(seed=1, close_delay=HOUR)


def test_a_faulty_transport_reads_its_peers_close_after_close_delay() -> None:
    a, b = pipe_pair()
    faulty = FaultyTransport(a, SLOW_CLOSE)
    b.send(b"last")
    b.close()
    assert faulty.recv(100, 0.0) == b"last"  # (the bytes before the close come at once)
    with pytest.raises(TimeoutError, match="close_delay"):
        faulty.recv(100, 0.0)  # the peer's close is on its way for an hour (it read b"")
    with pytest.raises(TimeoutError):
        faulty.recv(100, 0.0)  # still


def test_a_faulty_transport_reads_its_peers_close_once_the_delay_is_over() -> None:
    a, b = pipe_pair()
    faulty = FaultyTransport(a, FaultPlan(seed=2, close_delay=0.01))
    b.close()
    assert faulty.recv(100, WAIT) == b""


class Watched(_relay.FaultyTransport):
    """The proxy's FaultyTransport, noting when a read timed out holding its peer's close."""

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        try:
            return super().recv(max_bytes, timeout)
        except TimeoutError:
            if self._eof:
                note_holding()
            raise


def holds_the_close(direction: str) -> bool:
    """Whether the proxy's ``direction`` ("c2s", "s2c") read an EOF and waits out its close_delay."""
    event = HOLDING.get(f"jsonrpc_mini-proxy-0-{direction}")
    return event is not None and event.is_set()


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


@pytest.mark.parametrize(("side", "direction"), [("client", "c2s"), ("server", "s2c")])
def test_the_proxy_holds_either_ends_close_for_close_delay(
    monkeypatch: pytest.MonkeyPatch, side: str, direction: str
) -> None:
    # ``side`` half-closes: the proxy reads the EOF and holds it (its read times out
    # holding it), and the other end has nothing to read meanwhile, while its own bytes
    # still reach ``side``. The old code passed the client's close on at once (this
    # wait_for failed), and held the server's in a sleep of its write side.
    other = "server" if side == "client" else "client"
    monkeypatch.setattr(_proxy, "_CLOSE_WAIT", 0.0)
    with linked(monkeypatch, SLOW_CLOSE, Watched) as (ends, kit):
        ends[side].shutdown(socket.SHUT_WR)
        wait_for(lambda: holds_the_close(direction), f"the proxy holding the {side}'s close")
        assert not readable(ends[other]), f"the {side}'s close reached the {other} before its close_delay"
        ends[other].sendall(b"still")
        assert ends[side].recv(100) == b"still"
        kit.close()  # (closing the kit waits at most _CLOSE_WAIT, here 0, then closes at once)
        assert ends[other].recv(100) == b""


def test_closing_the_kit_waits_out_close_delay_once_for_all_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    # Three clients of the kit, each connection's close held for an hour. Closing the kit
    # waits once (here _CLOSE_WAIT, made short) for all three: the first relay's wait takes
    # it whole, the others find it over (0 s). The old code slept the hour once per
    # connection, one after another (this test timed out), and the relays' waits were
    # each as long as their threads (a relay's four threads: four times the wait).
    waits: list[float] = []
    real_join = _relay._Relay.join

    def join(relay: _relay._Relay, timeout: float) -> bool:
        waits.append(timeout)
        return real_join(relay, timeout)

    monkeypatch.setattr(_relay._Relay, "join", join)
    monkeypatch.setattr(_proxy, "_CLOSE_WAIT", 0.2)
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    try:
        with LoopbackServer(server, faults=SLOW_CLOSE) as kit:
            clients = [kit.client() for _ in range(3)]
            assert [client.add(i, 1) for i, client in enumerate(clients)] == [1, 2, 3]
            wait_for(lambda: len(kit._relays) == 3, "three relays")
            kit.close()
    finally:
        server.shutdown()
    first = waits[:3]  # (the close_delay's wait; then the joins after the relays were closed)
    assert first[0] > 0.1 and all(wait < 0.1 for wait in first[1:]), waits
