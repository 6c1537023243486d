"""``default=``: results and arguments of types JSON lacks, one hook for both encoders.

``RPCServer(default=fn)``, ``RPCClient(..., default=fn)`` and ``aio.connect(...,
default=fn)`` write ``fn(obj)`` in place of an object neither encoder can write
(``datetime``, ``Decimal``, dataclasses, the user's classes), as ``json.dumps(default=fn)``
does, with the same bytes whether orjson is installed or not. A hook's error is the
encoder's error: the same -32603 as a result without a hook.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from typing import Any

import pytest
from _aio_support import run
from _readme_blocks import python_blocks

from jsonrpc_mini import InternalError, RPCClient, RPCServer, aio
from jsonrpc_mini._json import HAVE_ORJSON, JsonCodec
from jsonrpc_mini._json_hook import HookedCodec, make_codec

pytestmark = pytest.mark.timeout(60)

ENCODERS = [False, True] if HAVE_ORJSON else [False]
WAIT = 10.0


@dataclasses.dataclass
class Point:
    x: int
    when: datetime.date


class Name(str):
    pass


class Color(enum.Enum):
    RED = "r"


class Secret:
    pass


def hook(obj: Any) -> Any:
    """A user's hook: dates, decimals, dataclasses, sets; refuses the rest as json's default does."""
    if isinstance(obj, (datetime.date, datetime.time)):  # (datetime is a date)
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}  # (nested: hook again)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Name):  # never asked: a str subclass is written as its string
        return "the hook"
    if isinstance(obj, complex):
        return [obj.real, float("nan") if obj.imag else obj.imag]
    if isinstance(obj, bytes):
        raise ValueError("cannot show these bytes")
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


WRITTEN = [
    (datetime.datetime(2020, 1, 2, 3, 4, 5, 600, tzinfo=datetime.UTC), '"2020-01-02T03:04:05.000600+00:00"'),
    (datetime.date(2020, 1, 2), '"2020-01-02"'),
    (datetime.time(3, 4), '"03:04:00"'),
    (decimal.Decimal("1.10"), '"1.10"'),
    (Point(1, datetime.date(2020, 1, 1)), '{"x":1,"when":"2020-01-01"}'),
    ({"p": [Point(2, datetime.date(1, 1, 1))], "s": {3, 1}}, '{"p":[{"x":2,"when":"0001-01-01"}],"s":[1,3]}'),
    # What the library writes itself never reaches the hook, whichever encoder writes.
    (
        [Name("n"), uuid.UUID(int=5), Color.RED, True, None],
        '["n","00000000-0000-0000-0000-000000000005","r",true,null]',
    ),
    ({"big": 2**70, "lone": "\ud800", "f": 1.5}, '{"big":1180591620717411303424,"lone":"\\ud800","f":1.5}'),
    (complex(1, 0), "[1.0,0.0]"),
]


@pytest.mark.parametrize("use_orjson", ENCODERS, ids=lambda u: "orjson" if u else "stdlib")
@pytest.mark.parametrize(("value", "text"), WRITTEN, ids=lambda v: type(v).__name__)
def test_both_encoders_write_the_same(value: Any, text: str, use_orjson: bool) -> None:
    codec = HookedCodec(hook, use_orjson=use_orjson)
    assert codec.use_orjson is use_orjson
    assert codec.dumps(value) == text.encode()
    assert codec.dumps_line(value) == text.encode() + b"\n"
    # As json.dumps(default=hook) writes it, but for what the library writes itself
    # (UUID, Enum) and a lone surrogate (json.dumps leaves it as it is).
    if type(value) is not list and not (type(value) is dict and "lone" in value):
        assert json.loads(text) == json.loads(json.dumps(value, default=hook))


@pytest.mark.parametrize("use_orjson", ENCODERS, ids=lambda u: "orjson" if u else "stdlib")
@pytest.mark.parametrize(
    ("value", "error"),
    [
        (complex(1, 1), "ValueError: NaN and Infinity are not valid JSON"),  # (orjson would write null)
        ([b"x"], "ValueError: cannot show these bytes"),  # the hook's own error
        ({"a": Secret()}, "TypeError: Object of type Secret is not JSON serializable"),
    ],
)
def test_both_encoders_refuse_the_same(value: Any, error: str, use_orjson: bool) -> None:
    codec = HookedCodec(hook, use_orjson=use_orjson)
    for write in (codec.dumps, codec.dumps_line):
        with pytest.raises((TypeError, ValueError)) as info:
            write(value)
        assert f"{type(info.value).__name__}: {info.value}" == error


def test_without_a_hook_the_codec_is_the_plain_one() -> None:
    # No hook, no added work: the very codec (and its inline orjson paths) as before.
    assert type(make_codec()) is JsonCodec
    assert type(make_codec(default=None, max_int_digits=50)) is JsonCodec
    assert type(RPCServer().codec) is JsonCodec
    hooked = make_codec(default=hook)
    assert isinstance(hooked, HookedCodec)
    assert hooked.orjson_dumps is None  # every message goes through the hook's dumps
    assert (hooked.unchecked_loads is None) is (not HAVE_ORJSON)  # reading as fast as without a hook


@pytest.mark.parametrize("bad", [1, "iso", object()])
def test_a_default_that_is_not_callable_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="default must be a callable"):
        RPCServer(default=bad)
    with pytest.raises(TypeError, match="default must be a callable"):
        RPCClient(default=bad)
    with pytest.raises(TypeError, match="default must be a callable"):
        aio.RPCServer(default=bad)

    async def main() -> None:
        with pytest.raises(TypeError, match="default must be a callable"):
            await aio.connect("127.0.0.1", 9, default=bad)

    run(main)


def _server(**options: Any) -> RPCServer:
    server = RPCServer(**options)
    server.register_function(lambda: datetime.date(2020, 1, 2), name="today")
    server.register_function(lambda: Point(1, datetime.date(2020, 1, 1)), name="point")
    server.register_function(lambda: decimal.Decimal("0.1"), name="dec")
    server.register_function(lambda: [b"raw"], name="raw")
    server.register_function(Secret, name="secret")
    server.register_function(lambda: complex(0, 1), name="nan")
    server.register_function(lambda x: x, name="echo")
    return server


def test_server_writes_results_with_the_hook() -> None:
    server = _server(default=hook)
    host, port = server.start("127.0.0.1", 0)
    try:
        with RPCClient(host, port, timeout=WAIT) as client:
            assert client.today() == "2020-01-02"
            assert client.point() == {"x": 1, "when": "2020-01-01"}
            assert client.dec() == "0.1"
            with client.batch() as batch:
                good, bad = batch.today(), batch.raw()
            assert good.result() == "2020-01-02"
            with pytest.raises(InternalError) as info:
                bad.result()
            # The hook's error: the same -32603 as any result that cannot be written.
            assert info.value.message == "Internal error: result is not JSON-serialisable (ValueError)"
            with pytest.raises(InternalError) as info:
                client.secret()
            assert info.value.message == (
                "Internal error: result is not JSON-serialisable "
                "(TypeError: Object of type Secret is not JSON serializable)"
            )
            with pytest.raises(InternalError) as info:
                client.nan()
            assert info.value.message == (
                "Internal error: result is not JSON-serialisable (ValueError: NaN and Infinity are not valid JSON)"
            )
            assert client.echo([1, "x"]) == [1, "x"]  # the connection carried on
    finally:
        server.shutdown()


def test_without_the_hook_such_results_stay_a_32603() -> None:
    server = _server()
    host, port = server.start("127.0.0.1", 0)
    try:
        with RPCClient(host, port, timeout=WAIT) as client:
            with pytest.raises(InternalError) as info:
                client.today()
            assert info.value.message == (
                "Internal error: result is not JSON-serialisable "
                "(TypeError: Object of type date is not JSON serializable)"
            )
            with pytest.raises(TypeError):  # the client has no hook either: nothing is sent
                client.echo(decimal.Decimal(1))
            assert client.echo(1) == 1
    finally:
        server.shutdown()


def test_both_clients_write_arguments_with_the_hook() -> None:
    server = _server()
    host, port = server.start("127.0.0.1", 0)
    when = datetime.datetime(2021, 5, 6, 7, 8, 9)
    try:
        with RPCClient(host, port, timeout=WAIT, default=hook) as client:
            assert client.echo(when) == "2021-05-06T07:08:09"
            assert client.call("echo", x=Point(3, when.date())) == {"x": 3, "when": "2021-05-06"}
            with pytest.raises(ValueError, match="cannot show these bytes"):  # the hook's error, as the encoder's
                client.echo(b"x")
            client.close()
            client.connect(host, port)  # a new connection keeps the hook
            assert client.echo(decimal.Decimal("2.50")) == "2.50"

        async def main() -> None:
            client = await aio.connect(host, port, timeout=WAIT, default=hook)
            try:
                assert await client.echo(when) == "2021-05-06T07:08:09"
                async with client.batch() as batch:
                    member = batch.echo({1, 2})
                assert member.result() == [1, 2]
                await client.close()
                await client.connect(host, port)  # as the sync client's
                assert await client.echo(decimal.Decimal("2.50")) == "2.50"
            finally:
                await client.close()

        run(main)
    finally:
        server.shutdown()


def test_aio_server_writes_results_with_the_hook() -> None:
    server = aio.RPCServer(default=hook)
    assert type(aio.RPCServer().codec) is JsonCodec  # (no hook, no added work, as the sync server)

    @server.register
    async def today() -> datetime.date:
        await asyncio.sleep(0)
        return datetime.date(2020, 1, 2)

    server.register_function(lambda: [b"raw"], name="raw")

    async def main() -> None:
        host, port = await server.start("127.0.0.1", 0)
        try:
            async with await aio.connect(host, port, timeout=WAIT) as client:
                assert await client.today() == "2020-01-02"
                with pytest.raises(InternalError) as info:
                    await client.raw()
                assert info.value.message == "Internal error: result is not JSON-serialisable (ValueError)"
                assert await client.today() == "2020-01-02"
        finally:
            await server.shutdown()

    run(main)


def test_the_readme_example_runs_as_written() -> None:
    (block,) = python_blocks("### Other types in results and arguments: `default=`", "\n### ")
    space: dict[str, Any] = {"RPCServer": RPCServer}
    exec(block, space)  # (the README's own code)
    server = space["s"]
    server.register_function(
        lambda: [datetime.date(2020, 1, 2), decimal.Decimal("1.5"), Point(1, datetime.date(2020, 1, 1))], name="f"
    )
    host, port = server.start("127.0.0.1", 0)
    try:
        with RPCClient(host, port, timeout=WAIT) as client:
            assert client.f() == ["2020-01-02", "1.5", {"x": 1, "when": datetime.date(2020, 1, 1).isoformat()}]
    finally:
        server.shutdown()
