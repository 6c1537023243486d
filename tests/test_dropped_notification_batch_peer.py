"""The aio server's WARNING for a notification dropped in a batch names the client, as for one alone.

A notification that could not run (an unknown method) is logged, beginning with
the connection as the server's other per-connection lines do ("connection from
127.0.0.1:5555: notification 'lgo' dropped: ..."). In a batch the aio server
logged it without the connection (the sync server names it there too).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from jsonrpc_mini import _dispatch, aio
from jsonrpc_mini._refusal_log import DroppedNotifications

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("in_thread", [False, True])
def test_a_dropped_batch_member_names_the_client(
    in_thread: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_dispatch, "DROPPED", DroppedNotifications())  # (another test's warning must not mute it)
    caplog.set_level(logging.WARNING, logger="jsonrpc_mini")
    server = aio.RPCServer(run_sync_in_thread=in_thread)
    server.register_function(lambda a, b: a + b, name="add")

    async def main() -> int:
        host, port = await server.start("127.0.0.1", 0)
        try:
            async with aio.connect(host, port, timeout=10) as client:
                async with client.batch() as batch:
                    first = batch.add(1, 2)  # (first: in the pool, the plain members after it go along)
                    batch.notify("lgo", "typo")
                # The batch's reply is written once every member ran: the line is logged.
                return int(first.result())
        finally:
            await server.shutdown()

    assert asyncio.run(main()) == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "jsonrpc_mini" and r.levelno == logging.WARNING]
    assert len(lines) == 1, lines
    assert lines[0].startswith("connection from 127.0.0.1:")
    assert ": notification 'lgo' dropped: [-32601] Method not found: 'lgo'" in lines[0]
