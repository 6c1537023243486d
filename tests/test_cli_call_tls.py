"""``python -m jsonrpc_mini call`` with TLS: ``--tls``, ``--cafile``, ``--certfile``, ``--server-hostname``.

``call`` had no way to reach a server started with ``ssl=``: it spoke plain text
and got "this server speaks TLS". Each TLS option implies ``--tls``; the server's
certificate and host name are checked as ``ssl.create_default_context()`` does.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from _driver_helpers import LeakCheck, serving

from jsonrpc_mini import RPCServer
from jsonrpc_mini.__main__ import main

trustme = pytest.importorskip("trustme")

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def files(ca: Any, tmp_path: Path) -> dict[str, str]:
    """PEM files: the CA, a client certificate with its key, and that key and certificate apart."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client = ca.issue_cert("client.example")
    both = tmp_path / "client.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(both))
    cert, key = tmp_path / "client-cert.pem", tmp_path / "client-key.pem"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    return {"ca": str(ca_file), "client": str(both), "cert": str(cert), "key": str(key)}


def adding_server() -> RPCServer:
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    return server


def server_context(ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def test_call_with_cafile_reaches_a_tls_server(ca: Any, files: dict[str, str], capsys: Any) -> None:
    with serving(adding_server(), ssl=server_context(ca)) as (host, port):
        assert main(["call", "--cafile", files["ca"], f"{host}:{port}", "add", "1", "2"]) == 0
        assert capsys.readouterr().out == "3\n"
        address = f"localhost:{port}"
        assert main(["call", "--server-hostname", "localhost", "--cafile", files["ca"], address, "add", "2", "2"]) == 0
        assert capsys.readouterr().out == "4\n"
        # Without TLS the server says it speaks TLS (as before); --tls alone trusts only the
        # system's CAs, which do not know this one; a wrong name fails the host name check.
        assert main(["call", f"{host}:{port}", "add", "1", "2"]) == 1
        assert "this server speaks TLS" in capsys.readouterr().err
        assert main(["call", "--tls", f"{host}:{port}", "add", "1", "2"]) == 1
        assert "certificate verify failed" in capsys.readouterr().err
        assert (
            main(
                [
                    "call",
                    "--cafile",
                    files["ca"],
                    "--server-hostname",
                    "other.example",
                    f"{host}:{port}",
                    "add",
                    "1",
                    "2",
                ]
            )
            == 1
        )
        err = capsys.readouterr().err
        assert "certificate verify failed" in err and "other.example" in err


def test_call_without_tls_to_a_tls_server_says_which_option_to_add(ca: Any, capsys: Any) -> None:
    # The server's own advice ("connect with an ssl.SSLContext (ssl=...)") is for
    # Python code; a `call` user needs the option that does it.
    with serving(adding_server(), ssl=server_context(ca)) as (host, port):
        assert main(["call", f"{host}:{port}", "add", "1", "2"]) == 1
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith("error: add: [-32000]") and "speaks TLS" in err[0]
        assert err[1:] == ["hint: the server speaks TLS: add --tls (to trust the system's CAs) or --cafile FILE"]


def test_call_with_a_client_certificate_reaches_a_mutual_tls_server(
    ca: Any, files: dict[str, str], capsys: Any
) -> None:
    context = server_context(ca)
    context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(context)
    with serving(adding_server(), ssl=context) as (host, port):
        address = f"{host}:{port}"
        assert main(["call", "--cafile", files["ca"], "--certfile", files["client"], address, "add", "1", "2"]) == 0
        assert capsys.readouterr().out == "3\n"
        certfile = ["--certfile", files["cert"], "--keyfile", files["key"]]
        assert main(["call", "--cafile", files["ca"], *certfile, address, "add", "3", "2"]) == 0
        assert capsys.readouterr().out == "5\n"
        assert main(["call", "--cafile", files["ca"], address, "add", "1", "2"]) == 1  # no certificate: refused
        assert capsys.readouterr().err.startswith("error: ")


def test_tls_option_mistakes_are_usage_errors(files: dict[str, str], tmp_path: Path, capsys: Any) -> None:
    assert main(["call", "--keyfile", files["key"], "127.0.0.1:1", "add"]) == 2
    assert capsys.readouterr().err == "error: --keyfile needs --certfile (the client certificate it belongs to)\n"
    missing = str(tmp_path / "missing.pem")
    assert main(["call", "--cafile", missing, "127.0.0.1:1", "add"]) == 2
    assert capsys.readouterr().err.startswith(f"error: --cafile {missing}: ")
    assert main(["call", "--certfile", files["ca"], "127.0.0.1:1", "add"]) == 2  # a certificate with no key
    assert capsys.readouterr().err.startswith(f"error: --certfile {files['ca']}: ")
    assert main(["call", "--tls", "--path", str(tmp_path / "x.sock"), "add"]) == 2
    assert capsys.readouterr().err.startswith("error: TLS over --path needs --server-hostname NAME")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform")
def test_call_over_a_unix_socket_with_tls(ca: Any, files: dict[str, str], unix_path: str, capsys: Any) -> None:
    with serving(adding_server(), path=unix_path, ssl=server_context(ca)):
        tls = ["--cafile", files["ca"], "--server-hostname", "localhost"]
        assert main(["call", *tls, "--path", unix_path, "add", "1", "2"]) == 0
        assert capsys.readouterr().out == "3\n"
