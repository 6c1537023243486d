"""aio notifications and batches made while the client's writing is paused keep to the timeout.

A call made while the write buffer is full is held and its timer runs; but a
notification or a batch waited for the buffer to drain before its timeout began,
so with a server that stopped reading (or the test kit's slow fault plan) it
waited for ever whatever the timeout. Now: RPCTimeout when the timeout passes
first (nothing of it was written; the connection goes on), and a batch's members
get what is left of the timeout. A waiter cancelled or timed out no longer
cancels the shared "writable" future: writing stays paused for the others.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _aio_support import WAIT, SlowReader, run, slow_reader

from jsonrpc_mini import RPCTimeout, aio

pytestmark = pytest.mark.timeout(60)

SHORT = 0.3
BIG = "x" * 1_000_000


class TagReader(SlowReader):
    """Answers requests (and batches) with 0; ``seen``: the first param of each ``tag`` request or notification."""

    def answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        if request["method"] == "tag":
            self.seen.append(request["params"][0])
        return None if "id" not in request else {"jsonrpc": "2.0", "id": request["id"], "result": 0}


async def fill(client: aio.RPCClient) -> list[Any]:
    """Make large calls until the client's writing is paused; return them."""
    calls: list[Any] = []
    for _ in range(200):
        if client._link.paused:
            return calls
        calls.append(client.echo(BIG))
        await asyncio.sleep(0)
    raise AssertionError("the client's writing never paused")


def test_a_notification_waits_for_a_full_buffer_no_longer_than_the_timeout() -> None:
    with slow_reader(TagReader) as server:

        async def main() -> None:
            async with await aio.connect(*server.address, timeout=WAIT) as c:
                big = await fill(c)
                with pytest.raises(RPCTimeout, match="nothing was sent") as timed_out:
                    await c.with_timeout(SHORT).notify("tag", "never")
                # README: .method names the remote method (as the sync client's), the text says it once.
                assert timed_out.value.method == "tag"
                assert str(timed_out.value).startswith("tag: could not send within")
                assert not timed_out.value.message.startswith("tag")
                assert c._link.paused  # still waiting for the server to read
                server.go.set()
                await asyncio.gather(*big)
                await c.tag("after")  # the connection goes on
                assert "never" not in server.seen and server.seen[-1] == "after"

        run(main)


def test_a_batch_waits_for_a_full_buffer_no_longer_than_the_timeout() -> None:
    with slow_reader(TagReader) as server:

        async def main() -> None:
            async with await aio.connect(*server.address, timeout=WAIT) as c:
                big = await fill(c)
                with pytest.raises(RPCTimeout, match="batch: could not send") as timed_out:
                    async with c.with_timeout(SHORT).batch() as batch:
                        batch.tag("never")
                assert timed_out.value.method is None  # a batch names no remote method (as the sync client's)
                server.go.set()
                await asyncio.gather(*big)
                await c.tag("after")
                assert "never" not in server.seen and server.seen[-1] == "after"

        run(main)


def test_a_batch_that_waited_to_be_written_gets_the_rest_of_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    with slow_reader(TagReader) as server:

        async def main() -> None:
            async with await aio.connect(*server.address, timeout=WAIT) as c:
                big = await fill(c)
                link = c._link
                given: list[float | None] = []
                expect = link.expect

                def recording(id_, method, timeout):  # type: ignore[no-untyped-def]
                    given.append(timeout)
                    return expect(id_, method, timeout)

                monkeypatch.setattr(link, "expect", recording)

                async def send_batch() -> list[object]:
                    async with c.batch() as batch:
                        results = [batch.tag("b1"), batch.tag("b2")]
                    return [result.result() for result in results]

                task = asyncio.ensure_future(send_batch())
                await asyncio.sleep(0.05)  # the batch waits for the buffer (no assertion on time)
                assert not task.done() and given == []
                server.go.set()
                await asyncio.gather(*big)
                assert len(await task) == 2
                assert len(given) == 2
                assert all(timeout is not None and 0 < timeout < WAIT for timeout in given), given

        run(main)


@pytest.mark.parametrize("timeout", [None, WAIT])
def test_a_wait_cut_short_by_the_caller_leaves_writing_paused_for_the_others(timeout: float | None) -> None:
    with slow_reader(TagReader) as server:

        async def main() -> None:
            async with await aio.connect(*server.address, timeout=timeout) as c:
                big = await fill(c)
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await c.notify("tag", "cut")
                assert c._link.paused  # the shared wait was not cancelled with it
                held = c.tag("held")  # so a new call is held, not written into the full buffer
                assert len(c._link._held) == 1
                server.go.set()
                await asyncio.gather(*big, held)
                assert server.seen[-1] == "held"

        run(main)
