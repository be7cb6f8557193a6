"""benchmarks.switches: the verdict rule on hand-made runs (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.quality_spec import run_dir
from benchmarks.switches import write_page


def _runs(runs: Path, task: str, variant: str | None, validation: list[float]) -> None:
    metric = "accuracy" if task == "trec" else "f1"
    for seed, score in enumerate(validation):
        folder = run_dir(task, "lora", seed, variant, runs)
        folder.mkdir(parents=True)
        final = {metric: score - 0.01, "train_seconds": 600.0 if variant is None else 300.0}
        (folder / "metrics.json").write_text(json.dumps(final))
        (folder / "validation_metrics.json").write_text(json.dumps({metric: score}))


def test_a_switch_holds_within_seed_noise_and_fails_beyond_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for task in ("trec", "conll2003"):
        _runs(runs, task, None, [0.90, 0.91, 0.92])  # median 91.0, range 2.0
        _runs(runs, task, "grouped-even", [0.885, 0.89, 0.90])  # -1.0: within the noise
    _runs(runs, "trec", "bf16", [0.90, 0.91, 0.92])
    _runs(runs, "conll2003", "bf16", [0.86, 0.87, 0.875])  # -4.0 beyond a 2.0 range
    _runs(runs, "trec", "no-attn-dropout", [0.95, 0.95])  # two seeds: no verdict
    page = tmp_path / "switches.md"
    holds = write_page("lora", runs, page)
    assert holds == {"grouped-even": True, "bf16": False, "no-attn-dropout": None}
    text = page.read_text()
    assert "| `--precision bf16` | conll2003 | 91.0 (90.0–92.0, 3) | 87.0 (86.0–87.5, 3) | " in text
    assert "-4.0 (2.0) | costs quality |" in text
    assert "10.0 / 5.0 |" in text
    assert "- `--attention-dropout 0`: **kept off**. Judged at today's defaults" in text


def test_no_runs_leave_the_committed_page_as_it_is(tmp_path: Path) -> None:
    page = tmp_path / "switches.md"
    page.write_text("committed numbers\n")
    with pytest.raises(SystemExit, match="no finished runs of lora"):
        write_page("lora", tmp_path / "runs", page)
    assert page.read_text() == "committed numbers\n"
