"""Coverage-guided fuzzing of the framers with atheris, through Hypothesis' ``fuzz_one_input``.

Run (see fuzz/README.md)::

    pip install atheris            # a libFuzzer build; may not exist for every Python
    python fuzz/atheris_framing.py -atheris_runs=200000 -max_len=4096

Without atheris, ``python fuzz/atheris_framing.py --self-test N`` feeds N random
inputs through the same entry point (``fuzz/test_fuzz_atheris_entry.py`` does that in CI).

Each input (bytes from libFuzzer) is turned by Hypothesis into a wire and a chunking;
the property checked is the one of ``fuzz/test_fuzz_framing.py``: for any bytes no
reader raises, and the events do not depend on how the bytes were split.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_UNDER_ATHERIS = __name__ == "__main__" and "--self-test" not in sys.argv
if _UNDER_ATHERIS:
    import atheris  # type: ignore[import-not-found]

    # Instrument only the library (instrument_all would take minutes on Hypothesis).
    _instrumented: Any = atheris.instrument_imports(include=["jsonrpc_mini"])
else:
    _instrumented = contextlib.nullcontext()

with _instrumented:
    from jsonrpc_mini._framing import FrameError, Message, make_framer
    from jsonrpc_mini._json import JsonCodec
    from jsonrpc_mini._protocol import Reply, ServerConnection
    from jsonrpc_mini.testing import strategies as rst

_LOADS = JsonCodec().loads
_TOKENS = [b"{", b"}", b"[", b"]", b'"', b"\\", b"\n", b"\r\n", b" ", b",", b":", b"1", b"null", b"\xff", b"\xc3\xa9"]
_TOKENS += [b'{"jsonrpc":"2.0","method":"m","id":1}', b"Content-Length: 2\r\n\r\n", b"Content-Length: "]
_WIRE = st.one_of(st.binary(max_size=512), st.lists(st.sampled_from(_TOKENS), max_size=64).map(b"".join))


def _each_event(feed: Callable[[bytes], object], next_event: Callable[[], Any], chunks: list[bytes]) -> Iterator[Any]:
    """Feed ``chunks``, then EOF; yield the events each leaves ready (a framer's or a connection's, bounded)."""
    for chunk in [*chunks, b""]:
        feed(chunk)
        yield from itertools.islice(iter(next_event, None), 100_000)


def _events(kind: str, chunks: list[bytes]) -> list[tuple[Any, ...]]:
    reader = make_framer(kind, _LOADS, max_message_size=256, max_depth=8)  # type: ignore[arg-type]
    out: list[tuple[Any, ...]] = []
    for event in _each_event(reader.feed, reader.next_event, chunks):
        if isinstance(event, Message):
            out.append(("message", repr(event.value)))
        else:
            assert isinstance(event, FrameError)
            out.append(("error", event.code, event.fatal))
    return out


@settings(database=None, suppress_health_check=list(HealthCheck), deadline=None)
@given(wire=_WIRE, kind=st.sampled_from(["newline", "content-length", "auto"]), data=st.data())
def framing_property(wire: bytes, kind: str, data: st.DataObject) -> None:
    """Whole vs split: same events; the server core answers anything without raising."""
    chunks = data.draw(rst.chunkings(wire))
    assert _events(kind, chunks) == _events(kind, [wire])
    conn = ServerConnection(framing="auto", max_message_size=256, max_depth=8)
    for event in _each_event(conn.receive_data, conn.next_event, chunks):
        if isinstance(event, Reply):
            _check_reply(event.data)


def _check_reply(data: bytes) -> None:
    """A reply the core makes by itself is one framed JSON-RPC error response."""
    if data.startswith(b"Content-Length: "):
        header, _, body = data.partition(b"\r\n\r\n")
        assert int(header.split(b":")[1]) == len(body)
    else:
        assert data.endswith(b"\n")
        body = data
    reply = json.loads(body)
    for item in reply if isinstance(reply, list) else [reply]:
        assert item["jsonrpc"] == "2.0" and item["error"]["code"] in (-32700, -32600)


fuzz_one_input = framing_property.hypothesis.fuzz_one_input  # type: ignore[attr-defined]


def self_test(runs: int, seed: int = 0) -> None:
    """Feed ``runs`` random byte strings through the fuzz entry point (no atheris needed)."""
    rng = random.Random(seed)
    for _ in range(runs):
        fuzz_one_input(rng.randbytes(rng.randint(0, 2048)))


def main(argv: list[str]) -> None:
    """Run under atheris, or ``--self-test N`` without it."""
    if len(argv) >= 2 and argv[1] == "--self-test":
        runs = int(argv[2]) if len(argv) > 2 else 1000
        self_test(runs)
        print(f"self-test: {runs} inputs, no failure")
        return
    atheris.Setup(argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
