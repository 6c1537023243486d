"""A sync server with one call held until released, for the tests of shutdown() at ``max_concurrent_calls``."""

from __future__ import annotations

import threading

from _driver_helpers import WAIT

from jsonrpc_mini import RPCServer

SHUTTING_DOWN = {"code": -32000, "message": "Server error: the server is shutting down"}
NOTE = b'{"jsonrpc": "2.0", "method": "note"}\n'  # a notification of note()


def held_server(reply: str = "slow") -> tuple[RPCServer, threading.Event, threading.Event, list[str]]:
    """(server, entered, release, noted): an RPCServer(max_concurrent_calls=1) with three methods.

    ``slow()`` sets ``entered``, waits for ``release`` (at most WAIT) and returns
    ``reply``; ``quick()`` returns "ran"; ``note()`` appends "note" to ``noted``.
    """
    entered, release = threading.Event(), threading.Event()
    noted: list[str] = []
    s = RPCServer(max_concurrent_calls=1)

    @s.register
    def slow() -> str:
        entered.set()
        release.wait(WAIT)
        return reply

    @s.register
    def quick() -> str:
        return "ran"

    @s.register
    def note() -> None:
        noted.append("note")

    return s, entered, release, noted
