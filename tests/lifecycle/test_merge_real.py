"""A LoRA merge on the real MiniLM is exact: the merged bundle's logits are those of the
averaged deltas, built independently of the SVD (the two LoRAs side by side)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.lifecycle.helpers import run

from adapterkit.heads import ClassificationHead
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer

pytestmark = pytest.mark.real

TEXTS = ["Who wrote Hamlet?", "How far is the Moon?", "What does NASA stand for?"]
TASK = {"type": "sequence-classification", "labels": ["a", "b", "c"], "max_length": 64}


def test_linear_merge_on_minilm_equals_the_averaged_deltas(tmp_path: Path) -> None:
    model = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    hidden = model.base.config.hidden_size
    for seed, (name, rank) in enumerate([("one", 4), ("two", 8)]):
        head = ClassificationHead(hidden, 3, pooling="cls")
        model.add_adapter(name, make_config("lora", r=rank, alpha=16), head=head, task=TASK)
        generator = torch.Generator().manual_seed(seed)
        params = [*model.adapter_parameters(name).values(), *model.head_parameters(name).values()]
        with torch.no_grad():  # as if trained a little: away from B = 0
            for param in params:
                param.add_(torch.randn(param.shape, generator=generator) * 0.02)
        model.save_adapter(name, tmp_path / name)
    code, stdout, err = run(
        "merge", tmp_path / "one", tmp_path / "two", "--weights", "0.5", "0.5",
        "--out", tmp_path / "merged",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["svd_relative_error"] < 1e-6
    model.load_adapter(tmp_path / "merged", name="merged")

    # The reference: one LoRA of rank 12 holding both, B = [s1 B1 / 2, s2 B2 / 2], A = [A1; A2].
    model.add_adapter(
        "ref", make_config("lora", r=12, alpha=12), head=ClassificationHead(hidden, 3, "cls")
    )
    parents = [model.adapter_parameters(n) for n in ("one", "two")]
    scalings = [model.configs[n].scaling for n in ("one", "two")]
    with torch.no_grad():
        for key, param in model.adapter_parameters("ref").items():  # keys name no adapter
            parts = [p[key] for p in parents]
            if key.endswith("lora_B.weight"):
                parts = [0.5 * s * part for s, part in zip(scalings, parts, strict=True)]
            param.copy_(torch.cat(parts, dim=1 if key.endswith("lora_B.weight") else 0))
        for key, param in model.head_parameters("ref").items():
            heads = [model.head_parameters(n)[key] for n in ("one", "two")]
            param.copy_(0.5 * heads[0] + 0.5 * heads[1])

    batch = load_tokenizer("minilm")(TEXTS, padding=True, return_tensors="pt")
    results = {}
    with torch.no_grad():
        for name in ("merged", "ref", "one", "two"):
            hidden_states = model(**batch, adapter=name).last_hidden_state
            results[name] = model.head_logits(name, hidden_states, batch["attention_mask"])
    torch.testing.assert_close(results["merged"], results["ref"], rtol=1e-4, atol=1e-5)
    for parent in ("one", "two"):  # the merge is neither parent
        assert (results["merged"] - results[parent]).abs().max() > 1e-3


def test_adalora_bundles_on_minilm_merge_as_their_deltas(tmp_path: Path) -> None:
    from tests.lifecycle.helpers import deltas

    from adapterkit.train.job import adapter_modules

    model = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    hidden = model.base.config.hidden_size
    for seed, name in enumerate(("one", "two")):
        config = make_config("adalora", r=6, target_r=3)
        model.add_adapter(name, config, head=ClassificationHead(hidden, 3, "cls"), task=TASK)
        generator = torch.Generator().manual_seed(seed)
        modules = adapter_modules(model, name)
        with torch.no_grad():
            for param in model.adapter_parameters(name).values():
                param.add_(torch.randn(param.shape, generator=generator) * 0.02)
            for module in modules.values():  # as the schedule leaves them: ranks of their own
                module.rank_mask.copy_((torch.rand(6, generator=generator) < 0.5).float())
        config.training_controller(modules, total_steps=10).finish()
        model.save_adapter(name, tmp_path / name)
    code, stdout, err = run(
        "merge", tmp_path / "one", tmp_path / "two", "--out", tmp_path / "merged"
    )
    assert code == 0, err
    assert json.loads(stdout)["method"] == "lora"
    model.load_adapter(tmp_path / "merged", name="merged")
    one, two, merged = deltas(model, "one"), deltas(model, "two"), deltas(model, "merged")
    assert set(merged) == set(one) and len(merged) == 30
    for layer, delta in merged.items():
        torch.testing.assert_close(delta, 0.5 * one[layer] + 0.5 * two[layer], rtol=1e-4, atol=1e-7)
