"""The README's "Test kit" examples run as written."""

from __future__ import annotations

import pytest
from _readme_blocks import README, python_blocks

from jsonrpc_mini.testing import Resources

pytestmark = pytest.mark.timeout(60)


def section_blocks() -> list[str]:
    return python_blocks("## Test kit")


def test_readme_has_an_example_for_each_piece():
    joined = "\n".join(section_blocks())
    for name in ("loopback(", "FaultPlan(", "LoopbackServer(", "FakeSocket(", "jsonrpc_loopback", "jsonrpc_server"):
        assert name in joined


def test_readme_examples_run():
    before = Resources()
    namespace: dict[str, object] = {}
    for block in section_blocks():
        if "import pytest" in block:
            continue  # the plugin example: test_plugin.py runs the same fixtures in a real pytest run
        exec(compile(block, str(README), "exec"), namespace)
    before.assert_no_leaks()
