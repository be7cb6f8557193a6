"""Prefix tuning on the real MiniLM: a short TREC-6 run learns, and its folded bundle serves
per row beside a LoRA in one batch."""

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

QUESTIONS = ["Who wrote Hamlet?", "How far is the Moon?", "What does NASA stand for?"]


def test_prefix_on_trec_slice_beats_chance_and_serves_mixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trec"
    argv = ["train", "--model", "minilm", "--data", "trec", "--method", "prefix"]
    argv += ["--epochs", "2", "--max-train-samples", "320", "--max-eval-samples", "200"]
    argv += ["--max-length", "32", "--lr", "3e-3", "--output", str(out)]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # Chance is ~0.28 (majority class DESC: 138 of 500); seen: 0.896 at 320 examples.
    assert metrics["split"] == "test" and metrics["accuracy"] > 0.6
    capsys.readouterr()

    model = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    name = model.load_adapter(out / "adapter")
    assert model.configs[name].prefix_projection == 0  # folded: served without the MLP
    model.add_adapter("lora", make_config("lora"))
    with torch.no_grad():
        for key, param in model.adapter_parameters("lora").items():
            if "lora_B" in key:
                param.normal_(0, 0.05)
    batch = load_tokenizer("minilm")(QUESTIONS, padding=True, return_tensors="pt")
    routes = [name, "lora", None]
    with torch.no_grad():
        mixed = model(**batch, adapter=routes).last_hidden_state
        for row, route in enumerate(routes):
            alone = model(**{k: v[row : row + 1] for k, v in batch.items()}, adapter=route)
            torch.testing.assert_close(
                mixed[row : row + 1], alone.last_hidden_state, rtol=1e-4, atol=1e-4
            )
        logits = model.head_logits(name, mixed[:1], batch["attention_mask"][:1])
    labels = model.task_info[name]["labels"]
    assert labels[int(logits.argmax())] == "HUM"  # "Who wrote Hamlet?"
