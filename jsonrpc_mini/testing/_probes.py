"""The probes of ``check``: each returns ``(status, detail)`` or raises ProbeFailed/NoReply."""

from __future__ import annotations

import socket
from typing import Any

from ._check import Probe, ProbeFn, Status
from ._check_conn import Conn, NoReply, ProbeFailed, dumps

__all__ = ["PROBES"]

Outcome = tuple[Status, str]


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same JSON type (1 is not 1.0, 0 is not false)."""
    return type(a) is type(b) and a == b


def _response(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProbeFailed(f"expected a response object, got {_short(value)}")
    if value.get("jsonrpc") != "2.0":
        raise ProbeFailed(f'response without "jsonrpc": "2.0": {_short(value)}')
    if ("result" in value) == ("error" in value):
        raise ProbeFailed(f"a response needs exactly one of result and error: {_short(value)}")
    if "id" not in value:
        raise ProbeFailed(f"response without an id member: {_short(value)}")
    id_ = value["id"]
    if isinstance(id_, bool) or not isinstance(id_, (str, int, float, type(None))):
        raise ProbeFailed(f"a response id must be a string, a number or null: {_short(value)}")
    if "error" in value and not isinstance(value["error"], dict):
        raise ProbeFailed(f"the error member must be an object (code, message): {_short(value)}")
    return value


def _error(value: Any, code: int, ids: tuple[Any, ...]) -> dict[str, Any]:
    """Check that ``value`` is an error response with ``code`` and one of ``ids``."""
    resp = _response(value)
    err = resp.get("error")
    if not isinstance(err, dict) or not isinstance(err.get("code"), int) or not isinstance(err.get("message"), str):
        raise ProbeFailed(f"expected an error {code}, got {_short(value)}")
    if err["code"] != code:
        raise ProbeFailed(f"expected error code {code}, got {err['code']}: {_short(value)}")
    if not any(_same(resp["id"], id_) for id_ in ids):
        raise ProbeFailed(f"expected id {' or '.join(map(repr, ids))}, got {resp['id']!r}")
    return resp


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _call(p: Probe, id_: Any = 1, params: Any = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": p.missing, "id": id_}
    if params is not None:
        msg["params"] = params
    return msg


def method_not_found(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send_json(_call(p, 1))
    _error(conn.read(), -32601, (1,))
    return "pass", "-32601 for an unknown method, id echoed"


def parse_error(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send(b'{"jsonrpc": "2.0", "method": "foo", "params": "bar", "baz]\n')
    _error(conn.read(), -32700, (None,))
    return "pass", "-32700 with id null for broken JSON"


def survives_parse_error(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send(b'{"jsonrpc": "2.0", "method": "foo", "params": [1, 2}\n')
    try:
        _error(conn.read(), -32700, (None,))
        conn.send_json(_call(p, 2))
        _error(conn.read(), -32601, (2,))
    except NoReply as exc:
        return "warn", f"the connection did not carry on after a parse error ({exc}); the spec allows closing it"
    return "pass", "the connection keeps working after a -32700"


def invalid_request(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send(b'{"jsonrpc": "2.0", "method": 1, "params": "bar"}\n')
    _error(conn.read(), -32600, (None,))
    return "pass", "-32600 with id null for a non-string method"


def invalid_request_id(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send_json({"method": p.missing, "id": 2})
    resp = _error(conn.read(), -32600, (2, None))
    return "pass", f"-32600 for a request without jsonrpc, id {resp['id']!r}"


def params_not_structured(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send_json({"jsonrpc": "2.0", "method": p.missing, "params": "text", "id": 3})
    resp = _response(conn.read())
    code = (resp.get("error") or {}).get("code")
    if code not in (-32600, -32602):
        raise ProbeFailed(f"params that are a string must be rejected (-32600/-32602), got {_short(resp)}")
    return "pass", f"{code} for params that are a string"


def empty_batch(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send(b"[]\n")
    _error(conn.read(), -32600, (None,))
    return "pass", "[] gets one -32600 (not an array)"


def invalid_batch(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send(b"[1, 2, 3]\n")
    reply = conn.read()
    if not isinstance(reply, list) or len(reply) != 3:
        raise ProbeFailed(f"[1, 2, 3] needs an array of three -32600 errors, got {_short(reply)}")
    for item in reply:
        _error(item, -32600, (None,))
    return "pass", "[1, 2, 3] gets three -32600 errors"


def mixed_batch(p: Probe) -> Outcome:
    conn = p.connect()
    batch = [
        _call(p, "b1"),
        {"jsonrpc": "2.0", "method": p.missing},
        {"foo": "boo"},
        _call(p, "b2", [1]),
    ]
    conn.send_json(batch)
    reply = conn.read()
    if not isinstance(reply, list) or len(reply) != 3:
        raise ProbeFailed(f"a batch of 3 requests and 1 notification needs 3 responses, got {_short(reply)}")
    by_id = {json_key(_response(item)["id"]): item for item in reply}
    if set(by_id) != {"s:b1", "s:b2", "n:None"}:
        raise ProbeFailed(f"batch responses must carry ids b1, b2 and null, got {[r.get('id') for r in reply]}")
    _error(by_id["s:b1"], -32601, ("b1",))
    _error(by_id["s:b2"], -32601, ("b2",))
    _error(by_id["n:None"], -32600, (None,))
    return "pass", "mixed batch: one response per request, none for the notification"


def json_key(value: Any) -> str:
    """A key that tells JSON types apart."""
    return f"{'s' if isinstance(value, str) else 'n'}:{value}"


def notification_silent(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send_json({"jsonrpc": "2.0", "method": p.missing, "params": [1]})
    conn.send_json(_call(p, 7))
    _error(conn.read(), -32601, (7,))
    return "pass", "no reply to a notification (even for an unknown method)"


def notification_batch_silent(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send_json([{"jsonrpc": "2.0", "method": p.missing}, {"jsonrpc": "2.0", "method": p.missing, "params": {}}])
    conn.send_json(_call(p, 8))
    _error(conn.read(), -32601, (8,))
    return "pass", "no reply to a batch of notifications"


IDS: tuple[Any, ...] = ("abc", "", 'é🎉 "q" \\', 0, -1, 2**70, 1.5, -0.25, 1e-7)


def ids_echoed(p: Probe) -> Outcome:
    conn = p.connect()
    wrong = []
    for id_ in IDS:
        conn.send_json(_call(p, id_))
        resp = _response(conn.read())
        if not _same(resp["id"], id_):
            wrong.append(f"{id_!r} came back as {resp['id']!r}")
    if wrong:
        raise ProbeFailed("ids not echoed exactly: " + "; ".join(wrong))
    return "pass", f"{len(IDS)} ids (strings, 0, big and negative integers, floats) echoed exactly"


def pipelined(p: Probe) -> Outcome:
    conn = p.connect()
    conn.send(dumps(_call(p, 11)) + dumps(_call(p, 12)))
    got = {_response(conn.read())["id"], _response(conn.read())["id"]}
    if got != {11, 12}:
        raise ProbeFailed(f"two requests in one write need replies 11 and 12, got {got}")
    return "pass", "two requests in one write, two replies"


def split_write(p: Probe) -> Outcome:
    conn = p.connect()
    data = dumps(_call(p, 21, ["é" * 10]))
    conn.send(data, [len(data) // 2], pause=0.05)
    _error(conn.read(), -32601, (21,))
    return "pass", "a request written in two parts"


def byte_writes(p: Probe) -> Outcome:
    conn = p.connect()
    data = dumps(_call(p, 22, ["é€🎉\\n"]))
    conn.send(data, [1] * len(data))
    _error(conn.read(), -32601, (22,))
    return "pass", f"a request written 1 byte at a time ({len(data)} writes)"


def large_request(p: Probe) -> Outcome:
    conn = p.connect()
    data = dumps(_call(p, 23, ["x" * 3000, "é🎉" * 300]))
    conn.send(data, p.chunks(len(data), 97))
    _error(conn.read(), -32601, (23,))
    return "pass", f"a {len(data)}-byte request in seeded chunks of 1..97 bytes"


def echo_large(p: Probe) -> Outcome:
    if p.echo_method is None:
        return "warn", "skipped: pass --echo-method NAME (a method returning its argument) for large replies"
    conn = p.connect()
    payload = "".join(chr(0x20 + p.rng.randrange(0x3000)) for _ in range(2500)) + '🎉\\"\n'
    data = dumps({"jsonrpc": "2.0", "method": p.echo_method, "params": [payload], "id": 24})
    conn.send(data, p.chunks(len(data), 7))
    resp = _response(conn.read())
    if not _same(resp["id"], 24):  # (a client would never match the reply to its call)
        raise ProbeFailed(f"expected id 24 in the reply to {p.echo_method}, got {resp['id']!r}")
    if resp.get("result") != payload:
        raise ProbeFailed(f"{p.echo_method} did not return its {len(payload)}-character argument: {_short(resp)}")
    return "pass", f"a {len(data)}-byte payload echoed exactly (1..7-byte writes)"


def _still_serving(p: Probe, what: str) -> Outcome:
    conn = p.connect()
    conn.send_json(_call(p, 31))
    try:
        _error(conn.read(), -32601, (31,))
    except NoReply as exc:
        raise ProbeFailed(f"another client was not served {what}: {exc}") from None
    return "pass", f"other clients are served {what}"


def close_mid_frame(p: Probe) -> Outcome:
    conn = p.connect()
    data = dumps(_call(p, 30))
    conn.send(data[: len(data) // 2])
    conn.close()
    return _still_serving(p, "after a client closed mid-message")


def reset_mid_frame(p: Probe) -> Outcome:
    conn = p.connect()
    data = dumps(_call(p, 30))
    conn.send(data[: len(data) // 2])
    conn.reset()
    return _still_serving(p, "after a client reset mid-message")


def stalled_client(p: Probe) -> Outcome:
    idle = p.connect()
    stalled = p.connect()
    data = dumps(_call(p, 30))
    stalled.send(data[: len(data) // 2])
    result = _still_serving(p, "while one client is idle and another stalls mid-message")
    idle.close()
    return result


def many_clients(p: Probe) -> Outcome:
    conns: list[Conn] = [p.connect() for _ in range(8)]
    for index, conn in enumerate(conns):
        conn.send_json(_call(p, 100 + index))
    for index, conn in enumerate(conns):
        _error(conn.read(), -32601, (100 + index,))
    return "pass", "8 clients at once, each answered"


def half_close(p: Probe) -> Outcome:
    if p.address.ssl is not None:  # (SSLSocket.shutdown() drops TLS: the reply would read as noise)
        return "warn", "not probed over TLS (Python's ssl cannot half-close a TLS connection)"
    conn = p.connect()
    conn.send_json(_call(p, 40))
    conn.sock.shutdown(socket.SHUT_WR)
    try:
        _error(conn.read(), -32601, (40,))
    except NoReply as exc:
        return "warn", f"no reply after the client half-closed ({exc}); not required by the spec"
    return "pass", "a request followed by a half-close is still answered"


PROBES: list[tuple[str, ProbeFn]] = [
    ("method-not-found", method_not_found),
    ("parse-error", parse_error),
    ("parse-error-recovery", survives_parse_error),
    ("invalid-request", invalid_request),
    ("invalid-request-id", invalid_request_id),
    ("params-not-structured", params_not_structured),
    ("empty-batch", empty_batch),
    ("invalid-batch", invalid_batch),
    ("mixed-batch", mixed_batch),
    ("notification", notification_silent),
    ("notification-batch", notification_batch_silent),
    ("ids-echoed", ids_echoed),
    ("pipelined", pipelined),
    ("split-write", split_write),
    ("byte-writes", byte_writes),
    ("large-request", large_request),
    ("echo-large", echo_large),
    ("close-mid-frame", close_mid_frame),
    ("reset-mid-frame", reset_mid_frame),
    ("stalled-client", stalled_client),
    ("many-clients", many_clients),
    ("half-close", half_close),
]
