"""``python -m jsonrpc_mini serve``: a file name as target, and a closed stderr.

``serve api_mod.py`` imported api_mod, then failed "No module named 'api_mod.py';
'api_mod' is not a package": now a usage error naming the module to give, before
anything is imported. ``serve MOD 2>&1 | head -1``: the second startup line met the
closed pipe, and its BrokenPipeError was taken for a listen failure (exit 1, never
served): now the lost lines are only lost, and serve serves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _driver_helpers import WAIT, wait_for

from jsonrpc_mini import RPCClient

pytestmark = pytest.mark.timeout(90)

MODULE = textwrap.dedent(
    """
    print("imported", file=open(__file__ + ".imported", "w"))

    def add(a, b):
        return a + b
    """
)


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    (tmp_path / "api_mod.py").write_text(MODULE, encoding="utf-8")
    return tmp_path


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jsonrpc_mini", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("target", "hint"),
    [("api_mod.py", "serve api_mod,"), ("./api_mod.py:add", "serve api_mod:add,"), ("sub/api_mod", "serve api_mod,")],
)
def test_a_file_name_is_refused_naming_the_module_to_give(module_dir: Path, target: str, hint: str) -> None:
    done = _cli(module_dir, "serve", target, "--port", "0")
    assert done.returncode == 2, done.stderr
    assert "give a module name (api_mod), not a file name" in done.stderr, done.stderr
    assert hint in done.stderr, done.stderr
    assert "is not a package" not in done.stderr
    assert not (module_dir / "api_mod.py.imported").exists()  # refused before importing it


def test_serve_with_stderr_closed_by_its_reader_still_serves(module_dir: Path) -> None:
    # `serve MOD 2>&1 | head -1`: a pipe whose reader is gone; every write to it fails.
    read_end, write_end = os.pipe()
    os.close(read_end)
    path = module_dir / "s.sock"
    try:
        serve = subprocess.Popen(
            [sys.executable, "-m", "jsonrpc_mini", "serve", "api_mod", "--path", str(path)],
            cwd=module_dir,
            stdout=write_end,
            stderr=write_end,
        )
    finally:
        os.close(write_end)
    try:
        wait_for(lambda: path.exists() or serve.poll() is not None, "serve to listen", timeout=30)
        assert serve.poll() is None, f"serve exited {serve.returncode} without serving"
        with RPCClient(path=str(path), timeout=WAIT) as client:
            assert client.add(2, 3) == 5
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
            raise AssertionError("serve did not exit on SIGTERM") from None
    assert serve.returncode == 0
