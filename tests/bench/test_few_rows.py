"""benchmarks.few_rows: its page from hand-made ratios (no timing)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.few_rows import write_page


def test_page_gives_the_ratio_per_shape_and_method(tmp_path: Path) -> None:
    page = tmp_path / "few_rows.md"
    shapes = [{"batch": 4, "length": 40, "lora": 0.95, "houlsby": 1.02}]
    bias = [{"dtype": "bfloat16", "rows": 24, "apart": 30.0, "column": 40.0}]
    write_page(shapes, rounds=25, bias=bias, page=page)
    text = page.read_text()
    assert "| 4 × 40 | 160 | 0.950 | 1.020 |" in text
    assert "switches to bf16 from 64 rows" in text and "as a column from 96 rows" in text
    assert "| bfloat16 | 24 | 30.0 | 40.0 |" in text
