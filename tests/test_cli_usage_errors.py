"""``python -m jsonrpc_mini``: usage errors end in a message and an exit status, never a traceback.

``call --timeout`` refuses what is not a positive number of seconds (exit 2, as any
usage error); ``demo --port`` on a port in use says it cannot listen (exit 1, as
``serve``); ``serve MODULE:OBJECT`` refuses an ``aio.RPCServer`` (exit 2) rather
than exposing the aio server's own methods as remote ones. ``call`` prints a result
stdout cannot encode (a lone surrogate, non-ASCII on an ASCII stdout) with ASCII
escapes rather than crash after the call succeeded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _driver_helpers import LeakCheck, serving

from jsonrpc_mini import RPCServer
from jsonrpc_mini.__main__ import build_parser, main

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


@pytest.mark.parametrize("value", ["0", "-1", "nan", "-inf", "soon"])
def test_call_refuses_a_timeout_that_is_not_a_positive_number(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["call", "127.0.0.1:1", "add", f"--timeout={value}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and repr(value) in err
    assert "Traceback" not in err


def test_call_takes_a_positive_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    s = RPCServer()
    s.register_function(lambda a, b: a + b, name="add")
    with serving(s) as (host, port):
        for value in ("0.5", "inf"):
            assert main(["call", f"{host}:{port}", "add", "1", "2", "--timeout", value]) == 0
            assert capsys.readouterr().out == "3\n"


def test_demo_on_a_port_in_use_says_it_cannot_listen(capsys: pytest.CaptureFixture[str]) -> None:
    s = RPCServer()
    with serving(s) as (_host, port):
        assert main(["demo", "--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "server listening" not in captured.out


AIO_MODULE = textwrap.dedent(
    """
    from jsonrpc_mini import aio

    asrv = aio.RPCServer()

    @asrv.register
    def add(a, b):
        return a + b
    """
)


def test_serve_refuses_an_aio_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_aio_target.py").write_text(AIO_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cli_aio_target", raising=False)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with serving(RPCServer()) as (_host, port):  # (a port in use: were it served, it would fail, not hang)
        assert main(["serve", "cli_aio_target:asrv", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'cli_aio_target:asrv' is an aio.RPCServer; ")
    assert "serve_forever" in err
    assert "registered:" not in err and "serving on" not in err  # nothing exposed, nothing bound
    assert {sig: signal.getsignal(sig) for sig in before} == before


def _unicode_server() -> RPCServer:
    s = RPCServer()
    s.register_function(lambda: "\ud800", name="lone")
    s.register_function(lambda: {"t": "\U0001f600 \u6d4b\u8bd5"}, name="emoji")
    return s


def test_call_prints_a_lone_surrogate_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    # Used to be a UnicodeEncodeError traceback and exit 1, although the call succeeded.
    with serving(_unicode_server()) as (host, port):
        assert main(["call", f"{host}:{port}", "lone"]) == 0
        out = capsys.readouterr().out
        assert out == '"\\ud800"\n'
        assert json.loads(out) == "\ud800"
        assert main(["call", f"{host}:{port}", "emoji"]) == 0
        assert capsys.readouterr().out == '{\n  "t": "\U0001f600 \u6d4b\u8bd5"\n}\n'  # as it is where it can be


def test_call_prints_non_ascii_escaped_on_an_ascii_stdout() -> None:
    with serving(_unicode_server()) as (host, port):
        done = subprocess.run(
            [sys.executable, "-m", "jsonrpc_mini", "call", f"{host}:{port}", "emoji"],
            capture_output=True,
            env={**os.environ, "PYTHONIOENCODING": "ascii"},
            timeout=60,
            check=False,
        )
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.decode("ascii") == '{\n  "t": "\\ud83d\\ude00 \\u6d4b\\u8bd5"\n}\n'
    assert json.loads(done.stdout) == {"t": "\U0001f600 \u6d4b\u8bd5"}


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "math", "--port", "70000"],
        ["serve", "math", "--port=65536"],
        ["serve", "math", "--port", "http"],
        ["demo", "--port", "-1"],
        ["demo", "--port", "99999"],
    ],
)
def test_serve_and_demo_refuse_a_port_out_of_range_as_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Used to be a ValueError traceback from the server's port check, exit 1 (review16 P1).
    value = argv[-1].rpartition("=")[2]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(
        f"error: argument --port: must be a port number from 0 to 65535, not {value!r}"
    )
    assert "Traceback" not in err and "registered:" not in err


def test_serve_and_demo_take_port_0_and_65535() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo", "--port", "0"]).port == 0
    assert parser.parse_args(["serve", "math", "--port", "65535"]).port == 65535
    assert parser.parse_args(["serve", "math"]).port == 5000


@pytest.mark.parametrize("argv", [["serve", "math", "--path", ""], ["serve", "math", "--path="]])
def test_serve_refuses_an_empty_path_as_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # Used to serve at a Linux autobind abstract name nobody could reach (review16 P9),
    # then a ValueError traceback from the server's check.
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith("error: argument --path: is empty: give a file system path")
    assert "Traceback" not in err and "registered:" not in err


@pytest.mark.parametrize("argv", [["serve", "math", "--host", ""], ["serve", "math", "--host="], ["demo", "--host="]])
def test_serve_and_demo_refuse_an_empty_host_as_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Used to listen on every interface, unasked (review16 P11).
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(
        "error: argument --host: is empty: give 127.0.0.1, or 0.0.0.0 or :: to listen on every interface"
    )
    assert "Traceback" not in err and "registered:" not in err


SERVER_MODULE = textwrap.dedent(
    """
    from jsonrpc_mini import RPCServer

    plain = RPCServer()
    debugging = RPCServer(debug=True)
    """
)


def test_serve_debug_refuses_a_server_object_made_without_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # --debug used to be ignored silently for MODULE:OBJECT naming an RPCServer (review16, minor list).
    (tmp_path / "cli_server_target.py").write_text(SERVER_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cli_server_target", raising=False)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with serving(RPCServer()) as (_host, port):  # a port in use: were it served, it would fail, not hang
        assert main(["serve", "cli_server_target:plain", "--debug", "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert err == (
            "error: --debug cannot change 'cli_server_target:plain', an RPCServer made without it:"
            " make it with RPCServer(debug=True), or serve the module's functions\n"
        )
        # Past that check (to the bind, which fails): --debug on a debug server, or no --debug.
        for argv in (["cli_server_target:debugging", "--debug"], ["cli_server_target:plain"]):
            assert main(["serve", *argv, "--port", str(port)]) == 1
            assert capsys.readouterr().err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert {sig: signal.getsignal(sig) for sig in before} == before
