"""Issue 9, item 5: only registered callables are reachable; nothing leaks back.

Peers have reached private attributes through dotted names (Python's xmlrpc),
built objects from class hints (jsonclass) or read tracebacks from error replies.
The registry here is a flat name -> callable map; these tests try the known tricks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _driver_helpers import request
from _hardening import WAIT, Raw, running

pytestmark = pytest.mark.timeout(60)

METHOD_NOT_FOUND = -32601


class Helper:
    def run(self) -> str:
        return "helper ran"


class Calc:
    """What a user might register: public methods next to private state."""

    secret_attribute = "not callable, not exposed"
    Nested = Helper  # a class attribute that is a class: not exposed

    def __init__(self) -> None:
        self._secret = "hunter2"
        self.helper = Helper()
        self.callback = lambda: "instance attribute callable"

    def add(self, a: int, b: int) -> int:
        return a + b

    def _private(self) -> str:
        return "private"

    def __mangled(self) -> str:
        return "mangled"

    def __call__(self) -> str:
        return "dunder call"

    @staticmethod
    def static() -> str:
        return "static"

    @classmethod
    def klass(cls) -> str:
        return cls.__name__


PROBES = [
    "calc.__class__",
    "calc.__init__",
    "calc.__dict__",
    "calc.__call__",
    "calc.__getattribute__",
    "calc.__setattr__",
    "calc.__delattr__",
    "calc.__reduce_ex__",
    "calc.__subclasshook__",
    "calc.__init_subclass__",
    "calc.__dir__",
    "calc.__eq__",
    "calc.__format__",
    "calc.__sizeof__",
    "calc._secret",
    "calc._private",
    "calc.__mangled",
    "calc._Calc__mangled",
    "calc.secret_attribute",
    "calc.Nested",
    "calc.Nested.run",
    "calc.helper",
    "calc.helper.run",
    "calc.add.__globals__",
    "calc.add.__code__",
    "calc.add.__self__",
    "calc.add.__func__",
    "calc.klass.__self__",
    "__class__",
    "__init__",
    "__dict__",
    "obj.__dict__",
    "_secret",
    "a.b",
    "__import__",
    "eval",
    "exec",
    "open",
    "getattr",
    "globals",
    "os.system",
    "sys.modules",
    "register_function",
    "register_instance",
    "shutdown",
    "prepare",
    "methods",
    "echo.__globals__",
    "echo.__code__",
    "add.__call__",
    "",
    " calc.add",
    "calc.add ",
    "CALC.ADD",
    "calc.add\x00",
    "calc..add",
    ".calc.add",
    "rpc.system.listMethods",
    "system.listMethods",
]


def serve_calc(kind: str, options: dict[str, Any] | None = None) -> Any:
    ctx = running(kind, options)
    srv = ctx.__enter__()
    names = srv.server.register_instance(Calc(), prefix="calc.")
    return ctx, srv, names


def test_register_instance_exposes_public_methods_only(kind: str) -> None:
    ctx, srv, names = serve_calc(kind)
    try:
        assert sorted(names) == ["calc.add", "calc.callback", "calc.klass", "calc.static"]
        with srv.client() as client:
            assert client.call("calc.add", 2, 3) == 5
            assert client.call("calc.static") == "static"
            assert client.call("calc.klass") == "Calc"
    finally:
        ctx.__exit__(None, None, None)


@pytest.mark.parametrize("method", PROBES)
def test_unregistered_names_are_not_found(kind: str, method: str) -> None:
    ctx, srv, _ = serve_calc(kind)
    try:
        with Raw(srv.address) as raw:
            raw.send(request(method, [], id_=9))
            reply = raw.reply()
            assert reply["id"] == 9
            assert reply["error"]["code"] == METHOD_NOT_FOUND, reply
            assert "hunter2" not in json.dumps(reply)
    finally:
        ctx.__exit__(None, None, None)


def test_register_instance_does_not_expose_object_methods_of_a_bare_object(kind: str) -> None:
    with running(kind) as srv:
        assert srv.server.register_instance(object(), prefix="o.") == []
        assert not [name for name in srv.server.methods if name.startswith("o.")]


@pytest.mark.parametrize(
    "value",
    [
        {"__jsonclass__": ["os.system", ["id"]]},
        {"py/object": "os.system"},
        {"$type": "System.Diagnostics.Process"},
        {"__class__": "subprocess.Popen", "args": ["id"]},
        {"__reduce__": ["os.system", ["id"]]},
    ],
    ids=["jsonclass", "jsonpickle", "dotnet-type", "class-member", "reduce"],
)
def test_class_hints_stay_plain_json(kind: str, value: dict[str, Any]) -> None:
    with running(kind) as srv, srv.client() as client:
        assert client.typename(value) == "dict"
        assert client.echo(value) == value
        assert client.typename([value]) == "list"


MARKER = "MARKER-7f3a"
M = MARKER.encode()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"jsonrpc":"2.0","method":"echo","params":"' + M + b'","id":1}\n', id="params-str"),
        pytest.param(b'{"jsonrpc":"2.0","method":1,"x":"' + M + b'","id":1}\n', id="method-number"),
        pytest.param(b'{"jsonrpc":"1.0","method":"' + M + b'","id":1}\n', id="bad-version"),
        pytest.param(b'{"jsonrpc":"2.0","method":"echo","params":["' + M + b"\n", id="raw-newline"),
        pytest.param(b'{"jsonrpc":"2.0","method":"' + M + b'"]\n', id="mismatched"),
        pytest.param(b'{"jsonrpc":"2.0","method":"echo","params":[' + M + b"]}\n", id="bad-literal"),
        pytest.param(b'{"jsonrpc":"2.0","method":"echo","params":["\xff' + M + b'"]}\n', id="bad-utf8"),
        pytest.param(b"Content-Length: " + M + b"\r\n\r\n", id="cl-value"),
        pytest.param(b"Content-Length: 2\r\n" + M + b"\r\n\r\n{}", id="cl-header-line"),
        pytest.param(b'["' + M + b'",{"' + M + b'":1},1]\n', id="batch-of-junk"),
        pytest.param(request("echo", {MARKER: 1}), id="unknown-keyword"),
        pytest.param(request("echo", [1, 2, MARKER]), id="too-many-args"),
        pytest.param(request("echo", {"0": 1, "2": MARKER}), id="gap-in-digit-keys"),
    ],
)
def test_error_replies_do_not_echo_the_request(kind: str, data: bytes) -> None:
    with running(kind) as srv, Raw(srv.address) as raw:
        raw.send(data)
        if data.startswith(b"Content-Length"):
            assert raw.closed_within(WAIT)
            text = bytes(raw.buf).decode("utf-8", "replace")
        else:
            raw.send(request("echo", ["sentinel"], id_="end"))
            replies: list[Any] = []
            sentinel = {"jsonrpc": "2.0", "id": "end", "result": "sentinel"}
            while sentinel not in replies or len(replies) < 2:  # replies may come in any order
                replies.append(raw.reply())
            text = json.dumps(replies)
        assert '"error"' in text, text
        assert MARKER not in text, text


def test_long_method_name_is_not_echoed_whole(kind: str) -> None:
    name = "x" * 100 + MARKER + "y" * 100_000
    with running(kind) as srv, Raw(srv.address) as raw:
        raw.send(request(name, [], id_=3))
        reply = raw.reply()
        assert reply["error"]["code"] == METHOD_NOT_FOUND
        assert MARKER not in reply["error"]["message"] and len(json.dumps(reply)) < 400


def test_a_long_argument_name_is_cut_in_the_invalid_params_text(kind: str) -> None:
    # README (Security and limits) and SECURITY.md: of the request, an error quotes
    # only the method name (above) and the argument binding error, cut to 200.
    name = "k" * 250 + MARKER + "z" * 100_000
    with running(kind) as srv, Raw(srv.address) as raw:
        raw.send(request("echo", {"x": 1, name: 2}, id_=4))
        reply = raw.reply()
        message = reply["error"]["message"]
        assert reply["error"]["code"] == -32602
        assert message.startswith("Invalid params for 'echo': got an unexpected keyword argument 'kkk")
        assert MARKER not in message and message.endswith("...") and len(message) < 300


def test_handler_exception_text_and_traceback_stay_private(kind: str) -> None:
    with running(kind) as srv, Raw(srv.address) as raw:
        raw.send(request("fail", ["db password is " + MARKER]))
        reply = raw.reply()
        text = json.dumps(reply)
        assert reply["error"]["code"] == -32603
        assert MARKER not in text and "Traceback" not in text and "data" not in reply["error"]


def test_debug_true_does_send_the_traceback(kind: str) -> None:
    # The switch must actually work, or the test above proves nothing.
    with running(kind, {"debug": True}) as srv, Raw(srv.address) as raw:
        raw.send(request("fail", [MARKER]))
        reply = raw.reply()
        assert reply["error"]["code"] == -32603
        assert "Traceback" in json.dumps(reply) and MARKER in json.dumps(reply)
