"""The small-data study's table: median, worst seed and stuck runs per method and variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks import rare_entities
from benchmarks import small_data_study as study

from adapterkit.data import load_data


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
    assert lora.count("| not run") == 2  # trec-500 and movie-sentiment-500 were not run
    saved = json.loads((tmp_path / "report.json").read_text())
    assert [(r["seed"], r["validation"], r["stuck"]) for r in saved] == [
        (0, 90.0, False),
        (1, 0.0, True),
        (2, 80.0, False),
    ]


def test_a_partly_run_cell_shows_its_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "RUNS", tmp_path / "runs")
    run = tmp_path / "runs" / "trec-500-ia3-seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.875, "epochs_run": 10}))
    study.write_report(tmp_path / "report.md")
    ia3 = next(
        line for line in (tmp_path / "report.md").read_text().splitlines() if "| ia3 |" in line
    )
    assert "87.5 (1 of 3 seeds run)" in ia3


def test_runs_of_earlier_sessions_are_kept_and_reruns_replace_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "RUNS", tmp_path / "runs")
    earlier = {"metric": "accuracy", "stuck": False, "epochs": 10}
    kept = [
        {"variant": "trec-500", "method": "lora", "seed": 0, "validation": 90.0} | earlier,
        {"variant": "trec-500", "method": "ia3", "seed": 0, "validation": 70.0} | earlier,
    ]
    (tmp_path / "report.json").write_text(json.dumps(kept))
    run = tmp_path / "runs" / "trec-500-ia3-seed0"  # a rerun, the only folder here
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.875, "epochs_run": 12}))
    study.write_report(tmp_path / "report.md")
    saved = json.loads((tmp_path / "report.json").read_text())
    assert [(r["method"], r["validation"], r["epochs"]) for r in saved] == [
        ("lora", 90.0, 10),  # its folder is gone, its record is not
        ("ia3", 87.5, 12),
    ]


def test_every_variant_has_one_table() -> None:
    placed = [v for variants in study.TABLES.values() for v in variants]
    assert sorted(placed) == sorted(study.VARIANTS)


def test_rarest_types_come_from_the_mention_counts() -> None:
    examples = [
        {"tokens": ["a", "b", "c"], "tags": ["B-PER", "I-PER", "B-LOC"]},
        {"tokens": ["d", "e"], "tags": ["B-PER", "B-ORG"]},
        {"tokens": ["f"], "tags": ["B-LOC"]},
    ]
    assert rare_entities.mentioned_types(examples[0]) == {"PER", "LOC"}
    assert rare_entities.rarest_types(examples, 1) == ["ORG"]


def test_the_rare_variant_loads_as_user_files_with_its_rare_types_rare(tmp_path: Path) -> None:
    folder, summary = rare_entities.write_rare_variant(
        tmp_path / "rare", seed=0, train_size=300, eval_size=100
    )
    splits = load_data(str(folder))
    assert splits.task == "token-classification"
    assert (len(splits.train), len(splits.validation)) == (300, 100)
    mentions = [t for ex in splits.train for t in ex["tags"] if t.startswith("B-")]
    rare = set(rare_entities.rarest_types(load_data("conll2003").train))
    share = sum(t[2:] in rare for t in mentions) / len(mentions)
    assert 0 < share < 0.2, summary  # CoNLL-2003's two rarest types hold 40 % of its mentions


def test_the_rare_variant_reports_each_entity_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "RUNS", tmp_path / "runs")
    for seed, misc in enumerate((0.3, 0.2, 0.4)):
        run = tmp_path / "runs" / f"{study.RARE}-lora-seed{seed}"
        run.mkdir(parents=True)
        per_type = {"MISC": {"f1": misc}, "PER": {"f1": 0.9}}
        record = {"f1": 0.85, "epochs_run": 8, "per_type": per_type}
        (run / "metrics.json").write_text(json.dumps(record))
    study.write_report(tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    assert "- lora: MISC 30.0 (worst 20.0), PER 90.0 (worst 90.0)" in text
