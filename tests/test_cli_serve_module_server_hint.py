"""``serve MODULE`` of a module that holds an RPCServer: a hint names ``MODULE:NAME``.

``serve kvapp``, where ``kvapp.server`` is the RPCServer with the service's methods,
served the module's own public functions (the factory ``make_server`` say) and said
nothing of ``server``: a user wanting ``serve kvapp:server`` saw "registered:
make_server" and MethodNotFound for every method. The functions are still served,
as README says; the "registered:" line now names the target to give for the server.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from _driver_helpers import LeakCheck, serving

from jsonrpc_mini import RPCServer
from jsonrpc_mini.__main__ import main

pytestmark = pytest.mark.timeout(60)

MODULE = textwrap.dedent(
    """
    from jsonrpc_mini import RPCServer

    def make_server():
        s = RPCServer()
        s.register_function(lambda a, b: a + b, name="add")
        return s

    server = make_server()
    _private = RPCServer()
    """
)


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    with LeakCheck():
        yield


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"cli_server_hint_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_serving_the_module_names_its_server(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    with serving(RPCServer()) as (_host, port):  # a port in use: the lines are written, nothing is served
        assert main(["serve", module, "--port", str(port)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"registered: make_server (for an RPCServer's methods: serve {module}:server)"
    assert not any("_private" in line for line in err)


def test_serving_the_server_itself_gives_no_hint(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    with serving(RPCServer()) as (_host, port):
        assert main(["serve", f"{module}:server", "--port", str(port)]) == 1
    assert "for an RPCServer" not in capsys.readouterr().err
