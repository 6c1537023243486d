"""User code written from the README type-checks under ``mypy --strict``.

The package ships ``py.typed``, so a user's own mypy run reads our annotations: a
documented line that mypy rejects in the user's code is a broken promise, even when
it runs. Each snippet below is such a line, as the README writes it; ``assert_type``
pins what the user gets back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import jsonrpc_mini

pytest.importorskip("mypy", reason="mypy (in the test extra) checks the user's view of our types")

pytestmark = pytest.mark.timeout(300)

USER_CODE = """
from __future__ import annotations

import asyncio
from typing import assert_type

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer, SocketTransport, aio
from jsonrpc_mini.testing import (
    FakeSocket,
    FakeSocketFactory,
    KitFaults,
    LoopbackFactory,
    LoopbackServer,
    LoopbackServerFactory,
)


def sync_tcp(s: RPCServer) -> None:
    host, port = s.start("127.0.0.1", 0)  # README: "returns the bound address"
    assert_type(s.start("127.0.0.1", 0), tuple[str, int])
    with RPCClient(host, port, timeout=5) as c:
        c.add(1, 2)


def sync_unix(s: RPCServer, where: str | None) -> None:
    assert_type(s.start(path="/tmp/x.sock"), str)  # "the address returned is a str"
    assert_type(s.start(path=where), tuple[str, int] | str)


async def aio_tcp(srv: aio.RPCServer) -> None:
    host, port = await srv.start("127.0.0.1", 0)
    assert_type(await srv.start("127.0.0.1", 0), tuple[str, int])
    assert_type(await srv.start(path="/tmp/x.sock"), str)
    async with await aio.connect(host, port, timeout=5.0) as c:
        await c.add(1, 2)


def fake_socket() -> None:  # the README's FakeSocket example
    sock = FakeSocket([b'{"jsonrpc": "2.0", "id": 1, "result": 3}\\n', ConnectionResetError])
    client = RPCClient(transport=SocketTransport(sock), timeout=1)
    assert client.add(1, 2) == 3


def test_hinted(  # a pytest test hinted with the plugin's fixture types (README)
    jsonrpc_loopback: LoopbackFactory, jsonrpc_server: LoopbackServerFactory, jsonrpc_fake_socket: FakeSocketFactory
) -> None:
    assert_type(jsonrpc_loopback(RPCServer(), timeout=1.0), RPCClient)
    assert_type(jsonrpc_server(RPCServer(), [None]), LoopbackServer)
    assert_type(jsonrpc_fake_socket([b"x"], eof=False), FakeSocket)
    assert_type(jsonrpc_server(aio.RPCServer()), LoopbackServer)  # an asyncio server for sync clients


def serve_app(jsonrpc_server: LoopbackServerFactory, faults: KitFaults = None) -> LoopbackServer:
    return jsonrpc_server(aio.RPCServer(), faults)  # a user's own fixture passing plans on


def retry_safe(exc: ConnectionLost) -> bool:
    return not exc.request_sent  # nothing of the call was written


asyncio.run(aio_tcp(aio.RPCServer()))
"""


def test_readme_lines_pass_mypy_strict(tmp_path: Path) -> None:
    user = tmp_path / "user_code.py"
    user.write_text(textwrap.dedent(USER_CODE))
    # Found from the package's own folder, as an installed copy would be (an editable
    # install's import hook is invisible to mypy).
    env = {**os.environ, "MYPYPATH": str(Path(jsonrpc_mini.__file__).resolve().parent.parent)}
    args = ["--strict", "--python-version", "3.11", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"]
    # In a process of its own: mypy.api.run raises this process's recursion limit to
    # 16384 for good, and later tests that rely on the default (a reply "nested too
    # deep to read") then failed in the same pytest worker.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *args, str(user)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.stdout.splitlines() == []  # mypy names each line it rejects
    assert done.stderr == ""
    assert done.returncode == 0
