"""``check HOST:PORT`` pointed at an HTTP server says so once, instead of failing every probe.

JSON-RPC is often served over HTTP. A user who points the check, which speaks
JSON-RPC over a plain byte stream, at such a server got 21 failures each reading
"the server sent invalid JSON: 'HTTP/1.1 400 Bad Request...'" (or the HTML page that
Python's http.server sends) and "replay with --seed 0", as if the seed mattered.
"""

from __future__ import annotations

import ssl

import pytest
from _fixed_reply_server import answering

from jsonrpc_mini.testing import check

pytestmark = pytest.mark.timeout(60)

HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
HTML_PAGE = b'<!DOCTYPE HTML>\n<html lang="en">\n<head><title>Error response</title></head></html>\n'


@pytest.mark.parametrize(("answer", "shown"), [(HTTP_400, "HTTP/1.1 400 Bad Request"), (HTML_PAGE, "<!DOCTYPE HTML>")])
def test_an_http_server_is_one_connect_failure(answer: bytes, shown: str) -> None:
    with answering(answer) as (host, port):
        report = check(host, port, timeout=1)
    assert [(r.name, r.status) for r in report.results] == [("connect", "fail")]
    assert report.results[0].detail == (
        f"cannot check {host}:{port}: it answered with HTTP ({shown!r}), not JSON-RPC: the check speaks"
        " JSON-RPC 2.0 over a plain TCP (or TLS) byte stream, one JSON text after another, not over HTTP"
    )
    assert "replay with" not in report.render()


def test_an_https_server_checked_over_tls_is_one_connect_failure(contexts: tuple[ssl.SSLContext, ...]) -> None:
    # (--tls against an HTTPS server: 20 probes failed "invalid JSON" and the report
    # named a seed to replay, as before the plain-text case was caught)
    server_ctx, client_ctx = contexts
    with answering(HTML_PAGE, ssl=server_ctx) as (host, port):
        report = check(host, port, timeout=1, ssl=client_ctx)
    assert [(r.name, r.status) for r in report.results] == [("connect", "fail")]
    assert report.results[0].detail.startswith(f"cannot check {host}:{port}: it answered with HTTP ('<!DOCTYPE HTML>')")
    assert "replay with" not in report.render()


def test_a_json_rpc_server_over_tls_is_still_probed(contexts: tuple[ssl.SSLContext, ...]) -> None:
    server_ctx, client_ctx = contexts
    reply = b'{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"x"}\n'
    with answering(reply, ssl=server_ctx) as (host, port):
        report = check(host, port, timeout=1, ssl=client_ctx, only=["method-not-found", "parse-error"])
    assert [r.name for r in report.results] == ["method-not-found", "parse-error"]


def test_json_that_mentions_http_is_left_to_the_probes() -> None:
    reply = b'{"jsonrpc":"2.0","error":{"code":-32601,"message":"HTTP/1.1 not here"},"id":"x"}\n'
    with answering(reply) as (host, port):
        report = check(host, port, timeout=1)
    assert report.results[0].name == "method-not-found" and len(report.results) > 1
