"""An IPv6 address in a message is written in brackets: ``[::1]:5000``, not ``::1:5000``.

The CLI's listen errors and the servers' bind errors wrote ``[::1]:5000`` (one
formatter, ``_tcp_bind.host_port``) while both clients' connect errors, the demo's
"server listening on" line and the testing kit's check report wrote ``::1:5000``,
where the port cannot be told from the address. All now use ``host_port``.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
from _aio_support import run
from _driver_helpers import WAIT, ipv6_loopback

from jsonrpc_mini import ConnectionLost, RPCClient, aio
from jsonrpc_mini.__main__ import main
from jsonrpc_mini._tcp_bind import host_port
from jsonrpc_mini.testing import check

pytestmark = pytest.mark.timeout(60)


if not ipv6_loopback():
    pytest.skip("no IPv6 loopback on this machine", allow_module_level=True)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on ::1 bound but not listening: a connect there is refused (and no one else gets it)."""
    with socket.socket(socket.AF_INET6) as bound:
        bound.bind(("::1", 0))
        yield bound.getsockname()[1]


def test_sync_client_names_an_ipv6_address_in_brackets(refused_port: int) -> None:
    with pytest.raises(ConnectionLost) as info:
        RPCClient("::1", refused_port, timeout=WAIT)
    assert info.value.message.startswith(f"cannot connect to [::1]:{refused_port}: ")


def test_aio_client_names_an_ipv6_address_in_brackets(refused_port: int) -> None:
    async def main_() -> ConnectionLost:
        with pytest.raises(ConnectionLost) as info:
            await aio.connect("::1", refused_port, timeout=WAIT)
        return info.value

    assert run(main_).message.startswith(f"cannot connect to [::1]:{refused_port}: ")


def test_a_failed_tls_handshake_names_an_ipv6_address_in_brackets() -> None:
    # A plain server that answers the ClientHello with a line of text: not TLS.
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as listener:
        listener.settimeout(WAIT)
        port = listener.getsockname()[1]

        def answer_in_plain_text() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(WAIT)
                conn.recv(65536)
                conn.sendall(b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "x"}}\n')

        thread = threading.Thread(target=answer_in_plain_text, daemon=True)
        thread.start()
        try:
            context = ssl.create_default_context()
            with pytest.raises(ConnectionLost) as info:
                RPCClient("::1", port, timeout=WAIT, ssl=context, server_hostname="localhost")
        finally:
            thread.join(WAIT)
    assert not thread.is_alive()
    assert info.value.message.startswith(f"TLS handshake with [::1]:{port} failed: ")


def test_cli_call_names_an_ipv6_address_in_brackets(refused_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", f"[::1]:{refused_port}", "add", "1", "2", "--timeout", str(WAIT)]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot connect to [::1]:{refused_port}: ")


def test_demo_says_where_it_listens_with_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--host", "::1"]) == 0
    listening = [line for line in capsys.readouterr().out.splitlines() if line.startswith("server listening on ")]
    assert len(listening) == 1
    assert listening[0].startswith("server listening on [::1]:")
    assert listening[0].rpartition(":")[2].isdigit()


def test_check_report_names_an_ipv6_address_in_brackets(refused_port: int) -> None:
    report = check("::1", refused_port, timeout=WAIT)
    assert [(r.name, r.status) for r in report.results] == [("connect", "fail")]
    assert report.results[0].detail.startswith(f"cannot connect to [::1]:{refused_port}: ")
    assert report.render().splitlines()[0] == f"jsonrpc_mini check [::1]:{refused_port} (seed 0)"


def test_an_address_in_brackets_already_is_not_bracketed_again() -> None:
    # `start("[::1]", 0)` failed with "Name or service not known: '[[::1]]:0'".
    assert host_port("[::1]", 5000) == "[::1]:5000"
    assert host_port("::1", 5000) == "[::1]:5000"
