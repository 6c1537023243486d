"""The README's FakeSocket examples run as written: a scripted client, and a scripted server connection."""

from __future__ import annotations

import pytest
from _driver_helpers import LeakCheck
from _readme_blocks import README, python_blocks

pytestmark = pytest.mark.timeout(60)


def fake_socket_blocks() -> list[str]:
    return python_blocks("\n**FakeSocket**", "\n**pytest plugin**")


def test_the_section_shows_both_sides() -> None:
    blocks = fake_socket_blocks()
    assert len(blocks) == 2
    assert "RPCClient(transport=SocketTransport(sock)" in blocks[0]
    assert "server.serve_connection(SocketTransport(sock))" in blocks[1]


@pytest.mark.parametrize("index", range(2))
def test_readme_fake_socket_examples_run(index: int) -> None:
    with LeakCheck():
        exec(compile(fake_socket_blocks()[index], f"{README}#fakesocket-{index}", "exec"), {"__name__": "readme"})
