"""A failing handler's ERROR line names the client that sent the call, on both servers.

"method 'boom' raised ValueError" told an operator which method failed but not
for whom: with many clients, the line could not be matched to one. Now it begins
with the connection's name as the server's other per-connection lines give it
(README, Logging): the sync server's ``jsonrpc_mini-conn-3 (127.0.0.1:40034)``, the
aio server's ``connection from 127.0.0.1:40034``; an unnamed Unix client by the
process that connected (``a Unix socket, pid 4242, uid 1000``). The traceback
stays in the log record; the client gets -32603 without it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from _aio_support import aio_server_in_thread
from _driver_helpers import raw_connect, serving, wait_for

from jsonrpc_mini import RPCServer, aio

pytestmark = pytest.mark.timeout(60)

LINUX = hasattr(socket, "SO_PEERCRED")


def boom(value: Any) -> Any:
    raise ValueError(f"secret detail {value}")


async def aboom(value: Any) -> Any:
    raise ValueError(f"secret detail {value}")


def lazy(value: Any) -> Any:
    return aboom(value)  # (a plain handler whose result is awaited)


def ok(value: Any) -> Any:
    return value


@contextmanager
def _server(kind: str, where: str, unix_path: str, **options: Any) -> Iterator[Any]:
    server: Any = RPCServer(**options) if kind == "sync" else aio.RPCServer(**options)
    for function in (boom, aboom, lazy, ok):
        server.register_function(function)
    place = {"path": unix_path} if where == "unix" else {}
    with serving(server, **place) if kind == "sync" else aio_server_in_thread(server, **place) as address:
        yield address


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "jsonrpc_mini" and r.levelno == logging.ERROR]


def _peer(kind: str, where: str, sock: socket.socket) -> str:
    """The start of the line the server must log for this client."""
    if where == "unix":
        who = f"a Unix socket, pid {os.getpid()}, uid {os.getuid()}" if LINUX else "a Unix socket"
    else:
        who = f"127.0.0.1:{sock.getsockname()[1]}"
    if kind == "sync":
        return rf"^jsonrpc_mini-conn-\d+ \({re.escape(who)}\): "
    return f"^connection from {re.escape(who)}: "


def _check(caplog: pytest.LogCaptureFixture, kind: str, where: str, sock: socket.socket, what: str) -> None:
    wait_for(lambda: _errors(caplog), "the ERROR line")
    (record,) = _errors(caplog)
    line = record.getMessage()
    assert re.match(_peer(kind, where, sock) + re.escape(what) + "$", line), line
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)  # the traceback, logged


CASES = [
    ("sync", "tcp"),
    ("sync", "unix"),
    ("aio", "tcp"),
    ("aio", "unix"),
]


@pytest.mark.parametrize(("kind", "where"), CASES)
@pytest.mark.parametrize("method", ["boom", "aboom", "lazy"])
@pytest.mark.parametrize("first", [True, False], ids=["first", "second"])
def test_a_failing_call_is_logged_with_its_client(
    kind: str, where: str, method: str, first: bool, caplog: pytest.LogCaptureFixture, unix_path: str
) -> None:
    caplog.set_level(logging.ERROR, logger="jsonrpc_mini")
    with _server(kind, where, unix_path) as address, raw_connect(address) as peer:
        if not first:  # (the connection's framing known: a call then takes the servers' fast way)
            peer.sendall(b'{"jsonrpc":"2.0","method":"ok","params":[1],"id":1}\n')
            assert peer.json_line()["result"] == 1
        peer.sendall(b'{"jsonrpc":"2.0","method":"%s","params":[1],"id":7}\n' % method.encode())
        reply = peer.json_line()
        _check(caplog, kind, where, peer.sock, f"method {method!r} raised ValueError")
    assert reply == {"jsonrpc": "2.0", "id": 7, "error": {"code": -32603, "message": f"Internal error in {method!r}"}}


@pytest.mark.parametrize(("kind", "where"), CASES)
def test_a_failing_notification_is_logged_with_its_client(
    kind: str, where: str, caplog: pytest.LogCaptureFixture, unix_path: str
) -> None:
    caplog.set_level(logging.ERROR, logger="jsonrpc_mini")
    with _server(kind, where, unix_path) as address, raw_connect(address) as peer:
        peer.sendall(b'{"jsonrpc":"2.0","method":"boom","params":[1]}\n')
        _check(caplog, kind, where, peer.sock, "notification 'boom' raised ValueError")


@pytest.mark.parametrize(("kind", "where"), CASES)
@pytest.mark.parametrize("method", ["boom", "aboom", "lazy"])
def test_a_failing_batch_member_is_logged_with_its_client(
    kind: str, where: str, method: str, caplog: pytest.LogCaptureFixture, unix_path: str
) -> None:
    caplog.set_level(logging.ERROR, logger="jsonrpc_mini")
    batch = [
        {"jsonrpc": "2.0", "method": "ok", "params": [1], "id": 1},
        {"jsonrpc": "2.0", "method": method, "params": [2], "id": 2},
    ]
    with _server(kind, where, unix_path) as address, raw_connect(address) as peer:
        peer.sendall(json.dumps(batch).encode() + b"\n")
        replies = sorted(peer.json_line(), key=lambda reply: reply["id"])
        _check(caplog, kind, where, peer.sock, f"method {method!r} raised ValueError")
    assert replies[0]["result"] == 1
    assert replies[1]["error"] == {"code": -32603, "message": f"Internal error in {method!r}"}


@pytest.mark.parametrize(("kind", "where"), CASES)
@pytest.mark.parametrize(
    ("member", "what"),
    [
        ({"jsonrpc": "2.0", "method": "boom", "params": {"value": 2}, "id": 2}, "method 'boom' raised ValueError"),
        ({"jsonrpc": "2.0", "method": "boom", "params": [2]}, "notification 'boom' raised ValueError"),
    ],
    ids=["named-params", "notification"],
)
def test_other_failing_batch_members_too(
    kind: str, where: str, member: Any, what: str, caplog: pytest.LogCaptureFixture, unix_path: str
) -> None:
    caplog.set_level(logging.ERROR, logger="jsonrpc_mini")
    batch = [{"jsonrpc": "2.0", "method": "ok", "params": [1], "id": 1}, member]
    with _server(kind, where, unix_path) as address, raw_connect(address) as peer:
        peer.sendall(json.dumps(batch).encode() + b"\n")
        assert peer.json_line()[0]["result"] == 1
        _check(caplog, kind, where, peer.sock, what)


@pytest.mark.parametrize("where", ["tcp", "unix"])
@pytest.mark.parametrize("method", ["boom", "lazy"])
@pytest.mark.parametrize("batch", [False, True], ids=["call", "batch"])
def test_aio_inline_plain_handlers_too(
    where: str, method: str, batch: bool, caplog: pytest.LogCaptureFixture, unix_path: str
) -> None:
    caplog.set_level(logging.ERROR, logger="jsonrpc_mini")
    call = b'{"jsonrpc":"2.0","method":"%s","params":[1],"id":7}' % method.encode()
    with _server("aio", where, unix_path, run_sync_in_thread=False) as address, raw_connect(address) as peer:
        peer.sendall(b"[%s]\n" % call if batch else call + b"\n")
        reply = peer.json_line()
        assert (reply[0] if batch else reply)["error"]["code"] == -32603
        _check(caplog, "aio", where, peer.sock, f"method {method!r} raised ValueError")


def test_the_traceback_stays_in_the_log(caplog: pytest.LogCaptureFixture, unix_path: str) -> None:
    caplog.set_level(logging.ERROR, logger="jsonrpc_mini")
    with _server("aio", "tcp", unix_path) as address, raw_connect(address) as peer:
        peer.sendall(b'{"jsonrpc":"2.0","method":"boom","params":[1],"id":7}\n')
        reply = peer.json_line()
        wait_for(lambda: _errors(caplog), "the ERROR line")
    assert "secret detail" not in json.dumps(reply)
    assert "secret detail 1" in caplog.text  # (the formatted record, traceback included)
    assert 'raise ValueError(f"secret detail {value}")' in caplog.text
