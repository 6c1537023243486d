"""``aio.connect`` is still a coroutine function to asyncio, so a user's test can mock it.

``aio.connect()`` returns a ``Connecting`` (awaitable, and an async context manager)
since ``async with aio.connect(...)`` works without the await; it used to be an
``async def``. ``mock.patch("jsonrpc_mini.aio.connect")`` makes an ``AsyncMock`` only
for what ``asyncio.iscoroutinefunction`` calls a coroutine function: as a plain
function it became a ``MagicMock``, and the user's own ``await aio.connect(...)``
under test failed ("object AsyncMock can't be used in 'await' expression").
"""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest

from jsonrpc_mini import aio

pytestmark = pytest.mark.timeout(60)


async def _users_code() -> int:
    """A user's function that connects and calls, as the README writes it."""
    client = await aio.connect("127.0.0.1", 5000, timeout=5.0)
    result: int = await client.add(1, 2)
    return result


def test_asyncio_calls_connect_a_coroutine_function() -> None:
    assert asyncio.iscoroutinefunction(aio.connect)


@pytest.mark.parametrize("autospec", [False, True])
def test_a_mocked_connect_is_awaited_as_before(autospec: bool) -> None:
    client = mock.AsyncMock()
    client.add.return_value = 3

    async def main() -> int:
        with mock.patch("jsonrpc_mini.aio.connect", autospec=autospec) as connect:
            connect.return_value = client
            result = await _users_code()
            connect.assert_awaited_once_with("127.0.0.1", 5000, timeout=5.0)
            return result

    assert asyncio.run(main()) == 3
