"""``ConnectionLost`` names the exception that broke the connection as its ``__cause__``.

A server that resets the connection while a call waits: the call's ConnectionLost
(and a later call's, on the same client, and a batch member's) has the
ConnectionResetError as ``__cause__``, as ``connect()``'s ConnectionLost has the
refusal; so a program can tell a reset from a close without parsing the message. A
plain close by the server has no exception behind it: ``__cause__`` is None.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _driver_helpers import WAIT

from jsonrpc_mini import ConnectionLost, RPCClient, SocketTransport, aio
from jsonrpc_mini.testing import FakeSocket

pytestmark = pytest.mark.timeout(60)


@contextmanager
def ending_server(*, reset: bool) -> Iterator[tuple[str, int]]:
    """A server that reads one request line, then resets (SO_LINGER 0) or closes the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:  # (the test ended before connecting)
            return
        with conn:
            conn.settimeout(WAIT)
            data = b""
            while b"\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            if reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        listener.close()
        thread.join(WAIT)
        assert not thread.is_alive()


def test_a_reset_is_the_cause_of_the_call_and_of_later_calls() -> None:
    with ending_server(reset=True) as (host, port), RPCClient(host, port, timeout=WAIT) as c:
        with pytest.raises(ConnectionLost, match="reset") as first:
            c.add(1, 2)
        assert isinstance(first.value.__cause__, ConnectionResetError)
        with pytest.raises(ConnectionLost) as later:
            c.add(3, 4)
        assert isinstance(later.value.__cause__, ConnectionResetError)


def test_a_reset_is_the_cause_of_each_batch_member() -> None:
    with ending_server(reset=True) as (host, port), RPCClient(host, port, timeout=WAIT) as c:
        with c.batch() as b:
            first, second = b.add(1, 2), b.add(3, 4)
        for member in (first, second):
            with pytest.raises(ConnectionLost) as caught:
                member.result()
            assert isinstance(caught.value.__cause__, ConnectionResetError)


def test_a_close_has_no_cause() -> None:
    with ending_server(reset=False) as (host, port), RPCClient(host, port, timeout=WAIT) as c:
        with pytest.raises(ConnectionLost, match="closed by the server") as caught:
            c.add(1, 2)
        assert caught.value.__cause__ is None


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "close"])
def test_aio_client(reset: bool) -> None:
    async def main() -> None:
        async with await aio.connect(host, port, timeout=WAIT) as c:
            with pytest.raises(ConnectionLost) as first:
                await c.add(1, 2)
            with pytest.raises(ConnectionLost) as later:
                await c.add(3, 4)
        for caught in (first, later):
            if reset:
                assert isinstance(caught.value.__cause__, ConnectionResetError)
            else:
                assert caught.value.__cause__ is None

    with ending_server(reset=reset) as (host, port):
        asyncio.run(asyncio.wait_for(main(), WAIT))


class _Payload:
    """A caller's local, to see whether the lost link keeps the caller's frame."""


def test_a_lost_link_keeps_no_frame_of_the_call_that_met_the_reset() -> None:
    # The cause is kept without its traceback: that would hold the frames it passed
    # through and, by their f_back, the whole stack of the call that met the reset,
    # every local of it (here ``payload``), for as long as the client lives.
    kept: list[weakref.ref[_Payload]] = []

    def call(c: RPCClient) -> None:
        payload = _Payload()
        kept.append(weakref.ref(payload))
        with pytest.raises(ConnectionLost):
            c.add(1, 2)

    with ending_server(reset=True) as (host, port), RPCClient(host, port, timeout=WAIT) as c:
        call(c)
        gc.collect()
        assert kept[0]() is None
        with pytest.raises(ConnectionLost) as later:
            c.add(3, 4)
        assert isinstance(later.value.__cause__, ConnectionResetError)
        assert later.value.__cause__.__traceback__ is None


def test_aio_a_later_call_s_cause_has_no_traceback() -> None:
    async def main() -> None:
        async with await aio.connect(host, port, timeout=WAIT) as c:
            with pytest.raises(ConnectionLost):
                await c.add(1, 2)
            with pytest.raises(ConnectionLost) as later:
                await c.add(3, 4)
        assert isinstance(later.value.__cause__, ConnectionResetError)
        assert later.value.__cause__.__traceback__ is None

    with ending_server(reset=True) as (host, port):
        asyncio.run(asyncio.wait_for(main(), WAIT))


@pytest.mark.parametrize("timeout", [None, 5.0])
@pytest.mark.parametrize("taken", [0, 5])
def test_a_failed_send_is_the_cause_of_the_call(timeout: float | None, taken: int) -> None:
    # The lone call's send path raised the link's ConnectionLost "from" the one its
    # write had made, so __cause__ was another ConnectionLost, not the broken pipe.
    sock = FakeSocket([], eof=False, fail_send_after=taken, send_error=BrokenPipeError(32, "Broken pipe"))
    with RPCClient(transport=SocketTransport(sock), timeout=timeout) as client:
        with pytest.raises(ConnectionLost, match="Broken pipe") as info:
            client.call("add", 1, 2)
        assert isinstance(info.value.__cause__, BrokenPipeError), repr(info.value.__cause__)
        with pytest.raises(ConnectionLost) as later:
            client.call("add", 1, 2)
        assert isinstance(later.value.__cause__, BrokenPipeError), repr(later.value.__cause__)
