"""The pytest plugin's factory fixtures have public types, for the hints of users' tests.

``jsonrpc_mini.testing`` exports ``LoopbackFactory`` (``jsonrpc_loopback``),
``LoopbackServerFactory`` (``jsonrpc_server``) and ``FakeSocketFactory``
(``jsonrpc_fake_socket``); ``test_user_typing`` has mypy check a test hinted with them.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from jsonrpc_mini import RPCServer
from jsonrpc_mini import testing as kit
from jsonrpc_mini.testing import FakeSocketFactory, LoopbackFactory, LoopbackServerFactory

pytestmark = pytest.mark.timeout(60)


def _params(function: Callable[..., Any], drop: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    return [
        (name, param.kind)
        for name, param in inspect.signature(function).parameters.items()
        if name not in ("self", *drop)
    ]


@pytest.mark.parametrize(
    ("factory", "made_by", "drop"),
    [
        # connection= is the fixture's to count: not a parameter of the factory
        (LoopbackFactory, kit.loopback, ("connection",)),
        (LoopbackServerFactory, kit.LoopbackServer.__init__, ()),
        (FakeSocketFactory, kit.FakeSocket.__init__, ()),
    ],
)
def test_each_factory_takes_what_the_kit_takes(
    factory: type, made_by: Callable[..., Any], drop: tuple[str, ...]
) -> None:
    assert _params(factory.__call__) == _params(made_by, drop)
    assert factory.__doc__ and factory.__call__.__doc__
    assert factory.__module__ == "jsonrpc_mini.testing._fixture_types"
    assert getattr(kit, factory.__name__) is factory
    assert factory.__name__ in kit.__all__


def test_the_types_import_without_pytest() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from jsonrpc_mini.testing import FakeSocketFactory, LoopbackFactory, LoopbackServerFactory\n"
        "assert 'pytest' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, "")


def _add_server() -> RPCServer:
    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    return server


def test_hinted_fixtures_work(
    jsonrpc_loopback: LoopbackFactory,
    jsonrpc_server: LoopbackServerFactory,
    jsonrpc_fake_socket: FakeSocketFactory,
) -> None:
    server = _add_server()
    assert jsonrpc_loopback(server, timeout=5.0).add(1, 2) == 3
    with jsonrpc_server(server).client() as client:
        assert client.add(2, 2) == 4
    sock = jsonrpc_fake_socket([b"abc"], eof=True)
    assert sock.recv(10) == b"abc"
