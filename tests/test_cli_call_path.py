"""``python -m jsonrpc_mini call --path PATH METHOD [ARG ...]``: the client of ``serve --path``.

``serve --path`` served a Unix socket that no CLI command could reach (review16,
minor list): ``call`` took only HOST:PORT. With ``--path`` the words are METHOD and
its ARGs, no address; HOST:PORT with no METHOD is a usage error with a message.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, serving

from jsonrpc_mini import RPCServer
from jsonrpc_mini.__main__ import main

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform"),
]


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def test_call_reaches_a_unix_socket_server(unix_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    noted = threading.Event()
    s = RPCServer()
    s.register_function(lambda *a, **k: {"a": list(a), "k": k}, name="echo")
    s.register_function(lambda: "pong", name="ping")
    s.register_function(lambda *a: noted.set(), name="note")
    with serving(s, path=unix_path):
        assert main(["call", "--path", unix_path, "echo", "1", "x", "k=[true]"]) == 0
        assert json.loads(capsys.readouterr().out) == {"a": [1, "x"], "k": {"k": [True]}}
        assert main(["call", "ping", "--path", unix_path]) == 0  # METHOD alone, options anywhere
        assert capsys.readouterr().out == '"pong"\n'
        assert main(["call", "--notify", "--path", unix_path, "note"]) == 0
        assert noted.wait(WAIT)
        assert main(["call", "--path", unix_path, "missing"]) == 1
        assert capsys.readouterr().err.startswith("error: missing: [-32601]")


def test_call_path_errors(unix_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "--path", unix_path, "ping"]) == 1  # nothing listens there
    assert capsys.readouterr().err.startswith(f"error: cannot connect to {unix_path}: ")
    assert main(["call", "--path", "", "ping"]) == 2
    assert capsys.readouterr().err == "error: Unix socket path is empty; give a file system path\n"


def test_call_with_an_address_and_no_method_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "127.0.0.1:1"]) == 2
    assert capsys.readouterr().err == (
        "error: call needs HOST:PORT and METHOD (or --path PATH and METHOD), not only '127.0.0.1:1'\n"
    )
