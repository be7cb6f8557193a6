"""QLoRA on the real MiniLM: LoRA over a 4-bit NF4 base learns a real TREC-6 slice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapterkit.cli import main

pytestmark = pytest.mark.real
pytest.importorskip("bitsandbytes")


def test_lora_on_a_4bit_minilm_beats_chance_on_trec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trec"
    argv = ["train", "--model", "minilm", "--data", "trec", "--method", "lora", "--epochs", "2"]
    argv += ["--max-train-samples", "320", "--max-length", "64", "--quantize", "4bit"]
    assert main([*argv, "--output", str(out), "--report-to", "none"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["support"] == 500 and metrics["accuracy"] > 0.5  # chance is ~0.28
    record = json.loads((out / "adapter" / "adapterkit.json").read_text())
    assert record["base_model"]["quantize"] == "4bit"
    capsys.readouterr()
    assert main(["predict", str(out / "adapter"), "Who wrote Hamlet?"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in {
        "HUM",
        "DESC",
        "ENTY",
        "ABBR",
        "NUM",
        "LOC",
    }
