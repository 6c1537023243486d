"""The README's "asyncio" examples run as written (with the same strict loop checks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]

README = Path(__file__).resolve().parents[1] / "README.md"


def section_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## asyncio\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_section_shows_each_piece() -> None:
    joined = "\n".join(section_blocks())
    names = ("aio.RPCServer(", "aio.connect(", "c.batch()", "asyncio.timeout(", "aio_loopback(", "AioLoopbackServer(")
    for name in names:
        assert name in joined


@pytest.mark.parametrize("index", range(2))
def test_readme_asyncio_examples_run(index: int) -> None:
    block = section_blocks()[index]
    exec(compile(block, f"{README}#asyncio-{index}", "exec"), {"__name__": "readme"})
