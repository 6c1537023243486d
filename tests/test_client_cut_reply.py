"""A reply cut short by the end of the connection is a lost connection, not a server's bad message.

Every fault test that breaks the link inside a reply (``disconnect_in_frame`` on the
server's direction, or ``disconnect_after=N`` landing in a reply) logged a WARNING
"ignoring message from server: unreadable data from server: Parse error: incomplete
JSON value at end of stream" beside the call's ConnectionLost, one per seed tried.
The call already says what happened; the rest of a lost connection concerns nobody
(DEBUG), as once the client has noticed the loss.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, SocketTransport, aio
from jsonrpc_mini.testing import DirectionFaults, FakeSocket, FaultPlan, loopback

pytestmark = pytest.mark.timeout(60)

CUT_REPLY = b'{"jsonrpc": "2.0", "id": 1, "res'
CUT_FRAMED = b'Content-Length: 40\r\n\r\n{"jsonrpc": "2.0", "id": 1, "res'


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "jsonrpc_mini" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize(("framing", "script"), [("newline", CUT_REPLY), ("content-length", CUT_FRAMED)])
def test_sync_client_reply_cut_by_eof(caplog: pytest.LogCaptureFixture, framing: str, script: bytes) -> None:
    caplog.set_level(logging.DEBUG, logger="jsonrpc_mini")
    client = RPCClient(transport=SocketTransport(FakeSocket([script])), timeout=5, framing=framing)
    with pytest.raises(ConnectionLost, match="connection closed by the server"):
        client.add(1, 2)
    client.close()
    assert warnings_of(caplog) == []
    assert any("end of stream" in r.getMessage() for r in caplog.records)  # still there, at DEBUG


def test_a_fault_plan_cutting_the_reply_warns_nothing(caplog: pytest.LogCaptureFixture) -> None:
    server = RPCServer()
    server.register_function(lambda x: x, name="echo")
    plan = FaultPlan(server_to_client=DirectionFaults(disconnect_in_frame=1))  # inside the first reply
    with loopback(server, faults=plan) as client, pytest.raises(ConnectionLost):
        client.echo("x" * 40)
    assert warnings_of(caplog) == []


def test_aio_client_reply_cut_by_eof(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.write(CUT_REPLY)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(cut, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with await aio.connect("127.0.0.1", port, timeout=5) as client:
                with pytest.raises(aio.ConnectionLost, match="connection closed by the server"):
                    await client.add(1, 2)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())
    assert warnings_of(caplog) == []
