"""Client bugs found by fuzz/test_fuzz_client_replies.py, pinned with their minimal examples."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from jsonrpc_mini import RPCClient, aio
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import Request
from jsonrpc_mini._events import Violation

pytestmark = pytest.mark.timeout(60)

REPLY = b'{"jsonrpc": "2.0", "id": 1, "result": "first"}\n'
LOG_LINE = b"server says hello\n"


@pytest.mark.parametrize("split", range(1, len(REPLY)))
def test_a_log_line_after_a_reply_that_came_in_two_reads_is_no_unreadable_reply(split: int) -> None:
    # Minimal example: two calls in flight; the first's reply arrives in two reads and a
    # log line follows it. The newline framer's lazy fast path ended the reply without
    # the scanner and left its bracket stack behind, so the log line counted as a reply
    # that opened an object and could not be read: the lone call left failed at once
    # with "the server's reply could not be read" (README: such lines are skipped).
    client = ClientConnection()
    for number in range(2):
        client.encode(Request("echo", [number], client.next_id()))
    events = []
    for chunk in (REPLY[:split], REPLY[split:] + LOG_LINE):
        client.receive_data(chunk)
        while (event := client.next_event()) is not None:
            events.append(event)
    assert len(events) == 2, events
    violation = events[1]
    assert isinstance(violation, Violation)
    assert (violation.unreadable, violation.id) == (None, None), violation


@pytest.fixture
def split_reply_server() -> Iterator[tuple[str, int]]:
    """Answers the first two requests: the first's reply in two reads, a log line, the second's."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                buffer = b""
                while buffer.count(b"\n") < 2:
                    buffer += conn.recv(65536)
                first, second = (json.loads(line) for line in buffer.split(b"\n")[:2])
                reply = json.dumps({"jsonrpc": "2.0", "id": first["id"], "result": first["params"]}).encode()
                conn.sendall(reply[:10])
                time.sleep(0.05)  # (two reads, unless the machine is very busy: then the test proves less)
                conn.sendall(reply[10:] + b"\n" + LOG_LINE)
                time.sleep(0.05)
                second_reply = {"jsonrpc": "2.0", "id": second["id"], "result": second["params"]}
                conn.sendall(json.dumps(second_reply).encode() + b"\n")
                conn.recv(1)  # until the client closes
            except OSError:
                pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        listener.close()
        thread.join(10)


def test_sync_client_skips_a_log_line_after_a_split_reply(split_reply_server: tuple[str, int]) -> None:
    with RPCClient(*split_reply_server, timeout=10) as client:
        results: dict[str, object] = {}

        def call(word: str) -> None:
            try:
                results[word] = client.echo(word)
            except Exception as exc:  # (checked below)
                results[word] = exc

        first = threading.Thread(target=call, args=("first",))
        first.start()
        time.sleep(0.05)  # (the first request goes out first)
        call("second")
        first.join(10)
    assert results == {"first": ["first"], "second": ["second"]}


def test_aio_client_skips_a_log_line_after_a_split_reply(split_reply_server: tuple[str, int]) -> None:
    async def main() -> list[object]:
        async with await aio.connect(*split_reply_server, timeout=10) as client:
            first = asyncio.ensure_future(client.echo("first"))
            await asyncio.sleep(0.05)
            return list(await asyncio.gather(first, client.echo("second"), return_exceptions=True))

    assert asyncio.run(main()) == [["first"], ["second"]]
