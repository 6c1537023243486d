"""The README's "Test kit" examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jsonrpc_mini.testing import Resources

pytestmark = pytest.mark.timeout(60)

README = Path(__file__).resolve().parents[2] / "README.md"


def section_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Test kit", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


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
