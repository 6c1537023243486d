"""The two JSON codecs a run can measure, and how to pin jsonrpc_mini to one of them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from jsonrpc_mini import _json

CODECS = ("stdlib", "orjson")


def available() -> list[str]:
    """The codecs this environment can measure."""
    return ["stdlib", "orjson"] if _json.HAVE_ORJSON else ["stdlib"]


def raw_codec(name: str) -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    """(loads, dumps) as hand-written code would use them: no validation hooks."""
    if name == "orjson":
        import orjson

        return orjson.loads, orjson.dumps

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    return json.loads, dumps


@contextlib.contextmanager
def pinned(name: str) -> Iterator[None]:
    """jsonrpc_mini objects created inside use ``name`` (it picks orjson when installed)."""
    saved = _json.HAVE_ORJSON
    _json.HAVE_ORJSON = name == "orjson"
    try:
        yield
    finally:
        _json.HAVE_ORJSON = saved
