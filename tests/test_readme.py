"""The README's claims that can drift from the code: the options table, the error tree, links."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import jsonrpc_mini
from jsonrpc_mini import ServerOptions

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
OPTIONS = "### Limits and timeouts (keyword options of `RPCServer`)"


def section(title: str) -> str:
    return README.split(f"\n{title}\n", 1)[1].split("\n## ", 1)[0]


def options_table() -> dict[str, str]:
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section(OPTIONS), re.M)
    return {name: default.strip() for name, default in rows}


def as_written(value: object) -> str:
    """How the README writes a default: sizes in MiB, seconds with "s", strings quoted."""
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:g} s"
    if isinstance(value, int) and value >= 2**20 and value % 2**20 == 0:
        return f"{value // 2**20} MiB"
    return str(value)


def test_the_options_table_lists_every_server_option_once() -> None:
    names = re.findall(r"^\| `(\w+)` \|", section(OPTIONS), re.M)
    assert sorted(names) == sorted(f.name for f in dataclasses.fields(ServerOptions))


@pytest.mark.parametrize("field", dataclasses.fields(ServerOptions), ids=lambda f: f.name)
def test_the_options_table_gives_the_real_default(field: dataclasses.Field[object]) -> None:
    assert options_table()[field.name] == as_written(field.default)


def test_the_error_tree_names_every_exception_with_its_code() -> None:
    tree = section("## Errors").split("```", 2)[1]
    exceptions = [n for n in jsonrpc_mini.__all__ if isinstance(getattr(jsonrpc_mini, n), type)]
    for name in exceptions:
        cls = getattr(jsonrpc_mini, name)
        if issubclass(cls, jsonrpc_mini.RPCError):
            assert name in tree
            code = getattr(cls, "CODE", None)
            if code is not None:
                assert f"{name} {code}" in tree


def test_relative_links_point_at_files_that_exist() -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), target


def test_the_contents_links_every_section_in_order() -> None:
    titles = re.findall(r"^## (.+)$", README, re.M)
    anchors = re.findall(r"\]\(#([\w-]+)\)", README.split("\n## ", 1)[0])
    assert anchors == [re.sub(r"[^\w -]", "", t).strip().lower().replace(" ", "-") for t in titles]


def test_security_md_limits_agree_with_the_code() -> None:
    # SECURITY.md repeats the limits for readers who only open that file: keep them true.
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    table = text.split("## Limits and their defaults", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", table, re.M))
    defaults = {f.name: f.default for f in dataclasses.fields(ServerOptions)}
    listed = {name: value.strip() for name, value in rows.items() if name in defaults}
    assert len(listed) >= 10, f"SECURITY.md limits table not found or too short: {sorted(rows)}"
    for name, written in listed.items():
        assert written == as_written(defaults[name]), f"SECURITY.md says {name} = {written}"
