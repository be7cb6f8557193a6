"""The attention-kernel benchmark: every arm timed, ratios written as its docs block."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import attention_kernels
from tests.tiny import save_tiny_bert


def test_every_mode_precision_and_length_gets_its_ratios(tmp_path: Path) -> None:
    model = save_tiny_bert(tmp_path / "bert", ["a", "b", "c"])
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nkept\n")
    argv = ["--model", str(model), "--lengths", "4", "8", "--batch", "2", "--repeats", "1"]
    attention_kernels.main([*argv, "--page", str(page)])
    text = page.read_text()
    assert "kept" in text and "<!-- attention-kernels:start -->" in text
    rows = [line for line in text.splitlines() if line.startswith("| train step")]
    assert len(rows) == 4  # fp32 and bf16 at two lengths, each with the dropout-0.1 arm
    assert all(float(row.split("|")[6]) > 0 and "–" not in row for row in rows)
    evaluation = [line for line in text.splitlines() if line.startswith("| evaluation")]
    assert len(evaluation) == 4 and all(row.rstrip(" |").endswith("–") for row in evaluation)
    raw = json.loads((tmp_path / "attention_kernels.json").read_text())
    assert {r["arm"] for r in raw} == {"dropout 0, math", "dropout 0, flash", "dropout 0.1, math"}
