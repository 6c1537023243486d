"""``check(host, port, ssl=..., server_hostname=...)`` from Python, as README.md describes it.

The command line's TLS options were tested (tests/test_cli_tls.py); the Python
call's ``server_hostname`` was not, nor the README's example, and a
``server_hostname`` without ``ssl`` was silently ignored (a plain-text check) where
both clients refuse it with ValueError: check() now refuses it too. A plain-text
check of a TLS port is one ``connect`` failure saying so, not a failure per probe.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _driver_helpers import serving
from _fixed_reply_server import answering
from _readme_blocks import python_blocks

from jsonrpc_mini import RPCServer, aio
from jsonrpc_mini.testing import check

trustme = pytest.importorskip("trustme")

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def localhost_only(ca: Any) -> Iterator[tuple[str, int]]:
    """A TLS server on 127.0.0.1 whose certificate names localhost only (not 127.0.0.1)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server = RPCServer()
    server.register_function(lambda value: value, name="echo")
    with serving(server, ssl=context) as address:
        yield address


def trusting(ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_the_readme_example_runs_as_written(ca: Any, localhost_only: tuple[str, int], tmp_path: Path) -> None:
    blocks = [b for b in python_blocks("\n## Test kit\n") if "server_hostname=" in b]
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "README.md#test-kit-check-tls", "exec"), namespace)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    assert namespace["check_tls_server"](*localhost_only, str(cafile)) is True


def test_the_certificate_is_checked_against_server_hostname(ca: Any, localhost_only: tuple[str, int]) -> None:
    host, port = localhost_only
    named = check(host, port, ssl=trusting(ca), server_hostname="localhost", only=["method-not-found"])
    assert [(r.name, r.status) for r in named.results] == [("method-not-found", "pass")], named.render()
    # By default against host, 127.0.0.1, which the certificate does not name: the one result.
    by_host = check(host, port, ssl=trusting(ca))
    assert [(r.name, r.status) for r in by_host.results] == [("connect", "fail")]
    detail = by_host.results[0].detail
    assert detail.startswith(f"cannot connect to {host}:{port}: [SSL: CERTIFICATE_VERIFY_FAILED]"), detail
    assert "127.0.0.1" in detail.partition(": [SSL")[2]  # the mismatch names the host checked


def test_a_certificate_the_context_does_not_trust_is_the_one_failure(localhost_only: tuple[str, int]) -> None:
    host, port = localhost_only
    report = check(host, port, ssl=ssl.create_default_context(), server_hostname="localhost")
    assert [(r.name, r.status) for r in report.results] == [("connect", "fail")]
    assert "certificate verify failed" in report.results[0].detail
    assert not report.ok


def test_server_hostname_without_ssl_is_refused() -> None:
    # (before any connection: port 1 on loopback has no server, and it is not reached)
    with pytest.raises(ValueError, match=r"^server_hostname is only meaningful with ssl$"):
        check("127.0.0.1", 1, server_hostname="localhost")


def plain_check_of(address: tuple[str, int]) -> list[tuple[str, str, str]]:
    return [(r.name, r.status, r.detail) for r in check(*address, timeout=5).results]


def test_a_plain_check_of_a_tls_port_is_one_failure_saying_why(localhost_only: tuple[str, int]) -> None:
    # Every probe would fail on the server's "this server speaks TLS" answer (21 lines).
    host, port = localhost_only
    results = plain_check_of(localhost_only)
    assert [(name, status) for name, status, _ in results] == [("connect", "fail")]
    detail = results[0][2]
    assert detail.startswith(f"cannot check {host}:{port}: it speaks TLS (its answer: "), detail
    assert detail.endswith("check it over TLS (--tls, or ssl= from Python)"), detail


def test_the_aio_servers_tls_port_gives_the_same_one_failure(ca: Any) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)

    async def main() -> list[tuple[str, str, str]]:
        srv = aio.RPCServer()
        address = await srv.start("127.0.0.1", 0, ssl=context)
        assert isinstance(address, tuple)
        try:
            return await asyncio.to_thread(plain_check_of, address)
        finally:
            await srv.shutdown()

    results = asyncio.run(main())
    assert [(name, status) for name, status, _ in results] == [("connect", "fail")]
    assert "it speaks TLS (its answer: " in results[0][2]


def test_a_server_answering_plain_text_with_a_tls_alert_is_one_failure() -> None:
    alert = b"\x15\x03\x03\x00\x02\x02\x46"  # a TLS alert record (fatal, protocol_version)
    with answering(alert) as address:
        results = plain_check_of(address)
    assert [(name, status) for name, status, _ in results] == [("connect", "fail")]
    assert results[0][2] == (
        f"cannot check {address[0]}:{address[1]}: it answered plain text with TLS (a TLS record): "
        "check it over TLS (--tls, or ssl= from Python)"
    )


def test_an_error_saying_tls_with_another_code_is_left_to_the_probes() -> None:
    # Only the exact -32000 answer of this library's servers means "speaks TLS only".
    reply = b'{"jsonrpc":"2.0","error":{"code":-32001,"message":"this server speaks TLS"},"id":null}\n'
    with answering(reply) as address:
        results = plain_check_of(address)
    assert results[0][0] == "method-not-found" and len(results) > 1
