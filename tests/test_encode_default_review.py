"""``default=``: a hook whose value holds itself is refused at once, by both encoders.

A hook returning a list or dict that holds itself cannot be written: the standard
library says "Circular reference detected" at once. With orjson the codec used to
look for NaN in the hook's value by a walk that followed the cycle for ever (one
thread at 100% CPU, the call never answered). Each case runs in a child process so
that the old code's endless loop is a bounded failure here, not a hung test run.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jsonrpc_mini._json import HAVE_ORJSON

pytestmark = pytest.mark.timeout(120)

ENCODERS = [False, True] if HAVE_ORJSON else [False]

_CHILD = r"""
import json, sys
from jsonrpc_mini._codec import Response, encode_message
from jsonrpc_mini._errors import InternalError
from jsonrpc_mini._json_hook import HookedCodec

class Thing:
    pass

def self_list(obj):
    value = [1]
    value.append(value)
    return value

def self_dict(obj):
    value = {"a": 1.5}
    value["me"] = value
    return value

def shared_nan(obj):
    inner = [2.0, float("nan")]
    return {"x": inner, "y": [inner, (inner,)]}

out = {}
for name, hook in (("self_list", self_list), ("self_dict", self_dict), ("shared_nan", shared_nan)):
    codec = HookedCodec(hook, use_orjson=sys.argv[1] == "1")
    try:
        codec.dumps({"r": Thing()})
        out[name] = "written"
    except (TypeError, ValueError) as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
    reply = json.loads(encode_message(Response(7, Thing()), codec.dumps))
    out[name + " reply"] = [reply["id"], reply["error"]["code"], reply["error"]["message"]]
    out[name + " code"] = InternalError.CODE
print(json.dumps(out))
"""


@pytest.mark.parametrize("use_orjson", ENCODERS)
def test_a_hook_value_holding_itself_is_refused_not_walked_for_ever(use_orjson: bool) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, "1" if use_orjson else "0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:  # (run() kills the child first)
        pytest.fail("encoding a hook's self-holding value did not end within 60 s")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for name in ("self_list", "self_dict"):
        assert out[name] == "ValueError: Circular reference detected"
        assert out[name + " reply"] == [
            7,
            out[name + " code"],
            "Internal error: result is not JSON-serialisable (ValueError: Circular reference detected)",
        ]
    # A list met twice in the value is looked at (and its NaN refused), not skipped.
    assert out["shared_nan"] == "ValueError: NaN and Infinity are not valid JSON"
