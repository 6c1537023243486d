"""A reply the client cannot use fails its call at once, on both clients.

A reply that names a pending call but is nested deeper than the client's
``max_depth`` or is not valid JSON-RPC 2.0 used to be logged and dropped, so
the call waited for its timeout (for ever without one). Our servers no longer
write an error code a client cannot read.
"""

from __future__ import annotations

import asyncio
import enum
import json
from typing import Any

import pytest
from _aio_support import run
from _aio_support import serving as aio_serving
from _driver_helpers import WAIT, FakeServer, LeakCheck, Peer, serving

from jsonrpc_mini import ConnectionLost, InternalError, RPCClient, RPCError, RPCServer, RPCTimeout, aio
from jsonrpc_mini._client_protocol import ClientConnection
from jsonrpc_mini._codec import Response
from jsonrpc_mini._json import JsonCodec
from jsonrpc_mini._protocol import Violation
from jsonrpc_mini.testing import AioLoopbackServer, FaultPlan, LoopbackServer, aio_loopback, loopback

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def nest(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _deep(depth: int) -> Any:
    return nest(depth)


def _unusable(exc: BaseException, method: str, words: str) -> None:
    assert type(exc) is RPCError, repr(exc)  # not RPCTimeout, not ConnectionLost
    assert exc.code is None and exc.method == method
    assert "reply cannot be used" in str(exc) and words in str(exc)


# -- results nested deeper than the client reads ----------------------------------


def _sync_server() -> RPCServer:
    s = RPCServer()
    s.register_function(_deep, name="deep")
    return s


def test_a_result_too_deep_for_the_client_fails_its_call_and_the_connection_stays() -> None:
    with serving(_sync_server()) as address, RPCClient(*address, timeout=WAIT) as c:
        with pytest.raises(RPCError) as info:
            c.deep(200)
        _unusable(info.value, "deep", "max_depth (128 levels)")
        assert c.deep(100) == nest(100)  # same connection, next reply read as usual
    with serving(_sync_server()) as address, RPCClient(*address, timeout=WAIT, max_depth=300) as c:
        assert c.deep(200) == nest(200)


@pytest.mark.parametrize("seed", range(3))
def test_a_too_deep_result_arriving_in_pieces_fails_its_call(seed: int) -> None:
    with loopback(_sync_server(), FaultPlan(seed=seed, max_chunk=97), timeout=WAIT) as c:
        with pytest.raises(RPCError) as info:
            c.deep(150)
        _unusable(info.value, "deep", "max_depth")
        assert c.deep(3) == nest(3)


def test_a_too_deep_batch_member_fails_that_member_only() -> None:
    with serving(_sync_server()) as address, RPCClient(*address, timeout=WAIT) as c:
        with c.batch() as b:
            shallow, deep = b.deep(2), b.deep(200)
        assert shallow.result() == nest(2)
        with pytest.raises(RPCError) as info:
            deep.result()
        _unusable(info.value, "deep", "max_depth")


def test_the_aio_client_fails_a_too_deep_result_and_goes_on() -> None:
    async def main() -> None:
        s = aio.RPCServer()
        s.register_function(_deep, name="deep")
        async with aio_serving(s) as (host, port):
            async with await aio.connect(host, port, timeout=WAIT) as c:
                with pytest.raises(RPCError) as info:
                    await c.deep(200)
                _unusable(info.value, "deep", "max_depth (128 levels)")
                assert await c.deep(5) == nest(5)
            async with await aio.connect(host, port, timeout=WAIT, max_depth=250) as c:
                assert await c.deep(200) == nest(200)

    run(main)


@pytest.mark.parametrize("bad", [0, -1])
def test_max_depth_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError, match="max_depth"):
        RPCClient(max_depth=bad)

    async def main() -> None:
        with pytest.raises(ValueError, match="max_depth"):
            await aio.connect("127.0.0.1", 1, max_depth=bad)

    run(main)


# -- error codes a handler gets wrong ----------------------------------------------


@pytest.mark.parametrize("code", ["abc", True, 1.5, None])
def test_a_handler_error_without_an_integer_code_is_an_internal_error(code: Any) -> None:
    def broken() -> None:
        raise RPCError(code, "custom")

    def lost() -> None:
        raise ConnectionLost("a call the handler made lost its connection")

    s = RPCServer()
    s.register_function(broken)
    s.register_function(lost)
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        with pytest.raises(InternalError, match="broken"):
            c.broken()
        with pytest.raises(InternalError, match="lost"):
            c.lost()


@pytest.mark.parametrize("code", ["abc", True, 1.5])
def test_the_aio_server_answers_a_non_integer_code_as_an_internal_error(code: Any) -> None:
    async def broken() -> None:
        raise RPCError(code, "custom")

    async def main() -> None:
        s = aio.RPCServer()
        s.register_function(broken)
        async with aio_serving(s) as (host, port), await aio.connect(host, port, timeout=WAIT) as c:
            with pytest.raises(InternalError, match="broken"):
                await c.broken()

    run(main)


def test_an_integer_code_subclass_is_sent_as_its_number() -> None:
    class Code(enum.IntEnum):
        TEAPOT = 418

    def teapot() -> None:
        raise RPCError(Code.TEAPOT, "short and stout")

    s = RPCServer()
    s.register_function(teapot)
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        with pytest.raises(RPCError) as info:
            c.teapot()
        assert info.value.code == 418 and type(info.value.code) is int


# -- replies of lenient peers --------------------------------------------------------

_ODD = [
    ({"result": 3, "error": None}, "'error': None"),  # both members, as JSON-RPC 1.0 peers write
    ({"result": 3, "jsonrpc": None}, "'result': 3"),  # not "2.0"
    ({"error": {"code": "-32000", "message": "x"}}, "'code': '-32000'"),
    ({"error": "it broke"}, "it broke"),
]


def _odd_script(reply: dict[str, Any]) -> Any:
    def script(peer: Peer) -> None:
        req = peer.json_line()
        peer.sendall(json.dumps({"jsonrpc": "2.0", "id": req["id"], **reply}).encode() + b"\n")
        req = peer.json_line()
        # A request from the server that happens to carry the pending id is not its answer.
        peer.sendall(json.dumps({"jsonrpc": "2.0", "method": "ping", "id": req["id"]}).encode() + b"\n")
        peer.sendall(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "fine"}).encode() + b"\n")
        peer.until(b"\n")

    return script


@pytest.mark.parametrize(("reply", "words"), _ODD)
def test_an_invalid_reply_fails_its_call_at_once(reply: dict[str, Any], words: str) -> None:
    with FakeServer(_odd_script(reply)) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        with pytest.raises(RPCError) as info:
            c.odd()
        _unusable(info.value, "odd", words)
        assert c.after() == "fine"
        c.notify("bye")
    assert not fake.errors


@pytest.mark.parametrize(("reply", "words"), _ODD)
def test_the_aio_client_fails_an_invalid_reply_at_once(reply: dict[str, Any], words: str) -> None:
    async def main() -> None:
        async with await aio.connect(*fake.address, timeout=WAIT) as c:
            with pytest.raises(RPCError) as info:
                await c.odd()
            _unusable(info.value, "odd", words)
            assert await c.after() == "fine"
            await c.notify("bye")

    with FakeServer(_odd_script(reply)) as fake:
        run(main)
    assert not fake.errors


def test_an_invalid_reply_for_a_call_that_timed_out_is_dropped() -> None:
    def script(peer: Peer) -> None:
        first = peer.json_line()
        second = peer.json_line()  # sent once the first call has timed out
        peer.sendall(json.dumps({"id": first["id"], "result": 1}).encode() + b"\n")
        peer.sendall(json.dumps({"jsonrpc": "2.0", "id": second["id"], "result": 2}).encode() + b"\n")
        peer.until(b"\n")

    with FakeServer(script) as fake, RPCClient(*fake.address, timeout=WAIT) as c:
        with pytest.raises(RPCTimeout):
            c.with_timeout(0.2).first()
        assert c.second() == 2
        c.notify("bye")
    assert not fake.errors


# -- what a handler returns or raises that cannot be shown or encoded (review8 F8, F10) --


class _Unshowable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class _LazyRows(list):  # type: ignore[type-arg]
    """A result whose iteration fails as it is encoded (a lazy query set, say)."""

    def __iter__(self) -> Any:
        raise RuntimeError("the database went away")


def _bad_handlers(server: Any) -> None:
    def unshowable() -> None:
        raise RPCError(-32000, _Unshowable())  # type: ignore[arg-type]

    def rows(n: int = 0) -> Any:
        return _LazyRows([n])

    async def arows(n: int = 0) -> Any:
        return _LazyRows([n])

    def add(a: int, b: int) -> int:
        return a + b

    for function in (unshowable, rows, arows, add):
        server.register_function(function)


def test_an_unshowable_error_or_unencodable_result_is_an_internal_error_and_the_connection_stays() -> None:
    s = RPCServer()
    _bad_handlers(s)
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        for method in ("unshowable", "rows", "arows", "unshowable"):
            with pytest.raises(InternalError):
                c.call(method)
        with pytest.raises(InternalError):
            c.rows(1)  # the usual request's own path (params an array)
        with c.batch() as b:
            first, bad, last = b.add(1, 2), b.rows(), b.add(3, 4)
        assert (first.result(), last.result()) == (3, 7)
        with pytest.raises(InternalError):
            bad.result()
        assert c.add(5, 6) == 11


def test_the_aio_server_answers_them_and_keeps_every_slot() -> None:
    async def main() -> None:
        s = aio.RPCServer(max_concurrent_calls=4)
        _bad_handlers(s)
        async with aio_serving(s) as (host, port), await aio.connect(host, port, timeout=WAIT) as c:
            # More failing calls than there are slots, several finishing together: each
            # is answered and gives its slot back (they used to leak, then wedge the pool).
            methods = ["rows", "unshowable", "arows"] * 4
            outcomes = await asyncio.gather(
                *(c.call(m, 1) if m != "unshowable" else c.call(m) for m in methods), return_exceptions=True
            )
            assert all(isinstance(o, InternalError) for o in outcomes), outcomes
            async with c.batch() as b:
                first, bad = b.add(1, 2), b.rows()
            assert first.result() == 3
            with pytest.raises(InternalError):
                bad.result()
            assert await c.add(2, 2) == 4
            assert s.total_busy == 0

    run(main)


# -- replies nested past what a decoder reads (review8 F1, F2) -------------------------


def test_a_reply_past_the_decoders_reach_is_refused_as_it_arrives() -> None:
    # No decoder reads 2,000 levels: the client refuses the line at once (not after
    # scanning it to its end) and reads the next reply.
    proto = ClientConnection(max_depth=128)
    proto.receive_data(b"[" * 2000 + b"\n" + b'{"jsonrpc":"2.0","id":1,"result":2}\n')
    events = []
    while (event := proto.next_event()) is not None:
        events.append(event)
    assert len(events) == 2 and isinstance(events[0], Violation) and events[0].id is None
    assert events[1] == Response(1, 2)


def test_an_invalid_reply_too_deep_to_print_still_fails_its_call() -> None:
    # 1,012 levels: orjson decodes it; str() of it would raise RecursionError.
    deep = b"[" * 1010 + b"0" + b"]" * 1010
    proto = ClientConnection(max_depth=1020, codec=JsonCodec(use_orjson=True))
    proto.receive_data(b'{"id":4,"result":' + deep + b"}\n")  # no "jsonrpc": not 2.0
    (event,) = [proto.next_event()]
    assert isinstance(event, Violation) and event.id == 4
    assert "not a JSON-RPC 2.0 response" in event.reason and len(event.reason) < 400


@pytest.mark.parametrize("bad", [2.5, "3", True, 0])
def test_limits_must_be_positive_integers(bad: Any) -> None:
    for make in (
        lambda: RPCClient(max_depth=bad),
        lambda: RPCServer(max_depth=bad),
        lambda: aio.RPCServer(max_depth=bad),
    ):
        with pytest.raises(ValueError, match="max_depth"):
            make()
    with pytest.raises(ValueError, match="max_message_size"):
        RPCClient(max_message_size=bad)


# -- handlers raising what is not an Exception (review8 F11) -----------------------------

_NOT_EXCEPTIONS = [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), asyncio.CancelledError()]


def _raiser(exc: BaseException) -> Any:
    def boom(*args: Any) -> None:
        raise exc

    return boom


@pytest.mark.parametrize("exc", _NOT_EXCEPTIONS, ids=lambda e: type(e).__name__)
def test_the_sync_server_answers_a_handler_raising_a_base_exception(exc: BaseException) -> None:
    s = RPCServer()
    s.register_function(_raiser(exc), name="boom")
    s.register_function(lambda a: a, name="same")
    with serving(s) as address, RPCClient(*address, timeout=WAIT) as c:
        with pytest.raises(InternalError):
            c.boom()
        with pytest.raises(InternalError):
            c.boom(1)  # the usual request's own path (params an array)
        with c.batch() as b:
            bad, good = b.boom(), b.same(5)
        with pytest.raises(InternalError):
            bad.result()
        assert good.result() == 5 and c.same(1) == 1  # same connection


@pytest.mark.parametrize("exc", _NOT_EXCEPTIONS, ids=lambda e: type(e).__name__)
def test_the_aio_server_answers_a_pool_handler_raising_a_base_exception(exc: BaseException) -> None:
    async def main() -> None:
        s = aio.RPCServer()
        s.register_function(_raiser(exc), name="boom")
        async with aio_serving(s) as (host, port), await aio.connect(host, port, timeout=WAIT) as c:
            with pytest.raises(InternalError):
                await c.boom()
            assert s.total_busy == 0

    run(main)


# -- the test kit's clients take the limits too (review8 N2) ---------------------------


def test_the_test_kits_sync_clients_take_max_depth_and_max_message_size() -> None:
    with loopback(_sync_server(), timeout=WAIT) as c, pytest.raises(RPCError, match="max_depth"):
        c.deep(200)
    with loopback(_sync_server(), FaultPlan(seed=2, max_chunk=50), timeout=WAIT, max_depth=300) as c:
        assert c.deep(200) == nest(200)
    with loopback(_sync_server(), timeout=WAIT, max_message_size=100) as c, pytest.raises(ConnectionLost, match="100"):
        c.deep(100)
    with LoopbackServer(_sync_server(), FaultPlan(seed=4, max_chunk=50)) as lb:
        assert lb.client(max_depth=300).deep(200) == nest(200)
        with pytest.raises(ConnectionLost, match="100"):
            lb.client(max_message_size=100).deep(100)


def test_the_test_kits_aio_clients_take_max_depth_and_max_message_size() -> None:
    async def main() -> None:
        s = aio.RPCServer()
        s.register_function(_deep, name="deep")
        async with aio_loopback(s, timeout=WAIT, max_depth=300) as c:
            assert await c.deep(200) == nest(200)
        async with aio_loopback(s, timeout=WAIT, max_message_size=100) as c:
            with pytest.raises(ConnectionLost, match="100"):
                await c.deep(100)
        async with AioLoopbackServer(s, FaultPlan(seed=6, max_chunk=50)) as lb:
            assert await (await lb.client(max_depth=300)).deep(200) == nest(200)
            with pytest.raises(ConnectionLost, match="100"):
                await (await lb.client(max_message_size=100)).deep(100)

    run(main)


@pytest.mark.parametrize("raised", [asyncio.CancelledError, GeneratorExit], ids=["CancelledError", "GeneratorExit"])
@pytest.mark.parametrize("pause", [False, True])
def test_the_aio_server_answers_an_async_handler_raising_cancelled_error_or_generator_exit_itself(
    pause: bool, raised: type[BaseException]
) -> None:
    # review15 N9: GeneratorExit raised in the first step ended the call runner with no reply.
    async def raises() -> None:
        if pause:
            await asyncio.sleep(0)  # raised after the call first waited (it then has a task of its own)
        raise raised

    async def main() -> None:
        s = aio.RPCServer(max_concurrent_calls=2)
        s.register_function(raises)
        s.register_function(lambda: 1, name="one")
        async with aio_serving(s) as (host, port), await aio.connect(host, port, timeout=WAIT) as c:
            for _ in range(3):  # more than the connection's call limit: each slot was given back
                with pytest.raises(InternalError) as caught:
                    await c.raises()
                assert caught.value.code == -32603
            assert await c.one() == 1
            assert s.total_busy == 0

    run(main)
