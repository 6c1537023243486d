"""Issue 9, item 1: bad bytes get a spec error or a clean close, and the server lives on.

Each case sends hostile bytes on a raw socket, checks the reply (code, id null) and
whether the connection stays usable, then checks that a fresh client is served.
"""

from __future__ import annotations

import json
import random
import socket
import time

import pytest
from _driver_helpers import request
from _hardening import WAIT, Raw, assert_serves, running

from jsonrpc_mini import ConnectionLost, RPCClient
from jsonrpc_mini._json import JsonCodec

pytestmark = pytest.mark.timeout(60)

OK = request("echo", ["ok"], id_="after")
PARSE, INVALID = -32700, -32600


def body(params: bytes, id_: bytes = b"1") -> bytes:
    return b'{"jsonrpc":"2.0","method":"echo","params":' + params + b',"id":' + id_ + b"}\n"


# name -> (bytes, expected error code); the connection stays and answers the next request.
RECOVERABLE = {
    "nul-byte-line": (b"\x00\n", PARSE),
    "nul-inside-string": (body(b'["a\x00b"]'), PARSE),
    "control-char-inside-string": (body(b'["a\x01b"]'), PARSE),
    "utf8-bom-before-request": (b"\xef\xbb\xbf" + body(b"[1]"), PARSE),
    "invalid-utf8-in-string": (body(b'["\xff\xfe"]'), PARSE),
    "overlong-utf8": (body(b'["\xc0\xaf"]'), PARSE),
    "utf8-encoded-surrogate": (body(b'["\xed\xa0\x80"]'), PARSE),
    "truncated-utf8-sequence": (body(b'["\xe2\x82"]'), PARSE),
    "latin1-outside-strings": (b"\xe9\xe9\xe9\n", PARSE),
    "float-overflow-1e999999": (body(b"[1e999999]"), PARSE),
    "negative-float-overflow": (body(b"[-1e999999]"), PARSE),
    "exponent-with-million-digits": (body(b"[1e" + b"9" * 10**6 + b"]"), PARSE),
    "integer-with-million-digits": (body(b"[" + b"9" * 10**6 + b"]"), PARSE),
    "negative-integer-million-digits": (body(b"[-" + b"9" * 10**6 + b"]"), PARSE),
    "id-with-million-digits": (body(b"[1]", b"1" * 10**6), PARSE),
    "nan-literal": (body(b"[NaN]"), PARSE),
    "infinity-literal": (body(b"[Infinity]"), PARSE),
    "single-quotes": (b"{'jsonrpc':'2.0'}\n", PARSE),
    "trailing-comma": (body(b"[1,]"), PARSE),
    "raw-newline-in-string": (b'{"jsonrpc":"2.0","method":"ec\nho"}\n', PARSE),
    "mismatched-bracket": (b'{"a":[1}\n', PARSE),
    "stray-closer": (b"]\n", PARSE),
    "deep-arrays-100k": (b"[" * 100_000 + b"]" * 100_000 + b"\n", INVALID),
    "deep-objects-100k": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n", INVALID),
    "deep-mixed-100k": (b'[{"a":' * 50_000 + b"1" + b"}]" * 50_000 + b"\n", INVALID),
    "deep-inside-params": (body(b"[" * 100_000 + b"]" * 100_000), INVALID),
    "deep-unclosed-100k": (b"[" * 100_000 + b"\n", INVALID),
    "empty-batch": (b"[]\n", INVALID),
    "not-an-object": (b'"hello"\n', INVALID),
    "number-top-level": (b"42\n", INVALID),
    "params-a-string": (b'{"jsonrpc":"2.0","method":"echo","params":"x","id":1}\n', INVALID),
    "id-a-boolean": (b'{"jsonrpc":"2.0","method":"echo","params":[1],"id":true}\n', INVALID),
    "id-an-object": (b'{"jsonrpc":"2.0","method":"echo","params":[1],"id":{}}\n', INVALID),
    "wrong-version": (b'{"jsonrpc":"1.0","method":"echo","params":[1],"id":1}\n', INVALID),
    "method-a-number": (b'{"jsonrpc":"2.0","method":1,"id":1}\n', INVALID),
    "tls-client-hello": (bytes([0x16, 0x03, 0x01, 0x00, 0x40]) + bytes(range(1, 64)) + b"\n", PARSE),
}


# -32600 echoes the request's id when that id itself is valid.
ECHO_ID = {"params-a-string", "wrong-version", "method-a-number"}


@pytest.mark.parametrize("name", sorted(RECOVERABLE))
def test_bad_message_gets_error_and_connection_survives(kind: str, name: str) -> None:
    data, code = RECOVERABLE[name]
    with running(kind) as srv, Raw(srv.address) as raw:
        raw.send(data)
        reply = raw.reply()
        assert reply["error"]["code"] == code, reply
        assert reply["jsonrpc"] == "2.0"
        assert reply["id"] == (1 if name in ECHO_ID else None), reply
        raw.send(OK)
        # Later lines of a broken message may earn their own -32700 (the contract).
        while (nxt := raw.reply())["id"] != "after":
            assert nxt["id"] is None and nxt["error"]["code"] == PARSE, nxt
        assert nxt == {"jsonrpc": "2.0", "id": "after", "result": "ok"}
        assert_serves(srv)


def test_tls_hello_is_answered_without_waiting_for_a_newline(kind: str) -> None:
    # A TLS client that reached a plaintext server must learn at once, not after read_timeout.
    hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00]) + bytes(range(1, 200)).replace(b"\n", b"")
    with running(kind, {"read_timeout": 60}) as srv, Raw(srv.address) as raw:
        raw.send(hello)
        assert raw.reply(WAIT)["error"]["code"] == PARSE


@pytest.mark.parametrize(
    ("name", "sent", "expected"),
    [
        ("lone-high-surrogate", b'"\\ud800"', "\ud800"),
        ("lone-low-surrogate", b'"\\udc00"', "\udc00"),
        ("reversed-pair", b'"\\udc00\\ud800"', "\udc00\ud800"),
        ("valid-pair", b'"\\ud83d\\ude00"', "\U0001f600"),
        ("escaped-nul", b'"a\\u0000b"', "a\x00b"),
        ("float-underflow", b"1e-999999", 0.0),
        ("long-float-mantissa", b"1." + b"1" * 100_000, 1.1111111111111112),
        ("jsonclass-hint", b'{"__jsonclass__":["os.system",["id"]]}', {"__jsonclass__": ["os.system", ["id"]]}),
    ],
)
def test_odd_but_valid_values_round_trip(kind: str, name: str, sent: bytes, expected: object) -> None:
    with running(kind) as srv, Raw(srv.address) as raw:
        raw.send(body(b"[" + sent + b"]"))
        reply = raw.reply()
        assert reply == {"jsonrpc": "2.0", "id": 1, "result": expected}


def test_duplicate_keys_last_one_wins(kind: str) -> None:
    # Documented in SECURITY.md: for a repeated member the last occurrence wins, on
    # every path (orjson and the standard library agree).
    data = b'{"jsonrpc":"2.0","method":"nope","method":"echo","params":[1],"params":[2],"id":1,"id":7}\n'
    with running(kind) as srv, Raw(srv.address) as raw:
        raw.send(data)
        assert raw.reply() == {"jsonrpc": "2.0", "id": 7, "result": 2}
    for use_orjson in (False, True):
        assert JsonCodec(use_orjson=use_orjson).loads(b'{"a":1,"a":2}') == {"a": 2}


def test_deep_nesting_with_a_raised_depth_limit_is_still_bounded(kind: str) -> None:
    # Even when the user lifts max_depth past the recursion limit, no RecursionError escapes.
    with running(kind, {"max_depth": 1_000_000}) as srv, Raw(srv.address) as raw:
        raw.send(b"[" * 100_000 + b"]" * 100_000 + b"\n")
        assert raw.reply()["error"]["code"] in (PARSE, INVALID)
        raw.send(OK)
        assert raw.reply()["result"] == "ok"
        assert_serves(srv)


@pytest.mark.parametrize("seed", range(12))
def test_random_garbage_gets_errors_or_close(kind: str, seed: int) -> None:
    rng = random.Random(seed)
    size = rng.choice([1, 17, 4096, 65536, 1 << 20])
    garbage = rng.randbytes(size)
    with running(kind, {"read_timeout": 2.0}) as srv, Raw(srv.address) as raw:
        try:
            raw.send(garbage + b"\n")
            raw.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may already have closed on us: allowed
        assert raw.closed_within(WAIT), f"seed {seed}: the server kept a half-closed connection open"
        for line in bytes(raw.buf).splitlines():
            reply = json.loads(line)
            assert reply["id"] is None and reply["error"]["code"] in (PARSE, INVALID), (seed, reply)
        assert_serves(srv)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"jsonrpc":"2.0","method":"echo","params":[1', id="json-truncated"),
        pytest.param(b'[{"jsonrpc":"2.0","method":"echo","params":[1],"id":1}', id="batch-truncated"),
        pytest.param(b'{"jsonrpc":"2.0","method":"echo","params":["abc', id="in-string"),
        pytest.param(b'{"jsonrpc":"2.0","method":"echo","params":["\\', id="after-backslash"),
        pytest.param(b"tru", id="bare-literal"),
        pytest.param(b'Content-Length: 40\r\n\r\n{"jsonrpc":"2.0"', id="cl-body-truncated"),
        pytest.param(b"Content-Length: 40\r\n", id="cl-header-truncated"),
    ],
)
def test_truncated_frame_then_eof_gets_parse_error_and_close(kind: str, data: bytes) -> None:
    with running(kind) as srv, Raw(srv.address) as raw:
        raw.send(data)
        raw.sock.shutdown(socket.SHUT_WR)
        assert raw.closed_within(WAIT)
        replies = [json.loads(line) for line in bytes(raw.buf).splitlines() if line.startswith(b"{")]
        if not data.startswith(b"Content-Length"):
            assert [r["error"]["code"] for r in replies] == [PARSE]
        assert_serves(srv)


def test_truncated_frame_without_eof_is_closed_by_read_timeout(kind: str) -> None:
    with running(kind, {"read_timeout": 0.5}) as srv, Raw(srv.address) as raw:
        raw.send(b'{"jsonrpc":"2.0","method":"echo"')
        assert raw.closed_within(WAIT)
        assert_serves(srv)


CL = b"Content-Length: "


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(CL + b"-5\r\n\r\n{}", PARSE, id="negative"),
        pytest.param(CL + b"+5\r\n\r\n{}", PARSE, id="plus-sign"),
        pytest.param(CL + b"abc\r\n\r\n{}", PARSE, id="non-numeric"),
        pytest.param(CL + b"\r\n\r\n{}", PARSE, id="empty"),
        pytest.param(CL + b"1.5\r\n\r\n{}", PARSE, id="fractional"),
        pytest.param(CL + b"0x10\r\n\r\n{}", PARSE, id="hex"),
        pytest.param(CL + "٣".encode() + b"\r\n\r\n{}", PARSE, id="non-ascii-digit"),
        pytest.param(CL + b"9" * 30 + b"\r\n\r\n{}", PARSE, id="thirty-digits"),
        pytest.param(CL + b"99999999999\r\n\r\n{}", INVALID, id="huge"),
        pytest.param(CL + b"209715200\r\n\r\n{}", INVALID, id="200MiB-over-limit"),
        pytest.param(CL + b"2\r\n" + CL + b"3\r\n\r\n{}", PARSE, id="repeated-conflicting"),
        pytest.param(b"Content-Type: x\r\n\r\n{}", PARSE, id="missing"),
        pytest.param(CL + b"2\r\nno colon here\r\n\r\n{}", PARSE, id="header-without-colon"),
        pytest.param(CL + b"2\r\nX-Pad: " + b"a" * 10_000, PARSE, id="header-block-too-long"),
    ],
)
def test_bogus_content_length_gets_error_and_close(kind: str, data: bytes, code: int) -> None:
    with running(kind, {"max_message_size": 1 << 20}) as srv, Raw(srv.address) as raw:
        raw.send(data)
        assert raw.closed_within(WAIT), "a bad header cannot be resynchronised: the server must close"
        head, sep, rest = bytes(raw.buf).partition(b"\r\n\r\n")
        assert sep and head.lower().startswith(b"content-length:"), raw.buf[:200]
        reply = json.loads(rest)
        assert reply["id"] is None and reply["error"]["code"] == code
        assert_serves(srv)


def frame(payload: bytes) -> bytes:
    return CL + str(len(payload)).encode() + b"\r\n\r\n" + payload


def read_cl_reply(raw: Raw) -> dict[str, object]:
    while b"\r\n\r\n" not in raw.buf:
        assert raw._fill(time.monotonic() + WAIT), "no reply header"
    head, _, _ = bytes(raw.buf).partition(b"\r\n\r\n")
    length = int(head.split(b":")[1])
    start = len(head) + 4
    while len(raw.buf) < start + length:
        assert raw._fill(time.monotonic() + WAIT), "truncated reply body"
    reply = json.loads(bytes(raw.buf[start : start + length]))
    del raw.buf[: start + length]
    return reply  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        pytest.param(b"", PARSE, id="zero-length"),
        # Past the decoder's own recursion limit the body is -32700; past max_depth, -32600.
        pytest.param(b"[" * 100_000 + b"]" * 100_000, PARSE, id="deep-100k"),
        pytest.param(b"[" * 200 + b"]" * 200, INVALID, id="deeper-than-limit"),
        pytest.param(b'{"a":"\xff"}', PARSE, id="invalid-utf8"),
        pytest.param(b"[1e999999]", PARSE, id="float-overflow"),
        pytest.param(b"[" + b"7" * 10**6 + b"]", PARSE, id="million-digit-int"),
    ],
)
def test_content_length_bodies_get_spec_errors(kind: str, payload: bytes, code: int) -> None:
    with running(kind) as srv, Raw(srv.address) as raw:
        raw.send(frame(payload))
        reply = read_cl_reply(raw)
        assert reply["error"]["code"] == code and reply["id"] is None  # type: ignore[index]
        raw.send(frame(request("echo", ["ok"], id_=2).strip()))
        assert read_cl_reply(raw) == {"jsonrpc": "2.0", "id": 2, "result": "ok"}
        assert_serves(srv)


def test_repeated_identical_content_length_is_accepted(kind: str) -> None:
    payload = request("echo", [5]).strip()
    n = str(len(payload)).encode()
    with running(kind) as srv, Raw(srv.address) as raw:
        raw.send(CL + n + b"\r\ncontent-length: " + n + b"\r\n\r\n" + payload)
        assert read_cl_reply(raw) == {"jsonrpc": "2.0", "id": 1, "result": 5}


def test_client_survives_a_server_that_sends_garbage() -> None:
    # The client side of item 1: a hostile server cannot crash or hang a caller.
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        with RPCClient("127.0.0.1", port, timeout=WAIT) as client:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"[" * 100_000 + b"\n\xff\xfe garbage \x00" + b"9" * 10**6 + b"\n")
                conn.shutdown(socket.SHUT_WR)
                with pytest.raises(ConnectionLost):
                    client.echo(1)
                assert not client._connected
    finally:
        listener.close()
