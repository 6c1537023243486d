"""aio.RPCClient is made by ``await aio.connect(host, port)``: given something else than
its connection (``aio.RPCClient("127.0.0.1")``, as one might the sync client), it says
so at once instead of failing on an internal name ("'str' object has no attribute
'request'"). (With a port too, Python's own TypeError comes first: timeout is keyword-only.)"""

from __future__ import annotations

from typing import Any

import pytest

from jsonrpc_mini import aio


@pytest.mark.parametrize("args", [("127.0.0.1",), (None,), (5000,)], ids=["host", "none", "port"])
def test_made_by_hand_the_client_names_aio_connect(args: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError, match=r"make an aio\.RPCClient with `await aio\.connect\(host, port\)`"):
        aio.RPCClient(*args)
