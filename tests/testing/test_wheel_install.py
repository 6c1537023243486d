"""Use from another project: build the wheel, install it into a fresh venv, run a third-party test file.

The third-party tests use only the plugin's fixtures, its Hypothesis strategies (found through the ``pytest11``
entry point of the installed wheel) and ``jsonrpc_mini.testing``; no source checkout
is on ``sys.path`` (the run happens in an empty directory with PYTHONPATH unset).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]

THIRD_PARTY_TESTS = """
import os

import pytest

from hypothesis import given, settings

import jsonrpc_mini
from jsonrpc_mini import ConnectionLost, RPCServer
from jsonrpc_mini.testing import FakeSocket, FaultPlan, loopback
from jsonrpc_mini.testing import strategies as rst


def make_server():
    server = RPCServer()

    @server.register
    def greet(name):
        return f"hello {name}"

    return server


def test_installed_not_from_a_checkout():
    assert os.sep + "site-packages" + os.sep in jsonrpc_mini.__file__


@pytest.mark.jsonrpc_faults(max_chunk=1)
def test_loopback_with_marker(jsonrpc_loopback, jsonrpc_faults):
    assert jsonrpc_faults.max_chunk == 1
    assert jsonrpc_loopback(make_server()).greet("wheel") == "hello wheel"


def test_server_through_proxy(jsonrpc_server):
    srv = jsonrpc_server(make_server(), faults=FaultPlan(seed=3, max_chunk=2))
    assert srv.client().greet("tcp") == "hello tcp"


@pytest.mark.jsonrpc_faults(disconnect_after=8)
def test_disconnect(jsonrpc_loopback):
    with pytest.raises(ConnectionLost):
        jsonrpc_loopback(make_server()).greet("x")


def test_fake_socket(jsonrpc_fake_socket):
    assert isinstance(jsonrpc_fake_socket([b"x"]), FakeSocket)


SERVER = make_server()
SERVER.register_function(lambda value: value, name="echo")


@settings(max_examples=15, deadline=None)
@given(value=rst.json_values(), plan=rst.fault_plans(breaking=False))
def test_strategies_from_the_wheel(value, plan):
    with loopback(SERVER, faults=plan) as client:
        assert rst.same_json(client.echo(value), value)
"""


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_wheel_installs_and_works_for_a_third_party_project(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "JSONRPC_SEED")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # Build from a copy of what the sdist needs: the checkout stays untouched (no build/ in it).
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "jsonrpc_mini", source / "jsonrpc_mini", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)], env=env)
    (wheel,) = wheels.glob("jsonrpc_mini-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=env)
    python = venv / "bin" / "python"
    # The outer pip installs into the new venv (faster than bootstrapping pip there; reuses the pip cache).
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    run([*install, str(wheel), "pytest", "hypothesis"], env=env)

    project = tmp_path / "project"
    project.mkdir()
    (project / "test_uses_kit.py").write_text(textwrap.dedent(THIRD_PARTY_TESTS))
    proc = run(
        [str(python), "-m", "pytest", "-v", "-p", "no:cacheprovider", "--jsonrpc-seed", "99", "test_uses_kit.py"],
        cwd=project,
        env=env,
    )
    assert "jsonrpc_mini: --jsonrpc-seed=99" in proc.stdout
    assert "6 passed" in proc.stdout, proc.stdout
