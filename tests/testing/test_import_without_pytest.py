"""The test kit is product code: it imports and works in a process where pytest cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import jsonrpc_mini.testing as kit

pytestmark = pytest.mark.timeout(60)

SCRIPT = textwrap.dedent(
    """
    import sys

    class BlockPytest:
        def find_spec(self, name, path=None, target=None):
            if name in ("pytest", "_pytest") or name.startswith(("pytest.", "_pytest.")):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockPytest())
    try:
        import pytest
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker does not work")

    import jsonrpc_mini.testing as kit
    from jsonrpc_mini import RPCServer

    server = RPCServer()
    server.register_function(lambda a, b: a + b, name="add")
    with kit.loopback(server, kit.FaultPlan(seed=1, max_chunk=1)) as client:
        assert client.add(1, 2) == 3
    with kit.LoopbackServer(server) as srv:
        assert srv.client().add(2, 2) == 4
    for name in kit.__all__:
        getattr(kit, name)
    blocked = ("_pytest", "jsonrpc_mini.testing._pytest_plugin")
    assert not any(m == "pytest" or m.startswith(blocked) for m in sys.modules)
    print("ok", len(kit.__all__))
    """
)


def test_kit_imports_and_runs_without_pytest():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], check=False, capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok ")


def test_public_names_are_exported_and_documented():
    expected = {
        "FakeSocket",
        "FaultPlan",
        "DirectionFaults",
        "FaultyTransport",
        "loopback",
        "LoopbackServer",
        "pipe_pair",
        "PipeTransport",
        "check",
        "CheckReport",
        "Resources",
    }
    assert expected <= set(kit.__all__)
    for name in kit.__all__:
        assert getattr(kit, name).__doc__, f"{name} has no docstring"
