"""The asyncio test kit: aio_loopback, AioLoopbackServer and the in-memory faulty link."""

from __future__ import annotations

import asyncio
import threading

import pytest
from _aio_support import WAIT, run

from jsonrpc_mini import RPCClient, aio
from jsonrpc_mini.testing import AioLoopbackServer, DirectionFaults, FaultPlan, LinkState, aio_loopback
from jsonrpc_mini.testing._aio_links import memory_link

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def make_server() -> tuple[aio.RPCServer, list[str]]:
    server = aio.RPCServer()
    notes: list[str] = []

    @server.register
    async def add(a: int, b: int) -> int:
        return a + b

    server.register_function(notes.append, name="note")
    return server, notes


class Recorder(asyncio.Protocol):
    """Records what a transport delivers."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.eof = asyncio.Event()
        self.lost: list[Exception | None] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def eof_received(self) -> bool:
        self.eof.set()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


async def chunk_sizes(plan: FaultPlan, data: bytes) -> list[int]:
    sender, receiver = Recorder(), Recorder()
    client_end, server_end, link = memory_link(sender, receiver, plan)
    client_end.write(data)
    client_end.write_eof()
    await asyncio.wait_for(receiver.eof.wait(), WAIT)
    assert b"".join(receiver.chunks) == data
    server_end.close()
    await link.wait_closed(WAIT)
    return [len(chunk) for chunk in receiver.chunks]


def expected_sizes(plan: FaultPlan, data: bytes) -> list[int]:
    """What the pure plan decides for the same bytes (as the blocking driver would apply)."""
    state = LinkState(plan).client_to_server
    sizes, pos = [], 0
    while pos < len(data):
        step = state.next_step(memoryview(data)[pos:])
        state.commit(data[pos : pos + step.size], step)
        sizes.append(step.size)
        pos += step.size
    return sizes


def test_memory_link_cuts_where_the_plan_says() -> None:
    data = 'é€🎉\\"x\r\n'.encode() * 40

    async def main() -> None:
        plan = FaultPlan(seed=11, max_chunk=5, awkward_splits=True)
        sizes = await chunk_sizes(plan, data)
        assert max(sizes) <= 5 and len(sizes) > len(data) // 5
        assert sizes == expected_sizes(plan, data)
        assert await chunk_sizes(plan, data) == sizes  # same seed, same cuts
        assert await chunk_sizes(plan.replace(seed=12), data) != sizes
        assert await chunk_sizes(FaultPlan(), data) == [len(data)]

    run(main)


def test_memory_link_latency_and_reset() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        sender, receiver = Recorder(), Recorder()
        plan = FaultPlan(seed=1, latency=0.05, client_to_server=DirectionFaults(latency=0.05, reset_after=4))
        client_end, _, link = memory_link(sender, receiver, plan)
        started = loop.time()
        client_end.write(b"abcdefgh")
        await link.wait_closed(WAIT)  # the reset ends both directions
        assert loop.time() - started >= 0.05  # held back by the latency first
        assert b"".join(receiver.chunks) == b"abcd"  # then reset after 4 bytes
        assert len(receiver.lost) == 1 and isinstance(receiver.lost[0], ConnectionResetError)
        assert "FaultPlan(seed=1" in str(receiver.lost[0])  # the reason names the plan
        assert len(sender.lost) == 1 and isinstance(sender.lost[0], ConnectionResetError)

    run(main)


def test_aio_loopback_calls_and_notifications() -> None:
    async def main() -> None:
        server, notes = make_server()
        async with aio_loopback(server) as client:
            assert await client.add(1, 2) == 3
            assert await asyncio.gather(*(client.add(i, 1) for i in range(50))) == list(range(1, 51))
            await client.notify("note", "last")  # sent right before exit: still runs
        assert notes == ["last"]
        async with aio_loopback(server, FaultPlan(seed=2, max_chunk=1)) as client:
            assert await client.add(20, 22) == 42
        await server.shutdown()

    run(main)


def test_aio_loopback_refusal_and_faults_name_the_seed() -> None:
    async def main() -> None:
        server, _ = make_server()
        with pytest.raises(aio.ConnectionLost, match="refused"):
            async with aio_loopback(server, FaultPlan(seed=9, refuse_connect=True)):
                pass
        with pytest.raises(aio.ConnectionLost) as err:
            async with aio_loopback(server, FaultPlan(seed=77, disconnect_after=30)) as client:
                await client.add(1, 2)
        assert any("seed=77" in note for note in err.value.__notes__)
        await server.shutdown()

    run(main)


def test_aio_loopback_server_proxies_with_faults() -> None:
    async def main() -> None:
        server, _ = make_server()
        async with AioLoopbackServer(server, FaultPlan(seed=5, max_chunk=3, latency=0.001)) as lb:
            assert lb.address != lb.direct_address
            client = await lb.client()
            assert await client.add(2, 3) == 5
            async with await aio.connect(*lb.direct_address) as direct:
                assert await direct.add(1, 1) == 2
        assert server.address is None  # started by the kit, so shut down by it
        # a server already listening is left running
        address = await server.start("127.0.0.1", 0)
        async with AioLoopbackServer(server) as lb:
            assert lb.direct_address == address
            client = await lb.client(framing="content-length")
            assert await client.add(1, 2) == 3
        assert server.address == address
        await server.shutdown()
        async with AioLoopbackServer(server, FaultPlan(seed=6, refuse_connect=True)) as lb:
            with pytest.raises(aio.ConnectionLost, match="cannot connect") as err:
                await lb.client()  # the port really refuses: any client sees it
            assert "seed=6" in err.value.__notes__[0]

    run(main)


def test_aio_loopback_server_serves_a_sync_client_through_faults() -> None:
    async def main() -> None:
        server, _ = make_server()
        async with AioLoopbackServer(server, FaultPlan(seed=3, max_chunk=2)) as lb:
            results: list[object] = []

            def sync_client() -> None:
                with RPCClient(*lb.address, timeout=WAIT) as c:
                    results.extend([c.add(1, 2), c.add(3, 4)])

            thread = threading.Thread(target=sync_client)
            thread.start()
            await asyncio.to_thread(thread.join, WAIT)
            assert results == [3, 7]

    run(main)
