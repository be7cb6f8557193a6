"""docs/methods.md's table: one row per method, counts that add up, the folded bundle."""

from __future__ import annotations

from pathlib import Path

from benchmarks.method_table import ROWS, table
from tests.tiny import save_tiny_bert


def test_every_row_counts_its_weights(tmp_path: Path) -> None:
    model_dir = save_tiny_bert(tmp_path / "bert", ["ball", "goal"])
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table(str(model_dir))}
    assert list(rows) == [row for row, _, _ in ROWS]
    number = lambda cell: int(cell.replace(",", ""))  # noqa: E731
    head = number(rows["head"][3])
    for name, cells in rows.items():
        adapter, trained, stored = number(cells[2]), number(cells[3]), number(cells[5])
        assert trained == adapter + head, name
        if name.startswith("prefix") and "projection 0" not in name:
            assert stored < trained  # the MLP is folded away in the bundle
    assert rows["lora"][7:10] == ["yes", "yes", "yes |"]
    assert rows["prompt"][7:10] == ["no", "no", "no |"]
