"""A write of LoopbackServer's proxy cut short by the kit's close() or the plan's close is no reset.

The end it wrote to reads the bytes that reached it, then EOF (see test_proxy_link_ends.py).
"""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _driver_helpers import WAIT, wait_for
from _proxy_link_support import linked, read_all

from jsonrpc_mini.testing import DirectionFaults, FaultPlan, LoopbackServer, _relay

pytestmark = pytest.mark.timeout(60)


def blocked_writing_to_the_client(kit: LoopbackServer) -> bool:
    """Whether the proxy's server->client direction sits in a write the client's full socket holds up.

    Nothing the sockets see tells it: this reads the relay's socket and its thread's frame.
    """
    if not kit._relays:
        return False
    sock = kit._relays[0].down_out.sock
    if select.select([], [sock], [], 0)[1]:  # (room to write: the write goes on)
        return False
    thread = next((t for t in threading.enumerate() if t.name == "jsonrpc_mini-proxy-0-s2c"), None)
    frame = None if thread is None or thread.ident is None else sys._current_frames().get(thread.ident)
    return frame is not None and frame.f_code.co_name in ("_send", "_writable")


def send_until_closed(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` until done or the connection ends."""
    with contextlib.suppress(OSError):
        sock.sendall(data)


@contextmanager
def flooding_the_client(
    monkeypatch: pytest.MonkeyPatch, plan: FaultPlan | None
) -> Iterator[tuple[dict[str, socket.socket], LoopbackServer]]:
    """``linked(plan)`` with the proxy's write to the client blocked: the server sends far more than fits.

    A close of the proxy's socket to the client then fails that write (a broken pipe),
    and is made to wait, the socket shut down but open, until the writing direction has
    handled the failure: unforced, that order came in about half the runs.
    """
    made: list[_relay.SocketTransport] = []

    class Gated(_relay.SocketTransport):
        def close(self) -> None:
            if self is made[0] and threading.current_thread().name != "jsonrpc_mini-proxy-0-s2c":
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
                for thread in threading.enumerate():
                    if thread.name == "jsonrpc_mini-proxy-0-s2c":
                        thread.join(WAIT)  # (it handles the failed write, then ends)
            super().close()

    def made_one(sock: socket.socket) -> _relay.SocketTransport:
        transport = Gated(sock)
        made.append(transport)  # (the client's end first)
        return transport

    monkeypatch.setattr(_relay, "SocketTransport", made_one)
    with linked(plan) as (ends, kit):
        sender = threading.Thread(target=send_until_closed, args=(ends["server"], b"z" * (16 << 20)))
        sender.start()
        try:
            wait_for(lambda: blocked_writing_to_the_client(kit), "the proxy's write to the client blocking")
            yield ends, kit
        finally:
            sender.join(WAIT)


@pytest.mark.parametrize("plan", [None, FaultPlan(seed=8, max_chunk=1 << 16)], ids=["no plan", "plan"])
def test_closing_the_kit_while_a_write_to_the_client_blocks_resets_no_one(
    monkeypatch: pytest.MonkeyPatch, plan: FaultPlan | None
) -> None:
    # The write close() cut short is close() at work, not a reset: the client reads the
    # bytes that reached it, then EOF (passed on as a reset, it read ConnectionResetError).
    with flooding_the_client(monkeypatch, plan) as (ends, kit):
        kit.close()
        got = read_all(ends["client"])
    assert got and got == b"z" * len(got)


def test_a_write_to_an_end_the_broken_link_closed_resets_no_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # The client's bytes break the link (closed in their frame) while the proxy's write
    # to the client blocks: closing the client's end fails that write with a broken
    # pipe, which is the plan's close, not the client's reset: the client reads the
    # bytes that reached it, then EOF (passed on as a reset, it read ConnectionResetError).
    plan = FaultPlan(seed=9, client_to_server=DirectionFaults(disconnect_in_frame=1))
    with flooding_the_client(monkeypatch, plan) as (ends, _):
        ends["client"].sendall(b"x" * 32 + b"\n")
        got = read_all(ends["client"])
    assert got and got == b"z" * len(got)
