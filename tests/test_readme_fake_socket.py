"""The README's FakeSocket examples run as written: a scripted client, and a scripted server connection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _driver_helpers import LeakCheck

pytestmark = pytest.mark.timeout(60)

README = Path(__file__).resolve().parents[1] / "README.md"


def fake_socket_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n**FakeSocket**", 1)[1].split("\n**pytest plugin**", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_section_shows_both_sides() -> None:
    blocks = fake_socket_blocks()
    assert len(blocks) == 2
    assert "RPCClient(transport=SocketTransport(sock)" in blocks[0]
    assert "server.serve_connection(SocketTransport(sock))" in blocks[1]


@pytest.mark.parametrize("index", range(2))
def test_readme_fake_socket_examples_run(index: int) -> None:
    with LeakCheck():
        exec(compile(fake_socket_blocks()[index], f"{README}#fakesocket-{index}", "exec"), {"__name__": "readme"})
