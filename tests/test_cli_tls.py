"""TLS from the command line for ``serve`` and the check tool (``call``'s: test_cli_call_tls.py).

``serve`` had no TLS options (serve TLS from Python only) and ``python -m
jsonrpc_mini.testing check`` spoke plain text only. Now ``serve --certfile
[--keyfile] [--cafile]`` serves TLS (mutual TLS with ``--cafile``) and ``check``
takes ``call``'s client options; file mistakes are usage errors (exit 2).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _driver_helpers import WAIT, LeakCheck, free_port, serving, start_thread, wait_for

from jsonrpc_mini import ConnectionLost, RPCClient, RPCServer
from jsonrpc_mini.__main__ import main
from jsonrpc_mini.testing import check
from jsonrpc_mini.testing.__main__ import main as check_main

trustme = pytest.importorskip("trustme")

pytestmark = pytest.mark.timeout(120)

MODULE = "def add(a, b):\n    return a + b\n\n\ndef echo(value):\n    return value\n"


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def files(ca: Any, tmp_path: Path) -> dict[str, str]:
    """PEM files: the CA; the server's certificate with its key, and apart; a client's certificate and key."""
    paths = {name: str(tmp_path / f"{name}.pem") for name in ("ca", "server", "cert", "key", "client")}
    ca.cert_pem.write_to_path(paths["ca"])
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(paths["server"])
    server.cert_chain_pems[0].write_to_path(paths["cert"])
    server.private_key_pem.write_to_path(paths["key"])
    ca.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(paths["client"])
    return paths


@pytest.fixture
def api_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"cli_tls_api_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def client_context(ca: Any, certificate: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if certificate is not None:
        context.load_cert_chain(certificate)
    return context


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def serve_and_run(options: list[str], module: str, client: Any) -> tuple[int, list[Any]]:
    """``main(["serve", module, ...options])`` here, ``client(port)`` in a thread; SIGTERM stops serve.

    Returns serve's exit status and what the client returned (or raised).
    """
    port = free_port()
    outcome: list[Any] = []

    def run() -> None:
        try:
            wait_for(lambda: _listening(port), "serve to listen")
            outcome.append(client(port))
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = start_thread(run)
    status = main(["serve", module, "--port", str(port), *options])
    thread.join(WAIT)
    assert not thread.is_alive()
    return status, outcome


def call_add(context: ssl.SSLContext, host: str = "127.0.0.1") -> Any:
    def client(port: int) -> Any:
        with RPCClient(host, port, timeout=WAIT, ssl=context) as rpc:
            return rpc.add(1, 2)

    return client


@pytest.mark.usefixtures("signal_handlers")
@pytest.mark.parametrize("key_apart", [False, True])
def test_serve_with_a_certificate_serves_tls(
    api_module: str, ca: Any, files: dict[str, str], key_apart: bool, capsys: Any
) -> None:
    options = ["--certfile", files["cert"], "--keyfile", files["key"]] if key_apart else ["--certfile", files["server"]]
    status, outcome = serve_and_run(options, api_module, call_add(client_context(ca)))
    assert status == 0 and outcome == [3]
    assert " with TLS (Ctrl-C to stop)" in capsys.readouterr().err


@pytest.mark.usefixtures("signal_handlers")
def test_serve_with_tls_refuses_plain_text(api_module: str, files: dict[str, str]) -> None:
    def plain(port: int) -> Any:
        with RPCClient("127.0.0.1", port, timeout=WAIT) as rpc:
            return rpc.add(1, 2)

    status, outcome = serve_and_run(["--certfile", files["server"]], api_module, plain)
    assert status == 0 and len(outcome) == 1
    assert isinstance(outcome[0], Exception) and "this server speaks TLS" in str(outcome[0])


@pytest.mark.usefixtures("signal_handlers")
def test_serve_with_cafile_requires_a_client_certificate(
    api_module: str, ca: Any, files: dict[str, str], capsys: Any
) -> None:
    mutual = ["--certfile", files["server"], "--cafile", files["ca"]]
    status, outcome = serve_and_run(mutual, api_module, call_add(client_context(ca, files["client"])))
    assert status == 0 and outcome == [3]
    assert " with mutual TLS (Ctrl-C to stop)" in capsys.readouterr().err
    status, outcome = serve_and_run(mutual, api_module, call_add(client_context(ca)))
    assert status == 0 and len(outcome) == 1
    assert isinstance(outcome[0], ConnectionLost), outcome  # no certificate: refused (OpenSSL's alert, or a reset)


def test_serve_tls_option_mistakes_are_usage_errors(
    api_module: str, files: dict[str, str], tmp_path: Path, capsys: Any
) -> None:
    # (A socket path in no directory: were the options taken, serve would fail to bind, exit 1, not hang.)
    nowhere = str(tmp_path / "no-such-directory" / "rpc.sock")

    def serve(*options: str) -> str:
        assert main(["serve", api_module, "--path", nowhere, *options]) == 2
        err: str = capsys.readouterr().err
        return err

    missing = str(tmp_path / "missing.pem")
    keyfile_alone = "error: --keyfile needs --certfile (the server certificate it belongs to)\n"
    assert serve("--keyfile", files["key"]) == keyfile_alone
    cafile_alone = "error: --cafile (mutual TLS) needs --certfile (the server's own certificate)\n"
    assert serve("--cafile", files["ca"]) == cafile_alone
    assert serve("--certfile", missing).startswith(f"error: --certfile {missing}: ")
    assert serve("--certfile", files["cert"]).startswith(f"error: --certfile {files['cert']}: ")  # no key
    assert serve("--certfile", files["cert"], "--keyfile", missing).startswith(
        f"error: --certfile {files['cert']} --keyfile {missing}: "
    )
    assert serve("--certfile", files["server"], "--cafile", missing).startswith(f"error: --cafile {missing}: ")
    empty = tmp_path / "empty.pem"
    empty.write_text("", encoding="ascii")
    assert serve("--certfile", files["server"], "--cafile", str(empty)).startswith(f"error: --cafile {empty}: ")


def adding_server() -> RPCServer:
    server = RPCServer()
    server.register_function(lambda value: value, name="echo")
    return server


def server_context(ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def test_check_probes_a_tls_server(ca: Any) -> None:
    with serving(adding_server(), ssl=server_context(ca)) as (host, port):
        report = check(host, port, echo_method="echo", timeout=5, ssl=client_context(ca))
        assert report.ok, report.render()
        odd = [(r.name, r.status) for r in report.results if r.status != "pass"]
        assert odd == [("half-close", "warn")], report.render()
        assert len(report.results) >= 20
        # Without the context, the server answers in plain text that it speaks TLS (as before).
        plain = check(host, port, timeout=5, only=["method-not-found"])
        assert not plain.ok and "this server speaks TLS" in plain.render()


def test_check_command_line_with_tls_options(ca: Any, files: dict[str, str], capsys: Any) -> None:
    with serving(adding_server(), ssl=server_context(ca)) as (host, port):
        only = ["--only", "method-not-found", "--only", "pipelined"]
        assert check_main(["check", f"{host}:{port}", "--cafile", files["ca"], *only]) == 0
        assert "2 passed, 0 failed, 0 warnings" in capsys.readouterr().out
        by_name = ["--server-hostname", "localhost", "--cafile", files["ca"]]
        assert check_main(["check", f"localhost:{port}", *by_name, *only]) == 0
        assert "2 passed, 0 failed" in capsys.readouterr().out
        assert check_main(["check", f"{host}:{port}", "--tls", *only]) == 1  # the system's CAs do not know it
        assert "certificate verify failed" in capsys.readouterr().out
        wrong = ["--server-hostname", "other.example", "--cafile", files["ca"]]
        assert check_main(["check", f"{host}:{port}", *wrong, *only]) == 1
        assert "other.example" in capsys.readouterr().out
    mutual = server_context(ca)
    mutual.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(mutual)
    with serving(adding_server(), ssl=mutual) as (host, port):
        trust = ["--cafile", files["ca"], "--only", "method-not-found"]
        assert check_main(["check", f"{host}:{port}", *trust, "--certfile", files["client"]]) == 0
        assert "1 passed, 0 failed" in capsys.readouterr().out
        assert check_main(["check", f"{host}:{port}", *trust]) == 1  # no client certificate: refused
        assert "0 passed, 1 failed" in capsys.readouterr().out


def test_check_tls_option_mistakes_are_usage_errors(files: dict[str, str], tmp_path: Path, capsys: Any) -> None:
    missing = str(tmp_path / "missing.pem")
    for options, message in [
        (["--keyfile", files["key"]], "--keyfile needs --certfile"),
        (["--cafile", missing], f"--cafile {missing}: "),
        (["--certfile", files["ca"]], f"--certfile {files['ca']}: "),
    ]:
        with pytest.raises(SystemExit) as exited:
            check_main(["check", "127.0.0.1:1", *options])
        assert exited.value.code == 2
        assert message in capsys.readouterr().err
