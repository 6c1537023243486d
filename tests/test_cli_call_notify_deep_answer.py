"""``call --notify``: bytes nested too deep to decode, sent back by a server, are told, not a traceback.

After a notification ``call`` reads what the server sends before it closes (ea3c85d)
and decodes its first line. A line of 60,000 ``[`` made ``json.loads`` raise
RecursionError, which nothing caught: ``call`` ended in a traceback. It is now
"bytes that are no JSON-RPC message", exit 1, as for any other such bytes.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_cli_call_foreign_tls import closing_after

from jsonrpc_mini.__main__ import main

pytestmark = pytest.mark.timeout(60)


def test_a_deeply_nested_answer_is_no_message(capsys: Any) -> None:
    with closing_after(b"[" * 60_000 + b"\n") as (host, port):
        assert main(["call", "--notify", f"{host}:{port}", "note", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: note: the server answered the notification with bytes that are no JSON-RPC message"]
