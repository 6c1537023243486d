"""A reply the client cannot use fails its call at once, on both clients.

A reply that names a pending call but is nested deeper than the client's
``max_depth`` or is not valid JSON-RPC 2.0 used to be logged and dropped, so
the call waited for its timeout (for ever without one). Our servers no longer
write an error code a client cannot read.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import pytest
from _aio_support import run
from _aio_support import serving as aio_serving
from _driver_helpers import WAIT, FakeServer, LeakCheck, Peer, serving

from jsonrpc_mini import ConnectionLost, InternalError, RPCClient, RPCError, RPCServer, RPCTimeout, aio
from jsonrpc_mini.testing import FaultPlan, loopback

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
