"""Blocks a benchmark owns in a docs page: rewritten in place, the rest of the page kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.doc_blocks import block, owned_blocks, put_block


def test_a_block_replaces_its_earlier_version_and_keeps_the_rest(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    put_block(page, block("one", ["first"]), title="# Title")
    assert page.read_text() == "# Title\n\n<!-- one:start -->\nfirst\n<!-- one:end -->\n"
    put_block(page, block("two", ["other"]))
    put_block(page, block("one", ["second", "lines"]))
    text = page.read_text()
    assert "first" not in text and text.count("<!-- one:start -->") == 1
    assert text.index("second") < text.index("other")  # in place, not moved to the end
    assert owned_blocks(text) == [block("one", ["second", "lines"]), block("two", ["other"])]


def test_text_without_its_markers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NAME:start"):
        put_block(tmp_path / "page.md", "no markers")
    with pytest.raises(ValueError):  # a start without its own end
        put_block(tmp_path / "page.md", "<!-- a:start -->\nx\n<!-- b:end -->")
