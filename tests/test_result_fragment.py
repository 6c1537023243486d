"""README, Wire format: an ``orjson.Fragment`` result is written as the bytes it holds.

That is orjson's own feature, and only with orjson: without it (the standard
library's encoder) a Fragment is an object JSON cannot hold, so that call gets
-32603, as any other, and the connection goes on. Both servers, a Fragment alone
and inside a result.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from jsonrpc_mini import InternalError, RPCServer, _json, aio
from jsonrpc_mini.testing import aio_loopback, loopback

orjson = pytest.importorskip("orjson")

pytestmark = pytest.mark.timeout(60)

NOT_JSON = (
    r"^(alone|inside): \[-32603\] Internal error: result is not JSON-serialisable "
    r"\(TypeError: Object of type Fragment is not JSON serializable\)$"
)
METHODS = ("alone", "inside", "plain")


def _register(server: RPCServer | aio.RPCServer) -> None:
    server.register_function(lambda: orjson.Fragment(b'{"pre":"written"}'), name="alone")
    server.register_function(lambda: [1, orjson.Fragment(b"[2,3]")], name="inside")
    server.register_function(lambda: "plain", name="plain")


def _sync_results() -> list[Any]:
    server = RPCServer()
    _register(server)
    results: list[Any] = []
    with loopback(server) as client:
        for method in METHODS:
            try:
                results.append(client.call(method))
            except InternalError as exc:
                results.append(exc)
    return results


async def _aio_results() -> list[Any]:
    server = aio.RPCServer()
    _register(server)
    results: list[Any] = []
    async with aio_loopback(server) as client:
        for method in METHODS:
            try:
                results.append(await client.call(method))
            except InternalError as exc:
                results.append(exc)
    await server.shutdown()
    return results


def _results(driver: str) -> list[Any]:
    return _sync_results() if driver == "sync" else asyncio.run(_aio_results())


@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_with_orjson_a_fragment_is_written_as_its_bytes(driver: str) -> None:
    assert _json.HAVE_ORJSON
    assert _results(driver) == [{"pre": "written"}, [1, [2, 3]], "plain"]


@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_without_orjson_a_fragment_is_a_32603_for_that_call(driver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_json, "HAVE_ORJSON", False)  # the servers made now write with the stdlib
    *errors, after = _results(driver)
    assert after == "plain"  # the connection goes on
    assert [type(error) for error in errors] == [InternalError, InternalError]
    for error in errors:
        assert re.match(NOT_JSON, str(error)), str(error)
