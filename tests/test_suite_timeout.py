"""The suite's own pytest-timeout setting stops a test whose asyncio loop never yields.

pytest-timeout's default method raises inside the running code; an asyncio loop catches
that exception in its callback handler and goes on, so such a test used to hang CI.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SPINNING_TEST = """
import asyncio

import pytest


@pytest.mark.timeout(2)
def test_spins():
    async def main():
        loop = asyncio.get_running_loop()

        def again():
            loop.call_soon(again)

        loop.call_soon(again)
        await asyncio.sleep(20)

    asyncio.run(main())
"""


@pytest.mark.timeout(90)
def test_a_spinning_event_loop_fails_within_the_timeout(tmp_path: Path) -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    (tmp_path / "test_spin.py").write_text(SPINNING_TEST)
    ini = f"[pytest]\ntimeout_method = {options['timeout_method']}\n"
    (tmp_path / "pytest.ini").write_text(ini)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:jsonrpc_mini", "test_spin.py"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Timeout" in out, out
