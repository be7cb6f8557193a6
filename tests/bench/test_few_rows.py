"""benchmarks.few_rows: its page from hand-made ratios (no timing)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.few_rows import write_page


def test_page_gives_the_ratio_per_shape_and_method(tmp_path: Path) -> None:
    page = tmp_path / "few_rows.md"
    write_page([{"batch": 4, "length": 40, "lora": 0.95, "houlsby": 1.02}], rounds=25, page=page)
    text = page.read_text()
    assert "| 4 × 40 | 160 | 0.950 | 1.020 |" in text
    assert "switches to bf16 from 64 rows" in text
