"""``aio.connect`` still looks like the coroutine function it was: to mock.patch, in a Task's repr.

``aio.connect()`` returns a ``Connecting`` (awaitable, and an async context manager)
since ``async with aio.connect(...)`` works without the await; it used to be an
``async def``. ``mock.patch("jsonrpc_mini.aio.connect")`` makes an ``AsyncMock`` only
for what ``asyncio.iscoroutinefunction`` calls a coroutine function: as a plain
function it became a ``MagicMock``, and the user's own ``await aio.connect(...)``
under test failed ("object AsyncMock can't be used in 'await' expression"). And a
Task running it was shown as ``coro=<<Connecting without __name__>()>``, not where it is.
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


def test_a_task_of_connect_says_connect_and_where_it_runs() -> None:
    async def main() -> str:
        listener = await asyncio.start_server(lambda _, writer: writer.close(), "127.0.0.1", 0)  # (hangs up)
        host, port = listener.sockets[0].getsockname()[:2]
        task = asyncio.ensure_future(aio.connect(host, port, timeout=5.0))
        await asyncio.sleep(0)  # (running: suspended inside connect)
        shown = repr(task)
        client = await task
        await client.close()
        listener.close()
        await listener.wait_closed()
        return shown

    shown = asyncio.run(main())
    assert "coro=<connect() running at " in shown, shown
