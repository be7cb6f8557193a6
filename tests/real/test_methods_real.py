"""IA3, DoRA, bias/norm tuning and the gated mix on the real MiniLM: per-row routing beside LoRA, exact merges."""

from __future__ import annotations

import pytest
import torch

from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer

pytestmark = pytest.mark.real

TEXTS = [
    "Who wrote Hamlet?",
    "How far is the Moon from the Earth?",
    "Where is the Eiffel Tower?",
    "What does NASA stand for?",
    "When did the Berlin Wall fall?",
    "Why is the sky blue?",
]


@pytest.fixture(scope="module")
def model() -> AdaptedModel:
    adapted = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    torch.manual_seed(0)
    for method in ("ia3", "dora", "lora"):
        adapted.add_adapter(method, make_config(method))
        with torch.no_grad():  # away from the identity start, scales kept away from zero
            for param in adapted.adapter_parameters(method).values():
                param.add_(torch.randn(param.shape) * 0.05)
    return adapted


def test_mixed_batch_of_three_methods_equals_each_row_alone(model: AdaptedModel) -> None:
    batch = load_tokenizer("minilm")(TEXTS, padding=True, return_tensors="pt")
    routes = ["ia3", "dora", None, "lora", "dora", "ia3"]
    with torch.no_grad():
        mixed = model(**batch, adapter=routes).last_hidden_state
        base = model(**batch, adapter=None).last_hidden_state
        for row, name in enumerate(routes):
            alone = model(**{k: v[row : row + 1] for k, v in batch.items()}, adapter=name)
            torch.testing.assert_close(
                mixed[row : row + 1], alone.last_hidden_state, rtol=1e-4, atol=1e-4
            )
            if name is not None:  # each adapter really changes its rows
                assert (mixed[row] - base[row]).abs().max() > 1e-2, name


def test_bf16_inference_of_a_mixed_batch_stays_close_to_fp32(model: AdaptedModel) -> None:
    from adapterkit.precision import inference_context

    batch = load_tokenizer("minilm")(TEXTS, padding=True, return_tensors="pt")
    routes = ["ia3", "dora", None, "lora", "dora", "ia3"]
    with torch.no_grad():
        exact = model(**batch, adapter=routes).last_hidden_state
        with inference_context("bf16", torch.device("cpu")):
            low = model(**batch, adapter=routes).last_hidden_state
    assert not torch.equal(low.float(), exact)  # it did compute in bf16
    similarity = torch.nn.functional.cosine_similarity(low.float(), exact, dim=-1)
    assert similarity.min() > 0.99, similarity.min()


@pytest.mark.parametrize("method", ["ia3", "dora"])
def test_merged_equals_unmerged_on_minilm(model: AdaptedModel, method: str) -> None:
    batch = load_tokenizer("minilm")(TEXTS, padding=True, return_tensors="pt")
    weights = {n: p.detach().clone() for n, p in model.base.named_parameters()}
    with torch.no_grad():
        unmerged = model(**batch, adapter=method).last_hidden_state
        model.merge_adapter(method)
        try:
            merged = model(**batch, adapter=method).last_hidden_state
        finally:
            model.unmerge_adapter(method)
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)
    for name, param in model.base.named_parameters():
        torch.testing.assert_close(param, weights[name], rtol=1e-6, atol=1e-6, msg=name)


def _mixed_equals_alone(
    adapted: AdaptedModel, batch: dict, routes: list, seed: int
) -> torch.Tensor:
    """Nudge every routed adapter away from its start, then check a mixed batch row by row
    against each row alone; returns the mixed batch's hidden states."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name in dict.fromkeys(r for r in routes if r is not None):
            for param in adapted.adapter_parameters(name).values():
                param.add_(torch.randn(param.shape) * 0.05)
        mixed = adapted(**batch, adapter=routes).last_hidden_state
        for row, name in enumerate(routes):
            alone = adapted(**{k: v[row : row + 1] for k, v in batch.items()}, adapter=name)
            torch.testing.assert_close(
                mixed[row : row + 1], alone.last_hidden_state, rtol=1e-4, atol=1e-4
            )
    return mixed


def test_bias_and_norm_tuning_route_per_row_and_merge_exactly_on_minilm() -> None:
    adapted = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    batch = load_tokenizer("minilm")(TEXTS[:4], padding=True, return_tensors="pt")
    adapted.add_adapter("bitfit", make_config("head", train_bias=True, train_norms=True))
    adapted.add_adapter("lora", make_config("lora", train_norms=True))
    _mixed_equals_alone(adapted, batch, ["bitfit", None, "lora", "bitfit"], seed=1)
    with torch.no_grad():
        unmerged = adapted(**batch, adapter="bitfit").last_hidden_state
        adapted.merge_adapter("bitfit")
        merged = adapted(**batch, adapter="bitfit").last_hidden_state
        adapted.unmerge_adapter("bitfit")
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)
    # MiniLM: 6 blocks x 6 biased linear layers, 6 x 2 norms + the embedding norm.
    tuned = [k for k in adapted.adapter_parameters("bitfit") if ".base_tuning." in k]
    assert len(tuned) == 6 * 6 + 13 * 2


def test_the_gated_mix_routes_per_row_beside_lora_and_round_trips_on_minilm(tmp_path) -> None:
    adapted = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    batch = load_tokenizer("minilm")(TEXTS[:4], padding=True, return_tensors="pt")
    adapted.add_adapter("mix", make_config("unipelt"))
    adapted.add_adapter("lora", make_config("lora"))
    mixed = _mixed_equals_alone(adapted, batch, ["mix", None, "lora", "mix"], seed=2)
    adapted.save_adapter("mix", tmp_path / "mix")
    fresh = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    fresh.load_adapter(tmp_path / "mix")
    with torch.no_grad():
        again = fresh(**batch, adapter="mix").last_hidden_state
    torch.testing.assert_close(again[:1], mixed[:1], rtol=1e-4, atol=1e-4)
