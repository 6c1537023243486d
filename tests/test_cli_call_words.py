"""``python -m jsonrpc_mini call``: the words after METHOD are JSON, negative numbers included.

Every JSON number is an argument, also one with a minus sign and an exponent
(``-1e5``, ``-2.5E-3``), which argparse alone takes for an unknown option. A valid
JSON value that Python cannot hold (an integer longer than its 4,300-digit limit,
nesting too deep for its decoder) is a usage error, as ``1e400`` is, rather than a
string sent in its place or a traceback; so is a port not written in ASCII digits
(``²``, which ``int()`` refuses, or ``٣``, which it reads as 3), or an IPv6 host with
one bracket of its two. ``--host [::1]`` (serve, demo) is the address ``::1``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _driver_helpers import LeakCheck, ipv6_loopback, serving

from jsonrpc_mini import RPCServer
from jsonrpc_mini.__main__ import main

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


def _echo_server() -> RPCServer:
    server = RPCServer()
    server.register_function(lambda *args, **kwargs: [list(args), kwargs], name="echo")
    return server


def test_negative_numbers_with_an_exponent_are_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with serving(_echo_server()) as (host, port):
        words = ["-1e5", "-2.5E-3", "-1", "-0.5", "-0", "x=-4e2"]
        assert main(["call", f"{host}:{port}", "echo", *words]) == 0
        out = capsys.readouterr().out
    assert json.loads(out) == [[-100000.0, -0.0025, -1, -0.5, 0], {"x": -400.0}]


def test_a_word_starting_with_a_minus_and_a_digit_is_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with serving(_echo_server()) as (host, port):
        assert main(["call", f"{host}:{port}", "echo", "-1x", "--timeout", "5"]) == 0
        assert json.loads(capsys.readouterr().out) == [["-1x"], {}]


@pytest.mark.parametrize(
    ("word", "says"),
    [
        ("7" * 5000, "longer than"),
        ("-" + "7" * 5000, "longer than"),
        ("x=" + "7" * 5000, "longer than"),
        ("[" * 100_000, "nested too deeply"),
        ('{"a":' * 100_000, "nested too deeply"),
    ],
)
def test_json_python_cannot_hold_is_a_usage_error(word: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Refused before connecting: nothing listens on port 1.
    assert main(["call", "127.0.0.1:1", "echo", word]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument ") and says in err
    assert "Traceback" not in err and len(err) < 300


@pytest.mark.parametrize("address", ["127.0.0.1:²", "127.0.0.1:1²", "localhost:٣", "[::1:5000", "::1]:5000"])
def test_a_port_not_in_ascii_digits_is_a_usage_error(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", address, "add"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: address must be HOST:PORT, not {address!r}\n"


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_an_ipv6_host_in_brackets_is_taken_by_serve_and_demo(capsys: pytest.CaptureFixture[str]) -> None:
    # `--host [::1]`, as the address is written in HOST:PORT, was handed on as written:
    # "cannot listen on [[::1]]:0: [Errno -2] Name or service not known".
    assert main(["demo", "--host", "[::1]"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("server listening on [::1]:")
    assert "add(1, 2) -> 3" in out
