"""The protocol core must not do I/O: it imports no socket, thread, event loop or TLS."""

from __future__ import annotations

import ast
import pathlib

import pytest

import jsonrpc_mini

CORE = [
    "_errors",
    "_json",
    "_frames",
    "_json_stream",
    "_json_lazy",
    "_json_runs",
    "_content_length",
    "_framing",
    "_codec",
    "_connection_base",
    "_protocol",
    "_client_batches",
    "_client_protocol",
    "_dispatch",
    "_batch",
    "_remote",
]
FORBIDDEN = {"socket", "asyncio", "threading", "selectors", "ssl", "select", "time"}
PACKAGE = pathlib.Path(jsonrpc_mini.__file__).parent


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io(module: str) -> None:
    found = imported_modules(PACKAGE / f"{module}.py") & FORBIDDEN
    assert not found, f"{module} imports {sorted(found)}: the protocol core must stay sans-IO"


def test_checker_sees_forbidden_imports(tmp_path: pathlib.Path) -> None:
    # The check itself must be able to fail.
    sample = tmp_path / "sample.py"
    sample.write_text("import socket\nfrom threading import Lock\nfrom . import x\n", encoding="utf-8")
    assert imported_modules(sample) & FORBIDDEN == {"socket", "threading"}
