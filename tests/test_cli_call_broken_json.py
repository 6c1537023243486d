"""``call``: a word that starts as JSON but is not valid JSON is a usage error, not text.

``call HOST:PORT kv.set cfg '{"a": 1,}'`` (a trailing comma) used to send the string
``'{"a": 1,}'``, which the server stored as text without a word: a typo became data.
A word starting with ``{``, ``[`` or ``"`` is meant as JSON: when it does not parse,
``call`` exits 2 saying why and how to send it as text (a JSON string, quoted for a
shell). Bare words are still strings, and a JSON string is sent as its text.
"""

from __future__ import annotations

import json
import shlex

import pytest
from _driver_helpers import serving

from jsonrpc_mini import RPCServer
from jsonrpc_mini.__main__ import main

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("word", ['{"a": 1,}', "[1, 2", ' ["x"', '"abc', 'cfg={"a": 1,}'])
def test_broken_json_is_refused_before_connecting(word: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "127.0.0.1:1", "kv.set", "cfg", word]) == 2  # (nothing listens on port 1)
    err = capsys.readouterr().err
    text = word.partition("=")[2] if word.startswith("cfg=") else word
    assert err.startswith(f"error: argument {word!r}: not valid JSON (")
    assert err.endswith(f"); to send it as text, write it as a JSON string: {shlex.quote(json.dumps(text))}\n")


def test_bare_words_and_json_strings_are_still_text(capsys: pytest.CaptureFixture[str]) -> None:
    server = RPCServer()
    server.register_function(lambda *args, **kwargs: [list(args), kwargs], name="echo")
    with serving(server) as (host, port):
        words = ["x", "a{b", '"[1, 2"', "NaN", "http://h/?q=1", 'k="{"']
        assert main(["call", f"{host}:{port}", "echo", *words]) == 0
        out = capsys.readouterr().out
    assert json.loads(out) == [["x", "a{b", "[1, 2", "NaN", "http://h/?q=1"], {"k": "{"}]
