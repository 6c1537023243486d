"""``client.kv._secret()``: the AttributeError says how to call such a remote method.

Names starting with ``_`` are never remote calls on a client (Python's own names,
which copy, pickle and inspect probe, live there). ``c._secret`` and ``c.kv._secret``
raised a bare ``AttributeError: _secret``; they now add "a name starting with '_' is
not a remote call here; use call('kv._secret')", on both clients. Dunder names keep
the bare error.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini.testing import aio_loopback, loopback

pytestmark = pytest.mark.timeout(60)


def _hint(method: str) -> str:
    name = method.rpartition(".")[2]
    return rf"^{name}: a name starting with '_' is not a remote call here; use call\('{method}'\)$"


def _check(client: Any) -> None:
    with pytest.raises(AttributeError, match=_hint("_secret")):
        client._secret  # noqa: B018
    with pytest.raises(AttributeError, match=_hint(r"kv\._secret")):
        client.kv._secret  # noqa: B018
    with pytest.raises(AttributeError, match=_hint(r"a\.b\._c")):
        client.a.b._c  # noqa: B018
    with pytest.raises(AttributeError) as info:
        client.__wrapped__  # noqa: B018
    assert str(info.value) == "__wrapped__"
    assert not hasattr(client, "_secret") and not hasattr(client.kv, "_x")


def test_the_sync_client_names_call() -> None:
    server = RPCServer()
    server.register_function(lambda: "reached", name="kv._secret")
    with loopback(server) as client:
        _check(client)
        assert client.call("kv._secret") == "reached"
    server.shutdown()


def test_the_aio_client_names_call() -> None:
    server = aio.RPCServer()
    server.register_function(lambda: "reached", name="kv._secret")

    async def main() -> None:
        async with aio_loopback(server) as client:
            _check(client)
            assert await client.call("kv._secret") == "reached"
        await server.shutdown()

    asyncio.run(main())
