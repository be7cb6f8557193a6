"""The real SmolLM2-135M-Instruct: a few training steps on a Tatoeba slice lower the loss."""

from __future__ import annotations

import pytest
import torch

from adapterkit.data import load_data
from adapterkit.generation import DecodeOptions, generate_texts
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import base_kind, load_base, load_tokenizer
from adapterkit.tasks import make_task

pytestmark = pytest.mark.real


def _mean_loss(model: AdaptedModel, task, batches) -> float:
    model.eval()
    with torch.no_grad():
        return sum(task.loss(task.forward(model, "t", b), b).item() for b in batches) / len(batches)


def test_smollm2_loss_falls_on_a_tatoeba_slice() -> None:
    assert base_kind("smollm2", "causal-lm") == "causal-lm"
    tokenizer = load_tokenizer("smollm2")
    model = AdaptedModel(load_base("smollm2", "causal-lm"), name_or_path="smollm2")
    task = make_task("causal-lm", tokenizer, None, 96)
    examples = load_data("tatoeba-en-es").train[:16]
    features = [task.encode(ex) for ex in examples]
    batches = [task.collate(features[i : i + 8]) for i in range(0, 16, 8)]
    # q/v only, the setting of the generation benchmark's <= 1 % budget (the default, every
    # linear layer, is 1.8 % of SmolLM2).
    from benchmarks.generation_quality import LORA_QUERY_VALUE

    model.add_adapter("t", make_config("lora", target_modules=LORA_QUERY_VALUE))
    model.train_adapter("t")
    assert model.parameter_report("t").percent < 1.0
    before = _mean_loss(model, task, batches)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for _ in range(3):  # 6 steps
        for batch in batches:
            task.loss(task.forward(model, "t", batch), batch).backward()
            optimizer.step()
            optimizer.zero_grad()
    after = _mean_loss(model, task, batches)
    assert after < before - 0.2, (before, after)
    prompt = [task.prompt_ids({"prompt": examples[0]["prompt"]})]
    text = generate_texts(model, tokenizer, prompt, "t", DecodeOptions(max_new_tokens=16))[0].text
    assert text.strip()  # it answers something, and the chat template's end token stops it
