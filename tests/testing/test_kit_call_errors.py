"""A bad client argument of loopback() / aio_loopback() is reported on the user's call.

(``connection=``, the link's number among its plan's connections, was not checked at all:
``connection=-1`` drew the plan's choices for a connection no kit ever makes.)

``loopback(server, timeout=0)`` raised the client's ValueError inside the ``with``
block's entry: pytest showed contextlib's ``__enter__``, the kit's generator and the
client's checks between the test's line and the message. The kits now check on the
call (as check_kit_args does for the server and the plan) and hide their frames.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini.testing import aio_loopback, loopback

pytestmark = pytest.mark.timeout(30)

BAD = [
    ({"timeout": 0}, "timeout must be a positive number of seconds or None, not 0"),
    ({"timeout": "1"}, "timeout must be a positive number of seconds or None, not '1'"),
    ({"framing": "auto"}, "a client must choose its framing"),
    ({"framing": "lines"}, "unknown framing 'lines'"),
    ({"max_message_size": 0}, "max_message_size must be an integer of at least 1, not 0"),
    ({"max_depth": 0}, "max_depth must be an integer of at least 1, not 0"),
    # (which connection of its plan the link is: the plan's choices are drawn per connection)
    ({"connection": -1}, "takes connection= as an int of at least 0 .which connection of the plan this is., not -1$"),
    (
        {"connection": True},
        "takes connection= as an int of at least 0 .which connection of the plan this is., not True$",
    ),
    ({"connection": "1"}, "takes connection= as an int of at least 0 .which connection of the plan this is., not '1'$"),
]
IDS = [next(iter(kw)) + "=" + repr(next(iter(kw.values()))) for kw, _ in BAD]


def shown_files(excinfo: pytest.ExceptionInfo[BaseException]) -> list[str]:
    """The files of the frames pytest shows for ``excinfo`` (those without __tracebackhide__)."""
    return [Path(str(entry.path)).name for entry in excinfo.traceback.filter(excinfo)]


@pytest.mark.parametrize(("kw", "message"), BAD, ids=IDS)
def test_loopback_reports_a_bad_client_argument_on_the_users_line(kw: dict[str, Any], message: str) -> None:
    server = RPCServer()
    with pytest.raises(ValueError, match=message) as caught, loopback(server, **kw):
        pytest.fail("entered")
    assert shown_files(caught) == [Path(__file__).name]
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(("kw", "message"), BAD, ids=IDS)
def test_aio_loopback_reports_a_bad_client_argument_on_the_users_line(kw: dict[str, Any], message: str) -> None:
    server = aio.RPCServer()

    async def main() -> pytest.ExceptionInfo[ValueError]:
        with pytest.raises(ValueError, match=message) as caught:
            async with aio_loopback(server, **kw):
                pytest.fail("entered")
        return caught

    caught = asyncio.run(main())
    assert shown_files(caught) == [Path(__file__).name]


def test_a_refused_argument_leaves_no_use_of_the_server_behind() -> None:
    # (checked before the kit counts itself a user: a later kit server still shuts it down)
    server = RPCServer()
    server.register_function(lambda: 1, name="one")
    with pytest.raises(ValueError):
        loopback(server, timeout=0)
    with loopback(server) as client:
        assert client.one() == 1
