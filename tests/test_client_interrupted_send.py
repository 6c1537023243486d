"""A send interrupted part way (Ctrl-C inside the write) closes the sync client's connection.

Part of the request may be on the wire then; whatever the client wrote next
would be read by the server as the rest of that request (a parse error, or a
different call). So the connection is closed: the interrupted caller gets its
KeyboardInterrupt, every other pending call and every later one ConnectionLost.
"""

from __future__ import annotations

import threading

import pytest
from _driver_helpers import WAIT, wait_for

from jsonrpc_mini import ConnectionLost, RPCClient

pytestmark = pytest.mark.timeout(60)


class _CutWire:
    """A transport whose first send of a message containing ``b"cut"`` writes half of it and raises KeyboardInterrupt.

    Nothing is ever answered: reads wait until the transport is closed (then end of stream).
    """

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = threading.Event()
        self._cut = False

    def send(self, data: bytes) -> None:
        if b"cut" in data and not self._cut:
            self._cut = True
            self.written.append(data[: len(data) // 2])
            raise KeyboardInterrupt
        self.written.append(data)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        if not self.closed.wait(WAIT if timeout is None else timeout) and timeout is not None:
            raise TimeoutError("read timed out")
        return b""

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize("how", ["call", "notify"])
def test_an_interrupted_send_closes_the_connection_and_writes_nothing_more(how: str) -> None:
    wire = _CutWire()
    c = RPCClient(transport=wire)
    other: dict[str, BaseException] = {}

    def pending_call() -> None:
        try:
            c.hold()
        except BaseException as exc:  # recorded for the test
            other["exc"] = exc

    waiting = threading.Thread(target=pending_call, daemon=True)
    waiting.start()
    wait_for(lambda: len(wire.written) == 1, "the other call's request")
    with pytest.raises(KeyboardInterrupt):
        if how == "call":
            c.echo("cut" * 100)
        else:
            c.notify("echo", "cut" * 100)
    assert wire.closed.is_set(), "the connection stayed open after half a request"
    waiting.join(WAIT)
    assert isinstance(other.get("exc"), ConnectionLost), other
    assert "a send was interrupted; part of a request may be on the wire" in str(other["exc"])
    with pytest.raises(ConnectionLost):
        c.echo("after")
    assert len(wire.written) == 2 and b"after" not in b"".join(wire.written), "wrote after a cut request"
    c.close()
