"""benchmarks.time_to_quality: the target and time-to-target rules on hand-made curves, and
one tiny end to end run (adapterkit's CLI, peft LoRA and full fine-tuning through Trainer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from benchmarks.time_to_quality import report
from benchmarks.time_to_quality.__main__ import main
from benchmarks.time_to_quality.contenders import Curve
from tests.tiny import SENTIMENT_WORDS, save_tiny_bert, save_tiny_sentiment


def _curve(contender: str, seed: int, seconds: list[float], validation: list[float]) -> Curve:
    return Curve(contender, seed, seconds, validation, 90.0, seconds[-1], 1.0, "v")


def test_target_is_the_best_peer_adapters_median_final_and_times_count_never_as_never() -> None:
    curves = [
        _curve("peft-lora", 0, [10, 20], [80, 90]),
        _curve("peft-lora", 1, [10, 20], [85, 92]),
        _curve("peft-lora", 2, [10, 20], [70, 88]),
        _curve("adapterhub-pfeiffer", 0, [30, 60], [85, 89]),
        _curve("full", 0, [5, 10], [95, 99]),  # not an adapter: never the target
        _curve("adapterkit", 0, [4, 8, 12], [85, 91, 90]),
        _curve("adapterkit", 1, [4, 8, 12], [90, 89, 89]),
        _curve("adapterkit", 2, [4, 8, 12], [80, 85, 86]),  # never reaches 90
    ]
    target, whose = report.target_of(curves)
    assert (target, whose) == (90, "peft-lora")
    rows = report.summary(curves, target)
    # adapterkit: 8 s, 4 s and never -> median 8 s; 2 of 3 seeds reach it.
    assert rows["adapterkit"]["time"] == 8 and rows["adapterkit"]["reached"] == 2
    assert rows["adapterkit"]["validation"] == 90  # its best epoch is the model it ends with
    # peft: 20, 20, never -> 20; AdapterHub never reaches it.
    assert rows["peft-lora"]["time"] == 20 and rows["adapterhub-pfeiffer"]["time"] is None
    assert "**0.40x** (met" in report.verdict(rows)
    slow = report.summary([*curves[:5], _curve("adapterkit", 0, [30], [95])], target)
    assert "**1.50x** (not met" in report.verdict(slow)


def test_a_candidate_default_is_judged_against_the_defaults_by_the_switch_rule() -> None:
    ours = [_curve("adapterkit", s, [10, 20, 30], [90, 92 + s, 91]) for s in range(3)]
    close = [_curve("adapterkit-attn0", s, [8, 16], [91, 92 + s]) for s in range(3)]
    (line,) = report.candidate_lines(ours + close)
    assert "93.0 (92.0–94.0, 3) vs 93.0 (92.0–94.0, 3), difference +0.0 (noise 2.0)" in line
    assert "**within seed noise**" in line and "seconds per epoch 8.0 vs 10.0." in line
    worse = [_curve("adapterkit-attn0", s, [8], [89 + s / 2]) for s in range(3)]
    worse[0].day = "2026-01-01"  # a run of another day: its speed does not compare
    (line,) = report.candidate_lines(ours + worse)
    assert "difference -3.5 (noise 2.0): **costs quality**" in line
    assert "(run on different days: these do not compare)" in line
    assert report.candidate_lines(close) == []  # nothing to judge it against


def test_a_tiny_run_end_to_end_reuses_finished_runs(tmp_path: Path) -> None:
    model = save_tiny_bert(tmp_path / "model", SENTIMENT_WORDS)
    data = save_tiny_sentiment(tmp_path / "data")
    docs, runs = tmp_path / "docs", tmp_path / "runs"
    docs.mkdir()
    (docs / "benchmarks.md").write_text("# Speed\n\nkept\n")
    python = sys.executable  # the peers' Trainer runs in this venv here (transformers 5, peft)
    argv = ["--data", str(data), "--model", str(model), "--epochs", "2", "--batch-size", "8"]
    argv += ["--seeds", "0", "--contenders", "adapterkit", "peft-lora", "full"]
    argv += ["--python", f"peft-lora={python}", f"full={python}"]
    argv += ["--runs", str(runs), "--docs", str(docs)]
    main(argv)
    finished = {p.name: p.stat().st_mtime_ns for p in (runs / "custom").glob("*-seed0.json")}
    assert set(finished) == {"adapterkit-seed0.json", "peft-lora-seed0.json", "full-seed0.json"}
    peer = json.loads((runs / "custom" / "peft-lora-seed0.json").read_text())
    assert [row["epoch"] for row in peer["epochs"]] == [1, 2]
    assert peer["epochs"][0]["seconds"] < peer["epochs"][1]["seconds"]
    assert len(peer["epochs"][0]["validation"]) == 8 and len(peer["epochs"][0]["test"]) == 8
    page = (docs / "time_to_quality.md").read_text()
    assert "the final validation score of peft-lora" in page
    for contender in ("adapterkit", "peft-lora", "full"):
        assert f"\n| {contender} | 1 |" in page
    assert (docs / "time_to_quality_custom.png").stat().st_size > 0
    summary = (docs / "benchmarks.md").read_text()
    assert summary.startswith("# Speed\n\nkept\n") and "<!-- time-to-quality:start -->" in summary
    main(argv)  # a second time: every run is reused, the summary replaced, not repeated
    again = {p.name: p.stat().st_mtime_ns for p in (runs / "custom").glob("*-seed0.json")}
    assert again == finished
    assert (docs / "benchmarks.md").read_text().count("<!-- time-to-quality:start -->") == 1
    ours = runs / "custom" / "adapterkit-seed0.json"
    record = json.loads(ours.read_text())
    assert record["method"] == "lora"  # sequence classification's default
    assert "adapterkit (this tree), method lora" in page  # the page says what trained
    ours.write_text(json.dumps({**record, "method": "pfeiffer"}))  # as if the default moved
    main(argv)  # the stale record is trained again, the peers' are reused
    moved = {p.name: p.stat().st_mtime_ns for p in (runs / "custom").glob("*-seed0.json")}
    assert moved["adapterkit-seed0.json"] != finished["adapterkit-seed0.json"]
    assert {k: v for k, v in moved.items() if k != ours.name} == {
        k: v for k, v in finished.items() if k != ours.name
    }
    assert json.loads(ours.read_text())["method"] == "lora"


def test_a_peer_interpreter_must_name_a_peer() -> None:
    with pytest.raises(SystemExit, match="CONTENDER=PATH"):
        main(["--python", "adapterkit=/usr/bin/python", "--report-only"])
