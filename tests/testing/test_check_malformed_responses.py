"""check HOST:PORT names what is wrong with a response that breaks JSON-RPC 2.0's response rules.

A server answering every request with one fixed, malformed response: the probe that
reads it fails, and its detail says which rule the response broke (and quotes it).
"""

from __future__ import annotations

import pytest
from _fixed_reply_server import answering

from jsonrpc_mini.testing import check

pytestmark = pytest.mark.timeout(120)


CASES = [
    # (the one reply, the probe's detail starts with)
    (b"[1]\n", "expected a response object, got [1]"),
    (b'{"jsonrpc":"1.0","id":1,"error":{"code":-32601,"message":"x"}}\n', 'response without "jsonrpc": "2.0"'),
    (b'{"jsonrpc":"2.0","id":1}\n', "a response needs exactly one of result and error"),
    (b'{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"x"}}\n', "a response needs exactly one"),
    (b'{"jsonrpc":"2.0","error":{"code":-32601,"message":"x"}}\n', "response without an id member"),
    (b'{"jsonrpc":"2.0","id":1,"error":{"code":"-32601","message":"x"}}\n', "expected an error -32601, got"),
    (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32601}}\n', "expected an error -32601, got"),
    (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"x"}}\n', "expected error code -32601, got -32600"),
    (b'{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"x"}}\n', "expected id 1, got 2"),
    (b'{"jsonrpc":"2.0","id":1.0,"error":{"code":-32601,"message":"x"}}\n', "expected id 1, got 1.0"),
]


@pytest.mark.parametrize(("reply", "words"), CASES)
def test_a_malformed_response_fails_its_probe_naming_the_rule(reply: bytes, words: str) -> None:
    with answering(reply) as address:
        report = check(*address, timeout=2, only=["method-not-found"])
    (result,) = report.results
    assert result.name == "method-not-found"
    assert result.status == "fail", report.render()
    assert result.detail.startswith(words), result.detail
    assert not report.ok


def test_a_right_response_passes() -> None:
    """The same server with a correct reply: the failures above come from the reply alone."""
    with answering(b'{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}\n') as address:
        report = check(*address, timeout=2, only=["method-not-found"])
    assert [r.status for r in report.results] == ["pass"], report.render()
