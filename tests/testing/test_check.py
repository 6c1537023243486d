"""check HOST:PORT: the probes pass against our server and catch a broken one."""

from __future__ import annotations

import contextlib
import json
import socketserver
import subprocess
import sys
import threading

import pytest

from jsonrpc_mini import RPCServer
from jsonrpc_mini.testing import CheckReport, ProbeResult, check
from jsonrpc_mini.testing.__main__ import main, parse_address

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def address():
    server = RPCServer()
    server.register_function(lambda value: value, name="echo")
    yield server.start("127.0.0.1", 0)
    server.shutdown()


def test_our_server_passes_every_probe(address):
    report = check(*address, echo_method="echo", timeout=5)
    failed = [r for r in report.results if r.status != "pass"]
    assert not failed, report.render()
    assert report.ok
    assert len(report.results) >= 20
    assert "0 failed, 0 warnings" in report.render()


def test_without_echo_method_the_echo_probe_is_a_warning(address):
    report = check(*address, timeout=5, only=["echo-large", "method-not-found"])
    assert [(r.name, r.status) for r in report.results] == [("method-not-found", "pass"), ("echo-large", "warn")]
    assert report.ok


def test_cli_exit_status_zero_and_report(address):
    host, port = address
    proc = subprocess.run(
        [sys.executable, "-m", "jsonrpc_mini.testing", "check", f"{host}:{port}", "--echo-method", "echo"],
        check=False,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"jsonrpc_mini check {host}:{port} (seed 0)" in proc.stdout
    assert "PASS  ids-echoed" in proc.stdout


class _LineServer(socketserver.BaseRequestHandler):
    """Reads newline-terminated requests and answers each with ``answer(line)``."""

    def answer(self, line: bytes) -> None:
        raise NotImplementedError

    def handle(self):
        self.request.settimeout(2)
        buf = b""
        try:
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self.answer(line)
        except OSError:
            return


@contextlib.contextmanager
def _serving(handler, server_class=socketserver.ThreadingTCPServer):
    srv = server_class(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv.server_address
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


class _WrongServer(_LineServer):
    """Answers every line with a result and id 1: wrong for almost every probe; one client at a time."""

    def answer(self, line: bytes) -> None:
        self.request.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "result": 0}).encode() + b"\n")


@pytest.fixture
def wrong_server():
    with _serving(_WrongServer, socketserver.TCPServer) as address:
        yield address


def test_a_wrong_server_fails_and_the_cli_exits_1(wrong_server):
    host, port = wrong_server
    report = check(host, port, timeout=0.5, only=["method-not-found", "parse-error", "ids-echoed", "stalled-client"])
    status = {r.name: r.status for r in report.results}
    assert status == {"method-not-found": "fail", "parse-error": "fail", "ids-echoed": "fail", "stalled-client": "fail"}
    assert not report.ok
    assert "[seed 0]" in report.results[0].detail
    assert "(replay with --seed 0)" in report.render()
    assert main(["check", f"{host}:{port}", "--timeout", "0.5", "--only", "parse-error"]) == 1


def test_unreachable_server_is_one_failure():
    report = check("127.0.0.1", 1, timeout=1)
    assert [(r.name, r.status) for r in report.results] == [("connect", "fail")]
    assert main(["check", "127.0.0.1:1", "--timeout", "1"]) == 1


def test_address_parsing_and_usage_errors():
    assert parse_address("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert parse_address("[::1]:80") == ("::1", 80)
    with pytest.raises(SystemExit) as info:
        main(["check", "nohost"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["check", "127.0.0.1:1", "--only", "no-such-probe"])
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("only", "error", "words"),
    [
        (["nope"], ValueError, ["'nope'", "method-not-found"]),
        (["method-not-found", "typo"], ValueError, ["'typo'"]),
        ([], ValueError, ["only=[]", "leave it out"]),
        ("method-not-found", TypeError, ["list of probe names"]),
    ],
)
def test_check_refuses_an_only_that_would_skip_probes(address, only, error, words):
    # A misspelt name (or only=[]) used to run nothing and report ok: a gate that checks nothing.
    with pytest.raises(error) as info:
        check(*address, timeout=1, only=only)
    assert all(word in str(info.value) for word in words), info.value


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), 1e300, True, "5"])
def test_check_refuses_a_timeout_that_is_not_positive_finite_seconds(address, timeout):
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds") as info:
        check(*address, timeout=timeout, only=["method-not-found"])
    assert repr(timeout) in str(info.value)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "1e300", "soon"])
def test_cli_timeout_that_is_not_positive_finite_is_a_usage_error(value, capsys):
    # Used to be a traceback (or a bogus "connect" failure for 0) with exit status 1.
    with pytest.raises(SystemExit) as info:
        main(["check", "127.0.0.1:1", f"--timeout={value}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and repr(value) in err


def test_report_rendering():
    report = CheckReport("h", 1, 7, [ProbeResult("a", "pass", "fine"), ProbeResult("bb", "warn", "hmm")])
    assert report.ok
    assert report.render().splitlines() == [
        "jsonrpc_mini check h:1 (seed 7)",
        "  PASS  a   fine",
        "  WARN  bb  hmm",
        "1 passed, 0 failed, 1 warning",  # (it said "1 warnings")
    ]
    two = CheckReport("h", 1, 7, [ProbeResult("a", "warn", "x"), ProbeResult("b", "warn", "y")])
    assert two.render().splitlines()[-1] == "0 passed, 0 failed, 2 warnings"


class _ContentLengthServer(_LineServer):
    """A correct-enough peer that answers in Content-Length framing, one byte per write."""

    def answer(self, line: bytes) -> None:
        request = json.loads(line)
        body = json.dumps(
            {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": "Méthode 🎉"}},
            ensure_ascii=False,
        ).encode()
        frame = b"Content-Length: %d\r\n\r\n" % len(body) + body
        for i in range(len(frame)):
            self.request.sendall(frame[i : i + 1])


class _GarbageServer(socketserver.BaseRequestHandler):
    """Answers with bytes that are not JSON."""

    def handle(self):
        self.request.settimeout(2)
        try:
            if self.request.recv(65536):
                self.request.sendall(b"{not json}\n")
        except OSError:
            return


def test_content_length_replies_split_inside_utf8_are_read():
    with _serving(_ContentLengthServer) as address:
        report = check(*address, timeout=2, only=["method-not-found", "ids-echoed"])
    assert report.ok, report.render()
    assert [r.status for r in report.results] == ["pass", "pass"]


def test_invalid_json_from_the_server_is_a_failure():
    with _serving(_GarbageServer) as address:
        report = check(*address, timeout=0.5, only=["method-not-found"])
    (result,) = report.results
    assert result.status == "fail"
    assert "JSON" in result.detail


class _DeepServer(_LineServer):
    """Answers every line with 2,000 opening brackets (review9 K7), newline-framed or with a header."""

    framed = False

    def answer(self, line: bytes) -> None:
        body = b"[" * 2000 + b"\n"
        self.request.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body if self.framed else body)


class _DeepFramedServer(_DeepServer):
    framed = True


@pytest.mark.parametrize("handler", [_DeepServer, _DeepFramedServer])
def test_a_reply_nested_too_deep_to_read_is_a_failure_not_a_crash(handler):
    with _serving(handler) as address:
        report = check(*address, timeout=0.5, only=["method-not-found"])
    (result,) = report.results
    assert result.status == "fail"
    assert "nested too deep to read" in result.detail


@pytest.mark.parametrize("port", [70000, 65536, -1, None, "5000", True, 1.5])
def test_check_refuses_a_port_that_is_not_a_tcp_port_number(port):
    # 70000 used to probe port 4464 (the OS wraps it) and report on it as "127.0.0.1:70000";
    # None and -1 gave a "connect" failure rather than a usage error (review16 P8).
    with pytest.raises(ValueError, match=r"^port must be an int from 0 to 65535, not ") as info:
        check("127.0.0.1", port, timeout=1, only=["method-not-found"])
    assert str(info.value).endswith(repr(port))
