"""Training on the real MiniLM and a real TREC-6 slice: the main job, shrunk to CI size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapterkit.cli import main

pytestmark = pytest.mark.real


def test_pfeiffer_on_trec_slice_beats_chance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trec"
    code = main(
        [
            "train",
            "--model",
            "minilm",
            "--data",
            "trec",
            "--method",
            "pfeiffer",
            "--epochs",
            "2",
            "--max-train-samples",
            "320",
            "--max-length",
            "64",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["support"] == 500  # the standard TREC test set
    assert metrics["accuracy"] > 0.5  # chance is ~0.28 (majority class DESC: 138 of 500)
    assert metrics["trainable_percent"] < 2.0
    capsys.readouterr()
    assert main(["predict", str(out / "adapter"), "Who wrote Hamlet?"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["label"] in {"HUM", "DESC", "ENTY", "ABBR", "NUM", "LOC"}
