"""An RPCTimeout reads the same on both clients: the method and the call's timeout in seconds.

README: "The RPCTimeout names the method and the call's timeout, on both clients".
The sync client said "within the timeout" where the aio client said "within 0.2 s".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from _driver_helpers import WAIT, serving

import jsonrpc_mini._client_link as link_module
from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, RPCTimeout, aio

pytestmark = pytest.mark.timeout(60)

SHORT = 0.2
NO_REPLY = f"no reply within {SHORT} s; a late reply will be dropped"


@pytest.fixture
def address() -> Iterator[tuple[str, int]]:
    """A sync server whose ``held`` call waits until the test ends (its late reply is dropped)."""
    gate = threading.Event()
    server = RPCServer()
    server.register_function(lambda: gate.wait(WAIT), name="held")
    server.register_function(lambda a, b: a + b, name="add")
    with serving(server) as address:
        try:
            yield address
        finally:
            gate.set()


def _sync_outcomes(address: tuple[str, int]) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    with RPCClient(*address, timeout=WAIT) as c:
        short = c.with_timeout(SHORT)
        with pytest.raises(RPCTimeout) as info:
            short.held()
        out.append((info.value.method, str(info.value)))
        with short.batch() as b:
            member = b.held()  # (alone: the reply array comes once every member is answered)
        with pytest.raises(RPCTimeout) as info:
            member.result()
        out.append((info.value.method, str(info.value)))
        assert c.add(2, 3) == 5  # the connection goes on
    return out


def _aio_outcomes(address: tuple[str, int]) -> list[tuple[str | None, str]]:
    async def main() -> list[tuple[str | None, str]]:
        out: list[tuple[str | None, str]] = []
        async with await aio.connect(*address, timeout=WAIT) as c:
            short = c.with_timeout(SHORT)
            with pytest.raises(RPCTimeout) as info:
                await short.held()
            out.append((info.value.method, str(info.value)))
            async with short.batch() as b:
                member = b.held()
            with pytest.raises(RPCTimeout) as info:
                member.result()
            out.append((info.value.method, str(info.value)))
            assert await c.add(2, 3) == 5
        return out

    return asyncio.run(main())


@pytest.mark.parametrize("driver", ["sync", "aio"])
def test_a_call_and_a_batch_member_out_of_time_name_the_method_and_the_seconds(
    address: tuple[str, int], driver: str
) -> None:
    outcomes = (_sync_outcomes if driver == "sync" else _aio_outcomes)(address)
    assert outcomes == [("held", f"held: {NO_REPLY}"), ("held", f"held: {NO_REPLY}")]


class _TakesNothing:
    """A transport whose peer takes no byte: every send raises TimeoutError (as a full socket's would)."""

    def send(self, data: bytes) -> None:
        raise TimeoutError("the peer took no data")

    def send_within(self, data: bytes, timeout: float) -> None:
        raise TimeoutError(f"the peer took no more data within {timeout} s")

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        raise AssertionError("nothing was sent: no read expected")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("size", [10, link_module._EARLY_TURN + 10], ids=["alone", "big"])
def test_a_send_out_of_time_names_the_method_and_the_seconds(size: int) -> None:
    # A small call on an idle connection sends in _Link._alone, a big one through send().
    for timeout, within in [(SHORT, f"within {SHORT} s"), (None, "in time")]:
        c = RPCClient(transport=_TakesNothing(), timeout=timeout)
        with pytest.raises(RPCTimeout) as info:
            c.echo("x" * size)
        assert info.value.method == "echo"
        assert str(info.value) == f"echo: could not send {within}; the connection is closed"
        with pytest.raises(ConnectionLost, match="could not send in time: the peer took no"):
            c.echo(1)  # (the transport's own words say who took no data)
        c.close()
