"""A result whose encoding raises SystemExit, KeyboardInterrupt or GeneratorExit is a -32603.

README (Errors): a result that cannot be encoded, "whatever the encoder raises", is a
-32603 for that call, and the connection stays, as for a handler raising these
itself. The encoders run user code: a ``default=`` hook, a list subclass's
``__iter__``. Such an exception escaped the servers' ``except Exception``: the
sync server's connection thread died (no answer, the connection closed), and on
the aio server it left the event loop (the whole process exited). A client's
request is unchanged: its own exception is raised (a Ctrl-C is the caller's).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _aio_support import run
from _driver_helpers import raw_connect

from jsonrpc_mini import RPCClient, RPCServer, aio
from jsonrpc_mini._json import HAVE_ORJSON
from jsonrpc_mini._json_hook import HookedCodec

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0
ENCODERS = [False, True] if HAVE_ORJSON else [False]


class Odd:
    """An object only a hook can write."""


class Exits(list[int]):
    """A list whose items the stdlib encoder asks for through ``__iter__``, which raises SystemExit."""

    def __iter__(self) -> Any:
        raise SystemExit(3)


def raising_once(kind: type[BaseException], calls: list[object]) -> Any:
    """A hook raising ``kind`` on its first call (a one-shot Ctrl-C), then writing "written"; ``calls`` records each."""

    def hook(obj: Any) -> Any:
        calls.append(obj)
        if len(calls) == 1:
            raise kind
        return "written"

    return hook


def raising(kind: type[BaseException]) -> Any:
    def hook(obj: Any) -> Any:
        raise kind()

    return hook


def _exchange(port: int, payload: bytes) -> bytes:
    with raw_connect(("127.0.0.1", port)) as peer:
        peer.sendall(payload + b"\n")
        return peer.until(b"\n")


ONE = b'{"jsonrpc":"2.0","method":"odd","id":1}'
BATCH = (
    b'[{"jsonrpc":"2.0","method":"one","id":1},{"jsonrpc":"2.0","method":"odd","id":2},'
    b'{"jsonrpc":"2.0","method":"one","id":3}]'
)


def _expected(kind: str) -> bytes:
    return (
        b'{"jsonrpc":"2.0","id":%d,"error":{"code":-32603,"message":"Internal error: result is not '
        b"JSON-serialisable (" + kind.encode() + b')"}}'
    )


def _check(one: bytes, batch: bytes, kind: str) -> None:
    assert one == _expected(kind) % 1 + b"\n"
    assert batch == (
        b'[{"jsonrpc":"2.0","id":1,"result":1},' + _expected(kind) % 2 + b',{"jsonrpc":"2.0","id":3,"result":1}]\n'
    )


def _register(server: RPCServer | aio.RPCServer, odd: Any) -> None:
    server.register_function(lambda: odd, name="odd")
    server.register_function(lambda: 1, name="one")


@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_sync_server_answers_a_hook_raising_a_base_exception(kind: type[BaseException]) -> None:
    server = RPCServer(default=raising(kind))
    _register(server, Odd())
    host, port = server.start("127.0.0.1", 0)
    try:
        _check(_exchange(port, ONE), _exchange(port, BATCH), kind.__name__)
        with RPCClient(host, port, timeout=WAIT) as client:  # (and on one connection, which stays)
            assert client.call("one") == 1
            with pytest.raises(Exception, match=kind.__name__):
                client.call("odd")
            assert client.call("one") == 1
    finally:
        server.shutdown()


@pytest.mark.parametrize("use_orjson", ENCODERS)
def test_sync_server_answers_a_result_whose_iteration_raises_system_exit(use_orjson: bool) -> None:
    server = RPCServer()
    server.codec.use_orjson = use_orjson  # (orjson hands a list subclass to the stdlib anyway)
    _register(server, Exits([1]))
    _, port = server.start("127.0.0.1", 0)
    try:
        _check(_exchange(port, ONE), _exchange(port, BATCH), "SystemExit")
    finally:
        server.shutdown()


# (Not KeyboardInterrupt here: on the old code it would leave the event loop and stop the test run.)
@pytest.mark.parametrize("kind", [SystemExit, GeneratorExit])
@pytest.mark.parametrize("inline", [False, True])
def test_aio_server_answers_a_hook_raising_a_base_exception(kind: type[BaseException], inline: bool) -> None:
    server = aio.RPCServer(default=raising(kind), run_sync_in_thread=not inline)
    _register(server, Odd())

    @server.register
    async def odd_async() -> Odd:
        await asyncio.sleep(0)
        return Odd()

    async def main() -> None:
        host, port = await server.start("127.0.0.1", 0)
        try:
            one = await asyncio.to_thread(_exchange, port, ONE)
            batch = await asyncio.to_thread(_exchange, port, BATCH)
            _check(one, batch, kind.__name__)
            async with await aio.connect(host, port, timeout=WAIT) as client:
                with pytest.raises(Exception, match=kind.__name__):
                    await client.odd_async()
                assert await client.one() == 1
        finally:
            await server.shutdown()

    run(main)


def test_a_client_request_still_raises_the_hook_s_own_exception() -> None:
    server = RPCServer()
    server.register_function(lambda *args: len(args), name="n")
    host, port = server.start("127.0.0.1", 0)
    try:
        with RPCClient(host, port, timeout=WAIT, default=raising(SystemExit)) as client:
            with pytest.raises(SystemExit):
                client.n(Odd())
            with pytest.raises(SystemExit), client.batch() as batch:
                batch.n(1)
                batch.n(Odd())
            assert client.n(1, 2) == 2
    finally:
        server.shutdown()


def test_a_client_batch_does_not_retry_away_a_one_shot_interrupt() -> None:
    # A Ctrl-C lands once: a server's batch reply is encoded again member by member,
    # but a client's batch must raise it, not send the batch on the second try.
    server = RPCServer()
    server.register_function(lambda *args: len(args), name="n")
    calls: list[object] = []
    once = raising_once(KeyboardInterrupt, calls)

    host, port = server.start("127.0.0.1", 0)
    try:
        with RPCClient(host, port, timeout=WAIT, default=once) as client:
            with pytest.raises(KeyboardInterrupt), client.batch() as batch:
                batch.n(Odd())
            assert client.n(Odd()) == 1
    finally:
        server.shutdown()


@pytest.mark.parametrize("use_orjson", ENCODERS)
@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("write", ["dumps", "dumps_line"])
def test_a_hook_s_one_shot_interrupt_is_raised_by_both_writers(
    use_orjson: bool, kind: type[BaseException], write: str
) -> None:
    # orjson wraps what the hook raised in its TypeError; the stdlib, asked next,
    # called the hook again and wrote the value: the interrupt was lost.
    calls: list[object] = []
    once = raising_once(kind, calls)

    codec = HookedCodec(once, use_orjson=use_orjson)
    with pytest.raises(kind):
        getattr(codec, write)({"r": Odd()})
    assert len(calls) == 1
