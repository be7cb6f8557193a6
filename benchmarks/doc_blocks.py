"""Blocks of a docs page that one benchmark owns, between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``: a benchmark rewrites its own block and keeps the rest of the page,
and a benchmark that writes a whole page keeps the blocks others own in it."""

from __future__ import annotations

import re
from pathlib import Path

_BLOCK = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", re.S)


def block(name: str, lines: list[str]) -> str:
    """``lines`` between the markers of ``name``."""
    return "\n".join([f"<!-- {name}:start -->", *lines, f"<!-- {name}:end -->"])


def owned_blocks(text: str) -> list[str]:
    """Every marked block of a page, markers included."""
    return [match.group(0) for match in _BLOCK.finditer(text)]


def put_block(page: Path, text: str, title: str = "# Benchmarks") -> None:
    """Write a marked block into ``page`` in place of its earlier version, or at the end
    (a new page starts with ``title``); the rest of the page stays as it is."""
    found = _BLOCK.fullmatch(text.strip())
    if found is None:
        raise ValueError("a block starts with <!-- NAME:start --> and ends with <!-- NAME:end -->")
    name = found.group(1)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    current = page.read_text() if page.exists() else title + "\n"
    if start in current and end in current:
        head, rest = current.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        current = head + text.strip() + "\n" + ("\n" + after if after else "")
    else:
        current = current.rstrip("\n") + "\n\n" + text.strip() + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(current)
