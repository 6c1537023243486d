"""A port outside 0..65535 is refused by name, not wrapped by getaddrinfo (review15 N8)."""

from __future__ import annotations

from typing import Any

import pytest
from _aio_support import run

from jsonrpc_mini import RPCClient, RPCServer, aio
from jsonrpc_mini._connect import check_port

pytestmark = [pytest.mark.timeout(60)]

BAD = [65536, 70000, -1, True, "5000", 5000.0, None]


def test_check_port_takes_exactly_the_port_numbers() -> None:
    assert [check_port(p) for p in (0, 1, 65535)] == [0, 1, 65535]
    for bad in BAD:
        with pytest.raises(ValueError, match=r"port must be an int from 0 to 65535, not"):
            check_port(bad)


def test_sync_client_refuses_a_port_that_would_wrap_onto_a_server() -> None:
    server = RPCServer()
    server.register_function(lambda: "reached", name="who")
    host, port = server.start("127.0.0.1", 0)
    try:
        with pytest.raises(ValueError, match=f"not {port + 65536}"):
            RPCClient(host, port + 65536, timeout=5)  # getaddrinfo would reach `port`
        client = RPCClient(timeout=5)
        for bad in (-1, True, "5000"):
            with pytest.raises(ValueError, match="port must be an int"):
                client.connect(host, bad)
        with RPCClient(host, port, timeout=5) as good:
            assert good.call("who") == "reached"
    finally:
        server.shutdown()


@pytest.mark.parametrize("bad", [70000, -1, True])
def test_aio_client_refuses_it_too(bad: Any) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match=f"port must be an int from 0 to 65535, not {bad}"):
            await aio.connect("127.0.0.1", bad, timeout=5)

    run(main)


@pytest.mark.parametrize("bad", [70000, -1, True])
def test_both_servers_refuse_it_before_listening(bad: Any) -> None:
    server = RPCServer()
    try:
        with pytest.raises(ValueError, match="port must be an int from 0 to 65535"):
            server.start("127.0.0.1", bad)
        assert server.address is None
    finally:
        server.shutdown()  # (had it listened)

    async def main() -> None:
        srv = aio.RPCServer()
        try:
            with pytest.raises(ValueError, match="port must be an int from 0 to 65535"):
                await srv.start("127.0.0.1", bad)
        finally:
            await srv.shutdown()

    run(main)
