"""AdaLoRA on the real MiniLM and a TREC-6 slice: learns, ends at its rank budget, serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from adapterkit.cli import main

pytestmark = pytest.mark.real


def test_adalora_on_trec_slice_learns_and_ends_at_its_budget(
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
            "adalora",
            "--rank",
            "8",
            "--target-rank",
            "4",
            "--epochs",
            "2",
            "--max-train-samples",
            "320",
            "--max-length",
            "32",
            "--output",
            str(out),
        ]
    )
    log = capsys.readouterr()
    assert code == 0, log.err
    # MiniLM: 6 layers x 5 LoRA targets; a budget of 4 a layer on average, from 8
    assert "adalora: final ranks 120 in all over 30 layers" in log.out + log.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["support"] == 500
    assert metrics["accuracy"] > 0.5  # chance is ~0.28 (majority class DESC: 138 of 500)
    record = json.loads((out / "adapter" / "adapterkit.json").read_text())
    pattern = record["config"]["rank_pattern"]
    assert len(pattern) == 30 and sum(pattern.values()) == 120
    assert len(set(pattern.values())) > 1  # the ranks really moved between layers
    tensors = load_file(out / "adapter" / "adapterkit.safetensors")
    assert sum(t.shape[0] for k, t in tensors.items() if k.endswith(".lora_E")) == 120
    assert main(["predict", str(out / "adapter"), "Who wrote Hamlet?"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["label"] in {"HUM", "DESC", "ENTY", "ABBR", "NUM", "LOC"}
