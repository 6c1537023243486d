"""An aio.RPCClient's private and dunder names raise AttributeError, not RecursionError.

Its __getattr__ read ``self._current`` (``self._link`` before c8cf297) before looking at
the name: on an instance whose __init__ has not run (copy.copy, pickle, object.__new__)
that read came back to __getattr__ without end (Review27, session 29). Names starting
with "_" are refused first now, as the sync client does.
"""

from __future__ import annotations

import copy

import pytest
from _aio_support import run, serving

from jsonrpc_mini import aio

pytestmark = pytest.mark.timeout(60)


def test_a_bare_instance_has_no_private_names() -> None:
    bare = object.__new__(aio.RPCClient)
    with pytest.raises(AttributeError):
        bare.__setstate__  # noqa: B018
    with pytest.raises(AttributeError):
        bare._link  # noqa: B018


def test_copy_of_a_client_does_not_recurse() -> None:
    async def main() -> None:
        srv = aio.RPCServer()
        srv.register_function(lambda a, b: a + b, name="add")
        async with serving(srv) as (host, port):
            c = await aio.connect(host, port, timeout=10)
            try:
                copy.copy(c)  # (a shallow copy shares the connection; the point is no RecursionError)
            finally:
                await c.close()

    run(main)
