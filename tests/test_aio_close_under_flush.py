"""The plain transport under a closed TLS one closes only once the TLS layer has handed everything down.

asyncio's TLS layer holds records back while the transport under it is full. Closing
that transport then (``close_under``, after ``LINGER`` or at once) sent what it had,
and once its buffer ran empty it was gone: the records the TLS layer wrote after it,
the last replies and the close_notify, were dropped without a word (on Python 3.12
and 3.13 every run of tests/hardening/test_tls_close.py's 3 MiB replies test).
Here the two transports are stand-ins, so the order is exact on every version.
"""

from __future__ import annotations

import asyncio

import pytest

from jsonrpc_mini import _aio_linger
from jsonrpc_mini._aio_linger import close_under

pytestmark = pytest.mark.timeout(30)


class _Under(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed_at: float | None = None

    def close(self) -> None:
        self.closed_at = asyncio.get_running_loop().time()

    def is_closing(self) -> bool:
        return self.closed_at is not None


class _Tls(asyncio.Transport):
    def __init__(self, held: int) -> None:
        super().__init__()
        self.held = held

    def get_write_buffer_size(self) -> int:
        return self.held


@pytest.mark.parametrize("linger", [0.0, 0.05])
def test_the_plain_transport_waits_for_what_the_tls_layer_still_holds(linger: float) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        under, tls = _Under(), _Tls(held=3 << 20)
        close_under(under, tls, linger)
        await asyncio.sleep(linger + 0.1)
        assert under.closed_at is None  # (it was closed at once, or after the linger)
        handed_down = loop.time()
        tls.held = 0
        for _ in range(200):  # bounded: 2 s
            if under.closed_at is not None:
                break
            await asyncio.sleep(0.01)
        assert under.closed_at is not None and under.closed_at >= handed_down

    asyncio.run(main())


def test_nothing_held_closes_after_the_linger_and_a_detached_layer_holds_nothing() -> None:
    class _Detached(asyncio.Transport):
        def get_write_buffer_size(self) -> int:
            raise AttributeError("'NoneType' object has no attribute '_get_write_buffer_size'")  # (asyncio's)

    async def main() -> None:
        under, other = _Under(), _Under()
        close_under(under, _Tls(held=0), 0.0)
        close_under(other, _Detached(), 0.0)
        assert under.is_closing() and other.is_closing()

    asyncio.run(main())


def test_a_layer_that_never_hands_down_is_closed_after_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_aio_linger, "FLUSH_LIMIT", 0.1)

    async def main() -> None:
        under = _Under()
        close_under(under, _Tls(held=1), 0.0)
        for _ in range(200):  # bounded: 2 s
            if under.is_closing():
                break
            await asyncio.sleep(0.01)
        assert under.is_closing()

    asyncio.run(main())
