"""The small-data study's table: median, worst seed and stuck runs per method and variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks import small_data_study as study


def test_report_gives_median_worst_and_stuck_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "RUNS", tmp_path / "runs")
    for seed, (score, stuck) in enumerate([(0.9, False), (0.0, True), (0.8, False)]):
        run = tmp_path / "runs" / f"conll2003-1000-lora-seed{seed}"
        run.mkdir(parents=True)
        record = {"f1": score, "epochs_run": 10 + seed, "learned_nothing": stuck}
        (run / "metrics.json").write_text(json.dumps(record))
    study.write_report(tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    lora = next(line for line in text.splitlines() if line.startswith("| lora |"))
    assert "80.0 (worst 0.0; stuck 1/3; epochs 10, 11, 12)" in lora
    assert "0 of 3 seeds run" in lora  # trec-500 was not run
