"""The README's "asyncio" examples run as written (with the same strict loop checks)."""

from __future__ import annotations

import pytest
from _readme_blocks import README, python_blocks

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]


def section_blocks() -> list[str]:
    return python_blocks("\n## asyncio\n")


def test_the_section_shows_each_piece() -> None:
    joined = "\n".join(section_blocks())
    names = ("aio.RPCServer(", "aio.connect(", "c.batch()", "asyncio.timeout(", "aio_loopback(", "AioLoopbackServer(")
    for name in names:
        assert name in joined


@pytest.mark.parametrize("index", range(2))
def test_readme_asyncio_examples_run(index: int) -> None:
    block = section_blocks()[index]
    exec(compile(block, f"{README}#asyncio-{index}", "exec"), {"__name__": "readme"})
