"""The sync server's one-line request (``SessionCalls._plain_reply``): every count of arguments.

A request that arrives alone on its line is run straight from its JSON object;
one or two arguments are passed one by one, any other count as ``*params``. Each
must reach the handler's parameters exactly as the general path binds them, in
order, defaults and ``*args`` included, and a count that does not bind must get
-32602 as there.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _driver_helpers import CODEC_IDS, CODECS, LeakCheck, raw_connect, serving

from jsonrpc_mini import RPCServer
from jsonrpc_mini._json import JsonCodec

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _no_leaks() -> Any:
    with LeakCheck():
        yield


CASES: list[tuple[str, list[Any], Any]] = [
    # (method, params, the result, or the error code as ("error", code))
    ("none", [], "none"),
    ("one", [7], ["one", 7]),
    ("sub", [10, 3], 7),  # (not symmetric: the order shows)
    ("sub", [3, 10], -7),
    ("pair", [5], ["pair", 5, 10]),
    ("pair", [5, 6], ["pair", 5, 6]),
    ("three", [1, 2, 3], [1, 2, 3]),
    ("many", [], []),
    ("many", [1], [1]),
    ("many", [1, 2], [1, 2]),
    ("many", [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]),
    ("sub", [1, 2, 3], ("error", -32602)),  # too many
    ("one", [], ("error", -32602)),  # too few
    ("none", [1], ("error", -32602)),
    ("three", [1, 2], ("error", -32602)),
]


@pytest.mark.parametrize("use_orjson", CODECS, ids=CODEC_IDS)
def test_every_count_of_arguments_reaches_its_parameters_in_order(use_orjson: bool) -> None:
    s = RPCServer(max_concurrent_calls=1)
    s.codec = JsonCodec(use_orjson=use_orjson)
    s.register_function(lambda: "none", name="none")
    s.register_function(lambda x: ["one", x], name="one")
    s.register_function(lambda a, b: a - b, name="sub")
    s.register_function(lambda a, b=10: ["pair", a, b], name="pair")
    s.register_function(lambda a, b, c: [a, b, c], name="three")
    s.register_function(lambda *args: list(args), name="many")
    with serving(s) as address, raw_connect(address) as peer:
        for n, (method, params, want) in enumerate(CASES):
            # Alone on its line, the reply awaited before the next: the one-line way.
            line = {"jsonrpc": "2.0", "method": method, "params": params, "id": n}
            peer.sendall(json.dumps(line, separators=(",", ":")).encode() + b"\n")
            reply = peer.json_line()
            assert reply["id"] == n, reply
            if isinstance(want, tuple):
                assert reply["error"]["code"] == want[1], (method, params, reply)
            else:
                assert reply == {"jsonrpc": "2.0", "id": n, "result": want}, (method, params)
