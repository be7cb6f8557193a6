"""benchmarks.quantized's table: ratios against float32 of the same base."""

from __future__ import annotations

from pathlib import Path

from benchmarks.quantized import write_report


def test_the_table_gives_each_precision_against_float32_of_its_base(tmp_path: Path) -> None:
    rows = [
        {"base": "b", "precision": "float32", "weight_mb": 80.0, "step_seconds": 1.0, "max_hidden_drift": 0.0},
        {"base": "b", "precision": "4bit", "weight_mb": 20.0, "step_seconds": 1.5, "max_hidden_drift": 0.5},
    ]  # fmt: skip
    results = {
        "machine": {"cpu": "x", "cores": 2, "torch": "2", "threads": 2},
        "bitsandbytes": "0.50",
        "quiet": False,
        "steps": 2,
        "repeats": 1,
        "batch": 16,
        "length": 64,
        "rows": rows,
    }
    write_report(results, tmp_path / "q.md")
    text = (tmp_path / "q.md").read_text()
    assert "| b | 4bit | 20.0 | 0.25x | 1.500 | 1.50x | 0.5 |" in text
    assert "NOT quiet" in text
