"""Prompt tuning on the real MiniLM and a real TREC-6 slice: it learns, and its bundle
serves beside a LoRA in one mixed batch, each row as alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adapterkit.cli import main
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer

pytestmark = pytest.mark.real

QUESTIONS = ["Who wrote Hamlet?", "How far is the Moon?", "Where is Paris?", "What is NASA?"]


def test_prompt_on_trec_slice_beats_chance_and_serves_beside_lora(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trec"
    flags = ["--model", "minilm", "--data", "trec", "--method", "prompt", "--output", str(out)]
    # Kept under a minute on 2 CPU cores: 256 questions, 10 soft tokens, 120 per eval split.
    flags += ["--epochs", "2", "--max-train-samples", "256", "--max-eval-samples", "120"]
    assert main(["train", *flags, "--max-length", "48", "--num-virtual-tokens", "10"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["accuracy"] > 0.5  # chance is ~0.28
    assert metrics["trainable_percent"] < 1.0  # 10 x 384 soft-token numbers and the head
    capsys.readouterr()

    model = AdaptedModel(load_base("minilm"), name_or_path="minilm").eval()
    name = model.load_adapter(out / "adapter")
    model.add_adapter("lora", make_config("lora"))
    with torch.no_grad():
        for param in model.adapter_parameters("lora").values():
            param.normal_(std=0.05)
    batch = load_tokenizer("minilm")(QUESTIONS, padding=True, return_tensors="pt")
    routes = [name, "lora", None, name]
    with torch.no_grad():
        mixed = model(**batch, adapter=routes).last_hidden_state
        base = model(**batch, adapter=None).last_hidden_state
        for row, route in enumerate(routes):
            one = {k: v[row : row + 1] for k, v in batch.items()}
            alone = model(**one, adapter=route).last_hidden_state
            torch.testing.assert_close(mixed[row : row + 1], alone, rtol=1e-4, atol=1e-4)
    assert mixed.shape == base.shape  # the user's tokens only
    assert (mixed[0] - base[0]).abs().max() > 1e-2  # the trained prompt acts on its rows
