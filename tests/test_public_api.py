"""The public surface is what /work/shared/API.md promises: names, docstrings, signatures.

The promised names are written out here on purpose (no parsing of the document): a
change to the contract is a change to this file too.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pickle
import subprocess
import sys
from typing import Any

import pytest

import jsonrpc_mini
import jsonrpc_mini.testing
from jsonrpc_mini import (
    ConnectionLost,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RemoteError,
    RPCClient,
    RPCError,
    RPCServer,
    RPCTimeout,
    ServerError,
    aio,
)
from jsonrpc_mini.testing import FaultPlan, LoopbackServer, loopback

# API.md "Server", "Client" and "Errors"
PROMISED = {
    "RPCServer",
    "RPCClient",
    "RPCError",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "InternalError",
    "ServerError",
    "RemoteError",
    "ConnectionLost",
    "RPCTimeout",
}
# API.md "asyncio: jsonrpc_mini.aio"
PROMISED_AIO = {"RPCServer", "RPCClient", "connect"}
# API.md "Test kit: jsonrpc_mini.testing"
PROMISED_TESTING = {"FakeSocket", "FaultPlan", "loopback", "LoopbackServer"}

PUBLIC_MODULES = ["jsonrpc_mini", "jsonrpc_mini.aio", "jsonrpc_mini.testing"]

FIXED_CODES = [
    (ParseError, -32700, "Parse error"),
    (InvalidRequest, -32600, "Invalid Request"),
    (MethodNotFound, -32601, "Method not found"),
    (InvalidParams, -32602, "Invalid params"),
    (InternalError, -32603, "Internal error"),
]


# -- names ------------------------------------------------------------------------


def test_top_level_names() -> None:
    exported = set(jsonrpc_mini.__all__)
    assert exported >= PROMISED, f"missing from jsonrpc_mini.__all__: {sorted(PROMISED - exported)}"
    assert len(jsonrpc_mini.__all__) == len(exported), "duplicates in __all__"
    for name in jsonrpc_mini.__all__:
        assert hasattr(jsonrpc_mini, name), f"__all__ names {name!r} but the package has no such attribute"


def test_aio_names() -> None:
    assert set(aio.__all__) >= PROMISED_AIO, sorted(PROMISED_AIO - set(aio.__all__))
    for name in aio.__all__:
        assert hasattr(aio, name), name


def test_testing_names_and_modules() -> None:
    exported = set(jsonrpc_mini.testing.__all__)
    assert exported >= PROMISED_TESTING, f"missing from jsonrpc_mini.testing: {sorted(PROMISED_TESTING - exported)}"
    for name in jsonrpc_mini.testing.__all__:
        assert hasattr(jsonrpc_mini.testing, name), name
    strategies = importlib.import_module("jsonrpc_mini.testing.strategies")
    assert strategies.__doc__
    importlib.import_module("jsonrpc_mini.testing.__main__")  # `python -m jsonrpc_mini.testing check`


def test_testing_is_importable_without_pytest() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "import jsonrpc_mini.testing as t\n"
        "assert 'pytest' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(sorted(t.__all__))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_the_pytest_plugin_is_registered_by_entry_point() -> None:
    plugins = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert "jsonrpc_mini.testing._pytest_plugin" in plugins


def test_the_pytest_plugin_offers_jsonrpc_fixtures_and_the_seed_option(pytestconfig: pytest.Config) -> None:
    assert isinstance(pytestconfig.getoption("--jsonrpc-seed"), int)
    plugin = importlib.import_module("jsonrpc_mini.testing._pytest_plugin")
    fixtures = {name for name in vars(plugin) if name.startswith("jsonrpc_")}
    assert {"jsonrpc_seed"} <= fixtures
    assert len(fixtures) > 1, "the plugin should offer fixtures for the test kit, not only the seed"


# -- docstrings -----------------------------------------------------------------------


def _public_objects() -> list[tuple[str, Any]]:
    found = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        found.append((module_name, module))
        for name in module.__all__:
            if name.startswith("__"):
                continue
            obj = getattr(module, name)
            found.append((f"{module_name}.{name}", obj))
            if inspect.isclass(obj):
                # Its own members and those it inherits from the library's private base
                # classes (the servers' and clients' parts live in modules of their own).
                seen: set[str] = set()
                for cls in obj.__mro__:
                    if not cls.__module__.startswith("jsonrpc_mini"):
                        continue
                    for attr, member in vars(cls).items():
                        if attr.startswith("_") or attr in seen:
                            continue
                        seen.add(attr)
                        if inspect.isfunction(member) or isinstance(member, (property, classmethod, staticmethod)):
                            found.append((f"{module_name}.{name}.{attr}", member))
    return found


@pytest.mark.parametrize(("name", "obj"), _public_objects(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_public_name_has_a_docstring(name: str, obj: Any) -> None:
    doc = obj.__func__.__doc__ if isinstance(obj, (classmethod, staticmethod)) else obj.__doc__
    assert doc and doc.strip(), f"{name} has no docstring"


# -- signatures users rely on ---------------------------------------------------------------


def test_server_signatures() -> None:
    assert inspect.signature(RPCServer).parameters["max_message_size"].default == 16 * 2**20
    assert all(p.kind is p.KEYWORD_ONLY for p in inspect.signature(RPCServer).parameters.values())
    for method in (RPCServer.loop, RPCServer.start):
        params = inspect.signature(method).parameters
        assert (params["host"].default, params["port"].default) == ("127.0.0.1", 5000)
        assert "path" in params and "ssl" in params  # Unix sockets and TLS are options
    assert inspect.signature(RPCServer.register_function).parameters["name"].default is None
    assert inspect.signature(RPCServer.register_instance).parameters["prefix"].default == ""
    for name in ("shutdown", "__enter__", "__exit__", "register"):
        assert callable(getattr(RPCServer, name))


def test_client_signatures() -> None:
    params = inspect.signature(RPCClient).parameters
    assert list(params)[:2] == ["host", "port"]
    assert params["timeout"].default is None
    for name in ("call", "notify"):
        method = inspect.signature(getattr(RPCClient, name)).parameters["method"]
        assert method.kind is inspect.Parameter.POSITIONAL_ONLY, f"{name}: method must be positional-only"
    for name in ("connect", "batch", "with_timeout", "close", "__enter__", "__exit__"):
        assert callable(getattr(RPCClient, name))


def test_test_kit_signatures() -> None:
    params = inspect.signature(FaultPlan).parameters
    assert (params["seed"].default, params["max_chunk"].default, params["disconnect_after"].default) == (0, None, None)
    assert inspect.signature(loopback).parameters["faults"].default is None
    assert inspect.signature(LoopbackServer).parameters["faults"].default is None
    for name in ("client", "__enter__", "__exit__"):
        assert callable(getattr(LoopbackServer, name))


# -- the exception tree ("Details users rely on") -----------------------------------------------


def test_every_exception_is_an_rpc_error() -> None:
    for cls in (ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError):
        assert issubclass(cls, RPCError)
    for cls in (ServerError, RemoteError, ConnectionLost, RPCTimeout):
        assert issubclass(cls, RPCError)
    assert issubclass(ConnectionLost, ConnectionError)
    assert issubclass(RPCTimeout, TimeoutError)


def test_rpc_error_signature() -> None:
    e = RPCError(42, "the message")
    assert (e.code, e.message, e.data) == (42, "the message", None)
    e = RPCError(code=-1, message="m", data={"k": [1]})
    assert (e.code, e.message, e.data) == (-1, "m", {"k": [1]})


@pytest.mark.parametrize(("cls", "code", "text"), FIXED_CODES)
def test_fixed_code_errors_take_message_and_data(cls: type[RPCError], code: int, text: str) -> None:
    default = cls()  # type: ignore[call-arg]
    assert (default.code, default.message, default.data) == (code, text, None)
    custom = cls("custom", [1, 2])  # type: ignore[call-arg]
    assert (custom.code, custom.message, custom.data) == (code, "custom", [1, 2])
    keywords = cls(message="kw", data="d")  # type: ignore[call-arg]
    assert (keywords.code, keywords.message, keywords.data) == (code, "kw", "d")


@pytest.mark.parametrize("cls", [ServerError, RemoteError])
def test_server_and_remote_errors_take_code_message_data(cls: type[RPCError]) -> None:
    e = cls(-32050, "busy")
    assert (e.code, e.message, e.data) == (-32050, "busy", None)
    e = cls(code=7, message="seven", data=7)
    assert (e.code, e.message, e.data) == (7, "seven", 7)


@pytest.mark.parametrize("cls", [ConnectionLost, RPCTimeout])
def test_local_errors_take_a_message_and_have_no_code(cls: type[RPCError]) -> None:
    e = cls("what happened")  # type: ignore[call-arg]
    assert e.code is None and e.message == "what happened" and e.data is None
    assert "what happened" in str(e)


def test_str_names_the_method_and_the_code() -> None:
    e = MethodNotFound()
    e.method = "calc.add"
    assert "calc.add" in str(e) and "-32601" in str(e)
    e2 = ServerError(-32001, "overloaded")
    e2.method = "work"
    assert "work" in str(e2) and "-32001" in str(e2) and "overloaded" in str(e2)


def test_errors_survive_pickling() -> None:
    # Errors cross process boundaries (multiprocessing, concurrent.futures).
    for original in (InvalidParams("bad", {"x": 1}), ServerError(-32001, "s", [1]), ConnectionLost("gone")):
        original.method = "m"
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is type(original)
        assert (copy.code, copy.message, copy.data, copy.method) == (
            original.code,
            original.message,
            original.data,
            "m",
        )


def test_version_is_a_string() -> None:
    assert isinstance(jsonrpc_mini.__version__, str)
    assert jsonrpc_mini.__version__ == importlib.metadata.version("jsonrpc_mini")
