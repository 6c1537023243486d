"""The README's Python examples by section, for the tests that run them as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(start: str, end: str = "\n## ") -> list[str]:
    """The ```python blocks after the README's first ``start``, up to the next ``end``."""
    text = README.read_text(encoding="utf-8")
    section = text.split(start, 1)[1].split(end, 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)
