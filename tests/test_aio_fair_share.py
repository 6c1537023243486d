"""aio.RPCServer: a large batch and the server's own back-pressure do not cost other clients.

A batch's members run through ``max_concurrent_calls`` workers that let the loop
run others every few members: a batch costs that many tasks, not one per member,
and another client is served while it runs. A connection whose request the server
does not read yet (``max_total_calls`` reached) is not idle: ``idle_timeout`` does
not close it, and it is answered once a slot frees; connections held back so
take turns, one call each, so one with a call waiting is not starved by many
that always have more.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from _aio_support import WAIT, RawConn, request, run, serving, until

from jsonrpc_mini import aio

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(120),
]

MEMBERS = 3_000
LIMIT = 8


def test_a_large_batch_runs_in_few_tasks_and_another_client_is_served_meanwhile() -> None:
    async def main() -> None:
        srv = aio.RPCServer(max_concurrent_calls=LIMIT)
        ran = 0
        most_tasks = 0
        batch_begun = asyncio.Event()

        @srv.register
        async def add(a: int, b: int) -> int:
            nonlocal ran, most_tasks
            ran += 1
            most_tasks = max(most_tasks, len(asyncio.all_tasks()))
            if ran == 100:
                batch_begun.set()
            return a + b

        @srv.register
        async def members_run() -> int:
            return ran

        async with serving(srv) as address:
            batcher = await aio.connect(*address, timeout=60)
            other = await aio.connect(*address, timeout=WAIT)
            tasks_before = len(asyncio.all_tasks())

            async def send_batch() -> list[int]:
                async with batcher.batch() as b:
                    results = [b.add(i, 1) for i in range(MEMBERS)]
                    b.notify("add", 0, 0)  # a notification: no reply entry
                    b.call("no_such_method")  # an error in its place
                return [r.result() for r in results]

            batch = asyncio.create_task(send_batch())
            async with asyncio.timeout(60):
                await batch_begun.wait()
            during = await other.members_run()  # another client's call while the batch runs
            assert await batch == [i + 1 for i in range(MEMBERS)]
            assert ran == MEMBERS + 1
            # One call per member at once made one task per member (3,000).
            assert most_tasks <= tasks_before + LIMIT + 4, most_tasks
            # Answered while the batch still ran (all members used to run in one loop step).
            assert during < MEMBERS, during
            await batcher.close()
            await other.close()

    run(main, timeout=110)


def _holding_server(**options: float) -> tuple[aio.RPCServer, asyncio.Event]:
    """An aio server (read_timeout 60 s) with ``hold()`` (returns "held" once the event is set) and ``add``."""
    srv = aio.RPCServer(read_timeout=60, **options)
    release = asyncio.Event()

    @srv.register
    async def hold() -> str:
        await release.wait()
        return "held"

    @srv.register
    def add(a: int, b: int) -> int:
        return a + b

    return srv, release


def _stepping_server(wait: Callable[[], Awaitable[object]]) -> tuple[aio.RPCServer, list[str]]:
    """An aio server (max_total_calls 1, read_timeout 60 s) whose ``step(tag)`` notes ``tag``, awaits ``wait()``.

    Returns the server and the list of tags in the order the calls began.
    """
    srv = aio.RPCServer(max_total_calls=1, read_timeout=60)
    order: list[str] = []

    @srv.register
    async def step(tag: str) -> str:
        order.append(tag)
        await wait()
        return tag

    return srv, order


def _pipelined(tag: str, count: int) -> bytes:
    """``count`` ``step(tag)`` requests (ids 0 to count - 1), one line each, to send at once."""
    return b"".join(json.dumps(request("step", [tag], i)).encode() + b"\n" for i in range(count))


def test_a_connection_held_at_max_total_calls_is_not_closed_as_idle() -> None:
    async def main() -> None:
        idle = 0.3
        srv, release = _holding_server(max_total_calls=2, idle_timeout=idle)

        async with serving(srv) as address:
            hogs = [await aio.connect(*address, timeout=WAIT) for _ in range(2)]
            holds = [asyncio.create_task(c.hold()) for c in hogs]
            await until(lambda: srv.total_busy >= 2)
            good = await aio.connect(*address, timeout=WAIT)
            call = asyncio.ensure_future(good.add(1, 2))
            await until(lambda: srv._blocked)  # its request read, not taken: the server holds it
            await asyncio.sleep(4 * idle)  # idle_timeout passes while it is held
            assert not call.done()
            release.set()
            assert await call == 3  # was: ConnectionLost "connection closed by the server"
            assert await asyncio.gather(*holds) == ["held", "held"]
            for c in (*hogs, good):
                await c.close()

    run(main)


def test_a_held_connection_is_idle_again_once_it_may_read() -> None:
    async def main() -> None:
        idle = 0.3
        srv, release = _holding_server(max_total_calls=1, idle_timeout=idle)

        async with serving(srv) as address:
            hog = await aio.connect(*address, timeout=WAIT)
            held = asyncio.create_task(hog.hold())
            await until(lambda: srv.total_busy >= 1)
            good = await aio.connect(*address, timeout=WAIT)
            call = asyncio.ensure_future(good.add(1, 2))
            await until(lambda: srv._blocked)
            release.set()
            assert await call == 3
            assert await held == "held"
            await until(lambda: not srv.connection_count)  # both idle now: idle_timeout closes them
            for c in (hog, good):
                await c.close()

    run(main)


def test_connections_held_at_max_total_calls_take_turns() -> None:
    """A connection with one call waiting is not starved by many that always have more.

    Held back by ``max_total_calls``, connections are woken in the order they were
    held, one for each free slot, and take one call per turn (one with more goes
    to the back; one whose call ends does not take the freed slot ahead of the
    others). They used to be woken all at once in a set's order, and the first
    took every free slot: clients behind pipelining ones (say, clients that
    pipeline calls and hang up) waited for all of their calls (up to 600 here).
    """
    hogs, each, goods = 30, 20, 3

    async def main() -> None:
        gate = asyncio.Event()  # the first call holds the one slot until every call is read
        srv, order = _stepping_server(gate.wait)

        async with serving(srv) as address:
            conns: list[RawConn] = []
            try:
                for h in range(hogs):
                    conns.append(await RawConn.open(address))
                    await conns[-1].send(_pipelined(f"h{h}", each))
                    await until(lambda: len(srv._blocked) == len(conns))  # (hog 0 holds the slot and waits too)
                for g in range(goods):
                    conns.append(await RawConn.open(address))
                    await conns[-1].send(request("step", [f"good{g}"], g))
                    await until(lambda: len(srv._blocked) == len(conns))
                gate.set()
                for g, conn in enumerate(conns[hogs:]):
                    assert await conn.recv() == {"jsonrpc": "2.0", "id": g, "result": f"good{g}"}
                # Each one's turn came after one call of each connection ahead of it (was:
                # after every call of the connections woken before it, hundreds of calls).
                positions = [order.index(f"good{g}") for g in range(goods)]
                assert positions == [hogs + 1 + g for g in range(goods)], positions
                await until(lambda: len(order) == hogs * each + goods and srv.total_busy == 0)
                # Every hog's calls were answered, in its own order.
                for h, conn in enumerate(conns[:hogs]):
                    assert [await conn.recv() for _ in range(each)] == [
                        {"jsonrpc": "2.0", "id": i, "result": f"h{h}"} for i in range(each)
                    ]
            finally:
                gate.set()
                for conn in conns:
                    await conn.close()

    run(main, timeout=110)


def test_a_held_connection_that_hangs_up_leaves_no_queue_behind() -> None:
    """The last held connection gone, others take calls freely again.

    While any connection is held back, the others queue behind it; once the last
    one goes, nothing is held and a new connection must not queue behind nobody
    (with no call left running, nothing would ever wake it).
    """

    async def main() -> None:
        srv, release = _holding_server(max_total_calls=1)

        async with serving(srv) as address:
            hog = await RawConn.open(address)
            await hog.send(request("add", [1, 1], 0))
            assert (await hog.recv())["result"] == 2
            await hog.send(request("hold", [], 1))  # (a line of known framing: taken, not held)
            await until(lambda: srv.total_busy == 1)
            before = set(srv._conns)
            leaver = await RawConn.open(address)
            await leaver.send(request("add", [1, 2]))
            await until(lambda: len(srv._conns) == 2)
            (held,) = set(srv._conns) - before
            await until(lambda: held in srv._blocked)
            held.abort()  # the server drops it (as it does a peer that does not read)
            await until(lambda: srv.connection_count == 1)
            release.set()
            assert await hog.recv() == {"jsonrpc": "2.0", "id": 1, "result": "held"}
            await until(lambda: srv.total_busy == 0)
            late = await aio.connect(*address, timeout=WAIT)
            assert await late.add(2, 3) == 5  # was held for good: no call left to end and wake it
            await late.close()
            for conn in (hog, leaver):
                await conn.close()

    run(main)


def _laid_out(members: list[dict[str, Any]], layout: str) -> bytes:
    """A batch of ``members`` on the wire, laid out as ``layout`` says."""
    compact = json.dumps(members).encode()
    if layout == "compact":
        return compact + b"\n"
    if layout == "space":  # JSON whitespace before the batch
        return b" \t\r\n " + compact + b"\n"
    if layout == "pretty":  # over several lines, the README's "pretty-printed" form
        return b"[\n" + b",\n".join(json.dumps(m).encode() for m in members) + b"\n]\n"
    if layout == "split":  # members on lines of their own
        return compact.replace(b"},", b"}\n,") + b"\n"
    if layout == "break":  # a first line that ends in "]" inside the first member
        return compact.replace(b"],", b"]\n,", 1) + b"\n"
    assert layout == "content-length"
    return b"Content-Length: %d\r\n\r\n" % len(compact) + compact


async def _reply(conn: RawConn, layout: str) -> Any:
    """The next reply on ``conn``, framed as the batch it answers was (``_laid_out``)."""
    if layout != "content-length":
        return await conn.recv()
    async with asyncio.timeout(WAIT):
        head = await conn.reader.readuntil(b"\r\n\r\n")
        return json.loads(await conn.reader.readexactly(int(head.split(b":")[1].split(b"\r\n")[0])))


@pytest.mark.parametrize("layout", ["compact", "space", "pretty", "split", "break", "content-length"])
def test_a_call_held_behind_large_batches_is_not_served_after_them(layout: str) -> None:
    """Held connections are served by weight: a batch of n members weighs about n calls.

    Three connections each send a batch of 40, then one sends a single call, all
    held at ``max_total_calls``: the call is taken before the batches (each would
    have to wait until the others took about 40 calls each). It used to wait for
    all three batches, each turn being a whole batch: clients that send large
    batches and hang up kept others waiting for seconds. However the batch is
    laid out: whitespace before it, over several lines, or framed by
    Content-Length, it weighs the same (each of these weighed 1 call once).
    """
    batchers, members = 3, 40

    async def main() -> None:
        gate = asyncio.Event()  # the first call holds the one slot until every message is read
        srv, order = _stepping_server(gate.wait)

        async with serving(srv) as address:
            conns: list[RawConn] = []
            try:
                conns.append(await RawConn.open(address))
                await conns[0].send(request("step", ["hog"], 0))
                await until(lambda: srv.total_busy == 1)
                for k in range(batchers):
                    conns.append(await RawConn.open(address))
                    await conns[-1].send(_laid_out([request("step", [f"b{k}"], i) for i in range(members)], layout))
                    await until(lambda: len(srv._blocked) == len(conns) - 1)
                conns.append(await RawConn.open(address))
                await conns[-1].send(request("step", ["good"], 7))
                await until(lambda: len(srv._blocked) == len(conns) - 1)
                gate.set()
                assert await conns[-1].recv() == {"jsonrpc": "2.0", "id": 7, "result": "good"}
                assert await conns[0].recv() == {"jsonrpc": "2.0", "id": 0, "result": "hog"}
                for k, conn in enumerate(conns[1:-1]):
                    replies = await _reply(conn, layout)
                    assert replies == [{"jsonrpc": "2.0", "id": i, "result": f"b{k}"} for i in range(members)]
                assert order.index("good") == 1, order  # (was 1 + 3 * 40: after every batch)
                # The batches in the order they were held, each whole.
                assert order[2:] == [f"b{k}" for k in range(batchers) for _ in range(members)]
            finally:
                gate.set()
                for conn in conns:
                    await conn.close()

    run(main)


def test_a_connection_held_later_does_not_go_before_the_calls_already_waiting() -> None:
    """A connection held later starts its share where the queue is (the virtual time), not at 0.

    Two connections pipelining calls take 20 turns each; then a third is held with
    a batch of 10: it comes after 8 more calls of each (the calls ahead of it
    weigh less than its batch), not at once as if the others had used up a share
    it never had.
    """
    each, later = 40, 10

    async def main() -> None:
        steps = asyncio.Semaphore(0)  # each call ends when the test lets it
        srv, order = _stepping_server(steps.acquire)

        async def release_until(count: int) -> None:
            while len(order) < count:
                done = len(order)
                steps.release()
                await until(lambda done=done: len(order) > done or srv.total_busy == 0)

        async with serving(srv) as address:
            conns: list[RawConn] = []
            try:
                for tag in ("a", "b"):
                    conns.append(await RawConn.open(address))
                    await conns[-1].send(_pipelined(tag, each))
                await until(lambda: len(srv._blocked) == 2)
                await release_until(41)  # 20 turns each (and the first call)
                conns.append(await RawConn.open(address))
                await conns[-1].send([request("step", ["c"], i) for i in range(later)])
                await until(lambda: len(srv._blocked) == 3)
                for _ in range(2 * each + later):
                    steps.release()  # (the rest end at once, in the order they are taken)
                await until(lambda: len(order) == 2 * each + later)
                first_c = order.index("c")
                # 8 more calls of a and b each first (was: at once, position 42). Stepped, so exact:
                # the 41st call (b's 20th turn) began at tag 19, the virtual time c starts at, so
                # c's batch ends at 19 + 10 = 29; a's and b's next calls end at 21, 22, ...: those
                # ending at 21..28 go first, and at 29 c goes first (held before those calls).
                assert first_c == 41 + 2 * (later - 2), "".join(order)
                assert order.count("c") == later
            finally:
                for _ in range(3 * each):
                    steps.release()
                for conn in conns:
                    await conn.close()

    run(main)


@pytest.mark.parametrize("layout", ["pretty", "content-length", "content-length-headers"])
def test_a_batch_whose_rest_comes_later_weighs_its_members_too(layout: str) -> None:
    """The rest of a batch that arrives while the connection is held again weighs its members.

    A batch's first member is read and given to the core on a turn (nothing to
    take yet: the turn goes to the next); its other 39 come while a call runs:
    held again, they weigh 39, so a single call held after them still goes
    first. (Bytes that continue a value weighed 1 once, whatever they held.) So
    does a Content-Length frame that comes after another, whatever its headers.
    """
    members = 40
    framed = layout == "content-length-headers"

    async def main() -> None:
        steps = asyncio.Semaphore(0)  # each call ends when the test lets it
        srv, order = _stepping_server(steps.acquire)

        @srv.register
        async def note() -> None:
            pass

        wire = _laid_out([request("step", ["b"], i) for i in range(members)], "content-length" if framed else layout)
        cut = wire.index(b"}") + 1  # the first member, whole
        if framed:  # a whole frame first (a notification), then the batch's, with another header first
            first = json.dumps(request("note", None, None)).encode()
            wire = b"Content-Length: %d\r\n\r\n%s" % (len(first), first) + b"X-Note: 1\r\n" + wire
            cut = wire.index(b"X-Note")
        async with serving(srv) as address:
            conns: list[RawConn] = []
            try:
                hog, batch, other, good = [await RawConn.open(address) for _ in range(4)]
                conns += [hog, batch, other, good]
                await hog.send(request("step", ["hog"], 0))
                await until(lambda: srv.total_busy == 1)
                held = len(srv._blocked)  # (counted, not assumed: the hog's may be held too, with nothing to take)
                await batch.send(wire[:cut])
                await until(lambda: len(srv._blocked) == held + 1)
                await other.send(_pipelined("other", 3))
                await until(lambda: len(srv._blocked) == held + 2)
                steps.release()  # the hog ends: the batch's turn feeds its first member, then "other" runs
                await until(lambda: order == ["hog", "other"])
                for taken in (3, 4):  # other's calls on turns move the virtual time on (to 2)
                    steps.release()
                    await until(lambda taken=taken: len(order) == taken)
                await until(lambda: not srv._waking)
                held = len(srv._blocked)
                await batch.send(wire[cut:])
                await until(lambda: len(srv._blocked) == held + 1)
                await good.send(request("step", ["good"], 7))
                await until(lambda: len(srv._blocked) == held + 2)
                for _ in range(members + 2):
                    steps.release()  # (the rest end at once, in the order they are taken)
                for i in range(3):
                    assert await other.recv() == {"jsonrpc": "2.0", "id": i, "result": "other"}
                assert await good.recv() == {"jsonrpc": "2.0", "id": 7, "result": "good"}
                replies = await _reply(batch, "content-length" if framed else layout)
                assert replies == [{"jsonrpc": "2.0", "id": i, "result": "b"} for i in range(members)]
                assert order == ["hog"] + ["other"] * 3 + ["good"] + ["b"] * members  # (was: good after the batch)
            finally:
                for _ in range(members + 3):
                    steps.release()
                for conn in conns:
                    await conn.close()

    run(main)


def test_a_compact_batch_weighs_its_own_line_not_the_calls_sent_after_it() -> None:
    """A batch on one line weighs its members only: calls pipelined after it weigh 1 each when held.

    One connection sends a batch of 2 then 10 calls at once, another a batch of 3:
    the batch of 2 goes first (had the calls after it been counted in, 12 against
    3, the batch of 3 would).
    """
    calls = 10

    async def main() -> None:
        gate = asyncio.Event()
        srv, order = _stepping_server(gate.wait)

        async with serving(srv) as address:
            conns: list[RawConn] = []
            try:
                hog, x, y = [await RawConn.open(address) for _ in range(3)]
                conns += [hog, x, y]
                await hog.send(request("step", ["hog"], 0))
                await until(lambda: srv.total_busy == 1)
                held = len(srv._blocked)
                await x.send(
                    _laid_out([request("step", ["xb"], i) for i in range(2)], "compact") + _pipelined("xc", calls)
                )
                await until(lambda: len(srv._blocked) == held + 1)
                await y.send(_laid_out([request("step", ["y"], i) for i in range(3)], "compact"))
                await until(lambda: len(srv._blocked) == held + 2)
                gate.set()
                assert await x.recv() == [{"jsonrpc": "2.0", "id": i, "result": "xb"} for i in range(2)]
                assert await y.recv() == [{"jsonrpc": "2.0", "id": i, "result": "y"} for i in range(3)]
                for i in range(calls):
                    assert await x.recv() == {"jsonrpc": "2.0", "id": i, "result": "xc"}
                assert order[:6] == ["hog", "xb", "xb", "y", "y", "y"], order
            finally:
                gate.set()
                for conn in conns:
                    await conn.close()

    run(main)
