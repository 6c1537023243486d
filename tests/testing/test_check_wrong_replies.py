"""check HOST:PORT against servers whose replies are wrong in ways the probes did not foresee.

Each used to end the whole run with a traceback and no report (review16 P2): a
Content-Length body that is not UTF-8 JSON, a Content-Length that is not a number,
an ``"error"`` member that is a string, a reply id that is an array or an object.
Now that probe fails with a detail, the other probes run and the report is printed
(exit status 1); any other exception a probe raises fails that probe, named.
"""

from __future__ import annotations

import contextlib
import json
import socketserver
import threading

import pytest
from _fixed_reply_server import answering

from jsonrpc_mini.testing import _probes, check
from jsonrpc_mini.testing.__main__ import main

pytestmark = pytest.mark.timeout(120)


def _framed(body: bytes, length: bytes | None = None) -> bytes:
    return b"Content-Length: " + (b"%d" % len(body) if length is None else length) + b"\r\n\r\n" + body


_UTF16 = '{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}'.encode("utf-16")

CASES = [
    # (reply, the probe it breaks, words of that probe's detail)
    (_framed(b"hello"), "method-not-found", "Content-Length body that is not JSON: b'hello'"),
    (_framed(b"\xff\xfe"), "method-not-found", "Content-Length body that is not UTF-8"),
    (_framed(_UTF16), "method-not-found", "Content-Length body that is not UTF-8"),  # (was read as a reply)
    (_framed(b"{}", b"abc"), "method-not-found", "Content-Length that is not a number of bytes"),
    (_framed(b"{}", b"-1"), "method-not-found", "Content-Length that is not a number of bytes"),
    (b'{"jsonrpc":"2.0","error":"oops","id":3}\n', "params-not-structured", "error member must be an object"),
    (b'{"jsonrpc":"2.0","result":1,"id":[11]}\n', "pipelined", "id must be a string, a number or null"),
    (b'{"jsonrpc":"2.0","result":1,"id":{"a":11}}\n', "pipelined", "id must be a string, a number or null"),
]


@pytest.mark.parametrize(("reply", "probe", "words"), CASES)
def test_a_wrong_reply_fails_its_probe_and_the_others_still_run(reply: bytes, probe: str, words: str) -> None:
    with answering(reply) as address:
        report = check(*address, timeout=2, only=[probe, "half-close"])
    results = {r.name: r for r in report.results}
    assert list(results) == [probe, "half-close"], report.render()  # (the last probe)
    assert results[probe].status == "fail"
    assert words in results[probe].detail, results[probe].detail
    assert results[probe].detail.endswith("[seed 0]")
    assert "could not handle" not in results[probe].detail  # named precisely, not by the catch-all
    assert results["half-close"].status == "fail"  # (it ran: every reply of this server is wrong)
    assert not report.ok


@pytest.mark.parametrize(("reply", "probe"), [(c[0], c[1]) for c in CASES[::3]])
def test_the_cli_prints_the_report_and_exits_1(reply: bytes, probe: str, capsys: pytest.CaptureFixture[str]) -> None:
    with answering(reply) as (host, port):
        assert main(["check", f"{host}:{port}", "--timeout", "2", "--only", probe]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"jsonrpc_mini check {host}:{port} (seed 0)\n")
    assert f"FAIL  {probe}" in out and out.endswith("0 passed, 1 failed, 0 warnings (replay with --seed 0)\n")


def test_any_other_exception_in_a_probe_fails_that_probe_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(p: object) -> tuple[str, str]:
        raise KeyError("surprise")

    def fine(p: object) -> tuple[str, str]:
        return "pass", "fine"

    monkeypatch.setattr(_probes, "PROBES", [("broken", broken), ("fine", fine)])
    with answering(b"") as address:
        report = check(*address, timeout=2)
    assert [(r.name, r.status) for r in report.results] == [("broken", "fail"), ("fine", "pass")]
    assert report.results[0].detail == "the probe could not handle a reply: KeyError: 'surprise' [seed 0]"


class _EchoWithTextIds(socketserver.StreamRequestHandler):
    """Echoes ``echo``'s argument with the id turned into a string; -32601 (id kept) otherwise."""

    def handle(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self.rfile:
                request = json.loads(line)
                if isinstance(request, dict) and request.get("method") == "echo":
                    reply = {"jsonrpc": "2.0", "id": str(request["id"]), "result": request["params"][0]}
                else:
                    error = {"code": -32601, "message": "Method not found"}
                    reply = {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
                self.wfile.write(json.dumps(reply).encode() + b"\n")


def test_echo_large_fails_a_reply_with_another_id() -> None:
    # It checked the result only: an echo that came back with id "24" for 24 passed,
    # though no client would match that reply to its call.
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoWithTextIds)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = srv.server_address[:2]
        report = check(str(host), int(port), timeout=2, echo_method="echo", only=["echo-large"])
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)
    (result,) = report.results
    assert result.status == "fail", report.render()
    assert "expected id 24 in the reply to echo, got '24'" in result.detail
