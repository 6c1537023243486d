"""The registry: what is callable, how arguments bind, and what each outcome replies."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from jsonrpc_mini._codec import ErrorObject, ErrorResponse, Notification, Request, Response
from jsonrpc_mini._dispatch import Registry, error_response, outcome_response
from jsonrpc_mini._errors import (
    ConnectionLost,
    InternalError,
    InvalidParams,
    MethodNotFound,
    RemoteError,
    RPCError,
    ServerError,
)
from jsonrpc_mini._protocol import Batch, Call, Closed, Reply, ServerConnection

# -- a sans-IO server loop: bytes in, reply bytes out (what the drivers do) ------


def execute(registry: Registry, message: Request | Notification, debug: bool) -> Response | ErrorResponse | None:
    try:
        prepared = registry.prepare(message)
    except RPCError as exc:
        return outcome_response(message, exc=exc, debug=debug)
    try:
        result = prepared.run()
    except Exception as exc:
        return outcome_response(message, exc=exc, debug=debug)
    return outcome_response(message, result, debug=debug)


def serve(registry: Registry, data: bytes, *, debug: bool = False) -> list[Any]:
    """Feed ``data`` to a ServerConnection, run every call, return the decoded replies."""
    conn = ServerConnection()
    conn.receive_data(data)
    conn.receive_data(b"")
    out: list[bytes] = []
    for _ in range(10_000):
        event = conn.next_event()
        if event is None or isinstance(event, Closed):
            break
        if isinstance(event, Reply):
            out.append(event.data)
        elif isinstance(event, Call):
            reply = execute(registry, event.message, debug)
            if reply is not None:
                out.append(conn.encode(reply))
        else:
            assert isinstance(event, Batch)
            replies = [
                item if isinstance(item, ErrorResponse) else execute(registry, item, debug) for item in event.items
            ]
            batch = conn.encode_batch(replies)
            if batch is not None:
                out.append(batch)
    return [json.loads(line) for line in out]


def call(method: str, params: Any = None, id_: Any = 1) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


def notify(method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


def error_of(reply: dict[str, Any]) -> tuple[int, str]:
    return reply["error"]["code"], reply["error"]["message"]


# -- registration ----------------------------------------------------------------


def test_register_function_and_both_decorator_forms() -> None:
    reg = Registry()

    def add(a: int, b: int) -> int:
        return a + b

    assert reg.register_function(add) is add
    reg.register_function(add, name="plus")

    @reg.register
    def sub(a: int, b: int) -> int:
        return a - b

    @reg.register(name="math.mul")
    def mul(a: int, b: int) -> int:
        return a * b

    assert sub(3, 1) == 2  # the decorators return the function itself
    assert mul(2, 3) == 6
    assert set(reg.methods) == {"add", "plus", "sub", "math.mul"}
    replies = serve(
        reg, call("add", [1, 2]) + call("plus", [2, 2], 2) + call("sub", [5, 1], 3) + call("math.mul", [2, 5], 4)
    )
    assert [r["result"] for r in replies] == [3, 4, 4, 10]
    assert [r["id"] for r in replies] == [1, 2, 3, 4]


def test_methods_is_a_copy() -> None:
    reg = Registry()
    reg.register_function(len, name="len")
    reg.methods.clear()
    assert "len" in reg.methods


def test_registration_errors() -> None:
    reg = Registry()
    with pytest.raises(TypeError, match="needs a callable"):
        reg.register_function(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass name="):
        reg.register_function(lambda: 1)
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register_function(len, name="")
    reg.register_function(lambda: 1, name="one")
    assert serve(reg, call("one"))[0]["result"] == 1


def test_reregistering_replaces() -> None:
    reg = Registry()
    reg.register_function(lambda: 1, name="f")
    reg.register_function(lambda x: x, name="f")
    assert serve(reg, call("f", [7]))[0]["result"] == 7


def test_a_name_starting_with_rpc_dot_may_be_registered() -> None:
    # JSON-RPC 2.0 reserves "rpc." names for the protocol's methods and extensions
    # (OpenRPC's rpc.discover is one a server registers itself): README says they pass.
    reg = Registry()
    reg.register_function(lambda: {"openrpc": "1.2.6"}, name="rpc.discover")
    assert serve(reg, call("rpc.discover"))[0]["result"] == {"openrpc": "1.2.6"}


class Refuses:
    """A descriptor that is listed by dir() but refuses instance access."""

    def __get__(self, obj: Any, owner: Any) -> Any:
        raise AttributeError("not here")


class Base:
    def inherited(self) -> str:
        return "base"


class Calc(Base):
    klass = int
    value = 5
    refused = Refuses()

    def __init__(self) -> None:
        self.reads = 0
        self.child = Base()

    def add(self, a: int, b: int) -> int:
        return a + b

    @staticmethod
    def static(x: int) -> int:
        return -x

    @classmethod
    def cls(cls) -> str:
        return cls.__name__

    @property
    def prop(self) -> Any:
        self.reads += 1
        return lambda: "from a property"

    def _private(self) -> str:
        return "secret"

    def __dunder__(self) -> str:
        return "secret"


def test_register_instance_public_methods_only() -> None:
    reg = Registry()
    calc = Calc()
    names = reg.register_instance(calc)
    assert sorted(names) == ["add", "cls", "inherited", "static"]
    assert sorted(reg.methods) == sorted(names)
    assert calc.reads == 0  # properties are not evaluated
    data = call("add", [1, 2]) + call("static", [3]) + call("cls") + call("inherited")
    assert [r["result"] for r in serve(reg, data)] == [3, -3, "Calc", "base"]
    for hidden in ("_private", "__dunder__", "__init__", "__class__", "__repr__", "prop", "value", "klass",
                   "child", "child.inherited", "add.__globals__", "refused", "__dict__"):  # fmt: skip
        (reply,) = serve(reg, call(hidden))
        assert error_of(reply) == (-32601, f"Method not found: {hidden!r}"), hidden


def test_register_instance_prefix_is_joined_as_written() -> None:
    reg = Registry()
    assert sorted(reg.register_instance(Calc(), prefix="calc.")) == [
        "calc.add",
        "calc.cls",
        "calc.inherited",
        "calc.static",
    ]
    reg.register_instance(Calc(), prefix="x_")
    assert "x_add" in reg.methods
    assert serve(reg, call("calc.add", {"a": 1, "b": 2}))[0]["result"] == 3
    assert error_of(serve(reg, call("add", [1, 2]))[0])[0] == -32601


@pytest.mark.parametrize("prefix", [None, 5, b"calc."])
def test_register_instance_refuses_a_prefix_that_is_not_a_str(prefix: Any) -> None:
    # It used to fail at the first method with a bare "unsupported operand type(s) for +".
    reg = Registry()
    with pytest.raises(TypeError, match=rf"^prefix must be a str such as 'calc.' \('' for none\), not {prefix!r}$"):
        reg.register_instance(Calc(), prefix=prefix)
    assert reg.methods == {}


def test_register_with_a_name_given_positionally_says_name_is_keyword_only() -> None:
    # @server.register("add") used to say "register_function needs a callable, got str".
    reg = Registry()
    with pytest.raises(TypeError, match=r"^register\(\) takes the function; .*@server.register\(name='add'\)$"):
        reg.register("add")  # type: ignore[call-overload]
    assert reg.methods == {}


def test_register_instance_of_a_plain_object_registers_nothing() -> None:
    reg = Registry()
    assert reg.register_instance(object()) == []
    assert reg.methods == {}


# -- binding ---------------------------------------------------------------------


def seed_test(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def strict(a: int, b: int = 2, *, c: int = 3) -> list[int]:
    return [a, b, c]


@pytest.fixture
def reg() -> Registry:
    registry = Registry()
    registry.register_function(seed_test, name="test")
    registry.register_function(strict)
    return registry


@pytest.mark.parametrize(
    ("params", "result"),
    [
        (None, {"args": [], "kwargs": {}}),
        (["测试项"], {"args": ["测试项"], "kwargs": {}}),
        ({"kw1": "1"}, {"args": [], "kwargs": {"kw1": "1"}}),
        ({"0": "测试项", "kw1": "1"}, {"args": ["测试项"], "kwargs": {"kw1": "1"}}),
        (
            {"1": "b", "0": "a", "method": "m", "self": "s"},
            {"args": ["a", "b"], "kwargs": {"method": "m", "self": "s"}},
        ),
    ],
)
def test_positional_and_keyword_arguments(reg: Registry, params: Any, result: Any) -> None:
    assert serve(reg, call("test", params))[0]["result"] == result


@pytest.mark.parametrize(
    ("params", "result"),
    [([1], [1, 2, 3]), ([1, 5], [1, 5, 3]), ({"a": 1, "c": 9}, [1, 2, 9]), ({"0": 1, "c": 0}, [1, 2, 0])],
)
def test_arguments_that_bind(reg: Registry, params: Any, result: Any) -> None:
    assert serve(reg, call("strict", params))[0]["result"] == result


@pytest.mark.parametrize(
    "params",
    [None, [1, 2, 3], {"b": 1}, {"a": 1, "d": 4}, {"c": 1}, {"0": 1, "a": 1}, {"0": 1, "2": 3}, {"01": 1}],
    ids=repr,
)
def test_arguments_that_do_not_bind_are_32602_and_the_handler_never_runs(params: Any) -> None:
    ran = []

    def guarded(a: int, b: int = 2, *, c: int = 3) -> None:
        ran.append(1)

    reg = Registry()
    reg.register_function(guarded)
    (reply,) = serve(reg, call("guarded", params, id_="q"))
    code, message = error_of(reply)
    assert (code, reply["id"]) == (-32602, "q")
    assert message.startswith("Invalid params")
    assert ran == []


def test_required_keyword_only_parameters_and_positional_arity() -> None:
    reg = Registry()

    @reg.register
    def needs_key(a: int, *, key: str) -> list[Any]:
        return [a, key]

    @reg.register
    def pos_only(a: int, b: int = 0, /, *rest: int) -> list[int]:
        return [a, b, *rest]

    replies = serve(
        reg,
        call("needs_key", [1])
        + call("needs_key", {"0": 1, "key": "k"}, 2)
        + call("pos_only", [], 3)
        + call("pos_only", [1, 2, 3, 4], 4)
        + call("pos_only", {"a": 1}, 5),
    )
    assert error_of(replies[0])[0] == -32602
    assert replies[1]["result"] == [1, "k"]
    assert error_of(replies[2])[0] == -32602
    assert replies[3]["result"] == [1, 2, 3, 4]
    assert error_of(replies[4])[0] == -32602


def test_type_error_inside_a_handler_is_32603_not_32602() -> None:
    reg = Registry()

    @reg.register
    def broken(x: Any) -> Any:
        return x + "a"  # TypeError at run time, after binding succeeded

    (reply,) = serve(reg, call("broken", [1]))
    assert error_of(reply) == (-32603, "Internal error in 'broken'")
    assert "data" not in reply["error"]


def test_callables_without_a_signature_let_the_call_decide() -> None:
    reg = Registry()
    reg.register_function(max, name="max")
    replies = serve(reg, call("max", [[3, 9, 2]]) + call("max", [], 2))
    assert replies[0]["result"] == 9
    assert error_of(replies[1])[0] == -32603  # the builtin's own TypeError


def test_prepare_raises_for_the_driver() -> None:
    reg = Registry()
    reg.register_function(strict)
    with pytest.raises(MethodNotFound, match="'nope'"):
        reg.prepare(Request("nope", None, 1))
    with pytest.raises(InvalidParams, match="'strict'"):
        reg.prepare(Request("strict", [], 1))
    prepared = reg.prepare(Notification("strict", {"0": 4, "c": 1}))
    assert (prepared.args, prepared.kwargs) == ([4], {"c": 1})
    assert prepared.run() == [4, 2, 1]


# -- errors from handlers --------------------------------------------------------


class Custom(ServerError):
    pass


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (InvalidParams("need a positive number", {"min": 1}), (-32602, "need a positive number", {"min": 1})),
        (MethodNotFound(), (-32601, "Method not found", None)),
        (InternalError(data=[1]), (-32603, "Internal error", [1])),
        (ServerError(-32001, "busy", "retry"), (-32001, "busy", "retry")),
        (Custom(-32099, "custom"), (-32099, "custom", None)),
        (RemoteError(42, "app error", {"k": "v"}), (42, "app error", {"k": "v"})),
        (RPCError(-1, "plain"), (-1, "plain", None)),
    ],
)
def test_handler_raising_rpc_errors_sends_code_message_and_data(exc: RPCError, expected: Any) -> None:
    reg = Registry()

    @reg.register
    def fail() -> None:
        raise exc

    (reply,) = serve(reg, call("fail", id_=0))
    err = reply["error"]
    assert (err["code"], err["message"], err.get("data")) == expected
    assert reply["id"] == 0


def test_rpc_error_without_code_is_internal() -> None:
    reply = error_response(5, ConnectionLost("upstream went away"), "m", debug=False)
    assert reply == ErrorResponse(5, ErrorObject(-32603, "Internal error in 'm'"))


SECRET = "s3cret-param-value"


def boom(token: str) -> None:
    raise ValueError("boom happened")


@pytest.mark.parametrize("debug", [False, True])
def test_debug_controls_the_traceback(debug: bool, caplog: Any) -> None:
    reg = Registry()
    reg.register_function(boom)
    with caplog.at_level(logging.ERROR, logger="jsonrpc_mini"):
        (reply,) = serve(reg, call("boom", [SECRET]), debug=debug)
    code, message = error_of(reply)
    # With debug on the message names the exception too (its traceback is sent anyway).
    assert (code, message) == (-32603, "Internal error in 'boom'" + (": ValueError: boom happened" if debug else ""))
    text = json.dumps(reply)
    assert SECRET not in text  # never the raw request
    if debug:
        data = reply["error"]["data"]
        assert data["type"] == "ValueError"
        assert "Traceback" in data["traceback"]
        assert "boom happened" in data["traceback"]
        assert "def boom" in data["traceback"] or "raise ValueError" in data["traceback"]
    else:
        assert "data" not in reply["error"]
        assert "boom happened" not in text
        assert "Traceback" not in text
    # The server's log always has the details.
    assert "'boom' raised ValueError" in caplog.text


def test_notifications_never_get_a_reply(caplog: Any) -> None:
    reg = Registry()
    ran: list[Any] = []

    @reg.register
    def note(x: Any) -> Any:
        ran.append(x)
        return "ignored"

    @reg.register
    def crash() -> None:
        ran.append("crash")
        raise RuntimeError("nobody hears this")

    @reg.register
    def refuse() -> None:
        ran.append("refuse")
        raise InvalidParams("nope")

    data = notify("note", [1]) + notify("missing") + notify("note", [1, 2]) + notify("crash") + notify("refuse")
    with caplog.at_level(logging.ERROR, logger="jsonrpc_mini"):
        assert serve(reg, data, debug=True) == []
    assert ran == [1, "crash", "refuse"]
    assert "notification 'crash' raised RuntimeError" in caplog.text
    assert "refuse" not in caplog.text  # an RPCError is a deliberate answer, not a crash


def test_batches_through_the_registry() -> None:
    reg = Registry()
    reg.register_function(strict)
    batch = [
        {"jsonrpc": "2.0", "method": "strict", "params": [1], "id": 1},
        {"jsonrpc": "2.0", "method": "strict", "params": [1]},
        {"jsonrpc": "2.0", "method": "missing", "id": 2},
        {"jsonrpc": "2.0", "method": "strict", "params": [], "id": 3},
        5,
    ]
    (replies,) = serve(reg, json.dumps(batch).encode())
    assert [(r["id"], r.get("result"), r.get("error", {}).get("code")) for r in replies] == [
        (1, [1, 2, 3], None),
        (2, None, -32601),
        (3, None, -32602),
        (None, None, -32600),
    ]
    only_notes = json.dumps([batch[1], {"jsonrpc": "2.0", "method": "missing"}]).encode()
    assert serve(reg, only_notes) == []


def test_outcome_response_shapes() -> None:
    request = Request("m", None, "id")
    assert outcome_response(request, [1]) == Response("id", [1])
    assert outcome_response(request, None) == Response("id", None)
    assert outcome_response(Notification("m", None), 1) is None
    assert outcome_response(Notification("m", None), exc=ValueError()) is None
    reply = outcome_response(request, exc=MethodNotFound("Method not found: 'm'"))
    assert reply == ErrorResponse("id", ErrorObject(-32601, "Method not found: 'm'"))
