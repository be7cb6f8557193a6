"""The search study's page from recorded runs: the retrained best against the defaults and
full fine-tuning, the project's quality goal judged, K = 1 against K = 4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.search_study import report
from benchmarks.search_study.runs import RETRAIN_SEEDS, option_args, search_dir


def _search(runs: Path, parallel: int, seconds: float, validation: float) -> None:
    out = search_dir(runs, "trec", parallel, 24)
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "score_by_trial.png").write_bytes(b"png")
    rows = ["trial,state,accuracy", "0,COMPLETE,0.95", "1,PRUNED,", "2,PRUNED,"]
    (out / "trials.csv").write_text("\n".join(rows) + "\n")
    best = {
        "trial": "trial-000",
        "validation": {"accuracy": validation},
        "options": {"method": "lora", "lr": 0.00123, "rank": 8},
        "test": {"accuracy": 0.96},
    }
    record = {"seconds": seconds, "resumed": False, "best": best, "command": "adapterkit search"}
    (out / "study_result.json").write_text(json.dumps(record))


def _retrain(runs: Path, label: str, tests: list[float], trainable: float) -> None:
    for seed, test in zip(RETRAIN_SEEDS, tests, strict=True):
        out = runs / f"trec-{label}-seed{seed}"
        out.mkdir(parents=True)
        metrics = {"accuracy": test, "trainable_percent": trainable, "train_seconds": 80.0}
        record = {"validation": {"accuracy": 0.94}, "test": metrics}
        (out / "study_result.json").write_text(json.dumps(record))


@pytest.mark.parametrize(("full", "verdict"), [(96.5, "is met"), (97.5, "is not met")])
def test_the_page_judges_the_retrained_best_against_full_fine_tuning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, full: float, verdict: str
) -> None:
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    docs.mkdir()
    _search(runs, 1, 1000.0, 0.95)
    _search(runs, 4, 1100.0, 0.94)
    _retrain(runs, "default", [0.950, 0.954, 0.958], 1.9)
    _retrain(runs, "best", [0.960, 0.962, 0.966], 1.9)
    monkeypatch.setattr(report, "_full", lambda task: ([full] * 3, "Trainer"))
    results = docs / "results.md"
    results.write_text("# Quality results\n\nkept text\n")
    report.write_page(runs, [("trec", 1, 1), ("trec", 4, 1)], 24, docs / "search.md", results)
    page = (docs / "search.md").read_text()
    assert (
        "| search's best options, retrained | 94.0 (94.0-94.0, n 3) | 96.2 (96.0-96.6, n 3)" in page
    )
    assert "| `adapterkit train` defaults | 94.0 (94.0-94.0, n 3) | 95.4 (95.0-95.8, n 3)" in page
    assert f"the goal (within 0.5 point, <= 2 %) {verdict}" in page
    assert "Over the defaults: +0.8 points." in page
    assert "1 complete, 2 pruned" in page
    assert "trec: the search with K = 4 takes 1.10x the wall time of K = 1." in page
    assert (docs / "search_study_trec.png").read_bytes() == b"png"
    text = results.read_text()
    assert "kept text" in text and "<!-- search-study:start -->" in text
    assert "K = 4 takes 1.10x" in text


def test_a_trials_options_become_train_flags() -> None:
    options = {"method": "pfeiffer", "reduction_factor": 16, "weight_decay": 0.01}
    assert option_args(options) == [
        "--method", "pfeiffer", "--reduction-factor", "16", "--weight-decay", "0.01"
    ]  # fmt: skip
