"""``python -m jsonrpc_mini call``: what it prints of a reply.

An error reply's ``data`` goes to stderr after the error line: as JSON, and a
``traceback`` member (what ``serve --debug`` sends) as the text it is (review16 P6:
it was dropped, so ``serve --debug`` was of no use from the command line).

``call ... | head -1`` and ``python -m jsonrpc_mini.testing check ... | head -1``:
when stdout's reader has gone, they exit 1 without a word (review16 P10: a
BrokenPipeError traceback, or "Exception ignored ... BrokenPipeError" at exit).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from _driver_helpers import LeakCheck, serving

from jsonrpc_mini import RPCError, RPCServer
from jsonrpc_mini.__main__ import main

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def _failing_server(*, debug: bool) -> RPCServer:
    s = RPCServer(debug=debug)

    def fail() -> None:
        raise ValueError("bad thing")

    def refuse() -> None:
        raise RPCError(7, "refused", {"why": ["quota", "é"], "n": 1.5})

    def plain() -> None:
        raise RPCError(8, "no data")

    def zero() -> None:
        raise RPCError(9, "data is 0", 0)

    for function in (fail, refuse, plain, zero):
        s.register_function(function)
    return s


def test_call_prints_the_traceback_serve_debug_sends(capsys: pytest.CaptureFixture[str]) -> None:
    with serving(_failing_server(debug=True)) as (host, port):
        assert main(["call", f"{host}:{port}", "fail"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[:3] == [
        "error: fail: [-32603] Internal error in 'fail': ValueError: bad thing",
        'data: {"type": "ValueError"}',
        "Traceback (most recent call last):",
    ]
    assert lines[-1] == "ValueError: bad thing"
    assert any("raise ValueError" in line for line in lines)  # the handler's own line


def test_call_prints_an_error_reply_data_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    with serving(_failing_server(debug=False)) as (host, port):
        assert main(["call", f"{host}:{port}", "refuse"]) == 1
        assert capsys.readouterr().err == 'error: refuse: [7] refused\ndata: {"why": ["quota", "é"], "n": 1.5}\n'
        assert main(["call", f"{host}:{port}", "plain"]) == 1  # no data: the error line alone
        assert capsys.readouterr().err == "error: plain: [8] no data\n"
        assert main(["call", f"{host}:{port}", "zero"]) == 1  # data, if false
        assert capsys.readouterr().err == "error: zero: [9] data is 0\ndata: 0\n"
        assert main(["call", f"{host}:{port}", "fail"]) == 1  # no --debug: no traceback sent
        assert capsys.readouterr().err == "error: fail: [-32603] Internal error in 'fail'\n"


def _into_a_closed_pipe(*args: str) -> tuple[int, str]:
    """Run ``python -m ARGS`` with stdout a pipe that nobody reads: its exit status and stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader at all: every write to the pipe fails (EPIPE), whenever it comes
    try:
        done = subprocess.run(
            [sys.executable, "-m", *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, check=False
        )
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


@pytest.mark.parametrize("count", [3, 200_000])  # written at exit's flush / by the print itself
def test_call_into_a_closed_pipe_exits_quietly(count: int) -> None:
    s = RPCServer()
    s.register_function(lambda n: list(range(n)), name="seq")
    with serving(s) as (host, port):
        assert _into_a_closed_pipe("jsonrpc_mini", "call", f"{host}:{port}", "seq", str(count)) == (1, "")


def test_check_into_a_closed_pipe_exits_quietly() -> None:
    with serving(RPCServer()) as (host, port):
        done = _into_a_closed_pipe("jsonrpc_mini.testing", "check", f"{host}:{port}", "--only", "method-not-found")
    assert done == (1, "")
