"""Prefix tuning on every architecture of the matrix: per-row routing beside LoRA, the KV
cache, bundles (folded reparameterisation), eager attention, and the refusals."""

from __future__ import annotations

import pytest
import torch
from tests.tiny import ARCHS, assert_row_matches, main_output, tiny_inputs, tiny_model
from torch import nn

from adapterkit.errors import AdapterkitError
from adapterkit.heads import ClassificationHead
from adapterkit.methods import make_config
from adapterkit.methods.prefix import PrefixAdapter
from adapterkit.model import AdaptedModel


def _rows(inputs: dict[str, torch.Tensor], row: int) -> dict[str, torch.Tensor]:
    return {k: v[row : row + 1] for k, v in inputs.items()}


def _mixed_model(arch: str) -> AdaptedModel:
    """Two prefixes of different lengths (one reparameterised, one not) and a LoRA."""
    model = AdaptedModel(tiny_model(arch))
    model.add_adapter("A", make_config("prefix", prefix_length=4))
    model.add_adapter("B", make_config("prefix", prefix_length=6, prefix_projection=0))
    model.add_adapter("L", make_config("lora"))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a LoRA that acts (B starts at zero)
        for param in model.adapter_parameters("L").values():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return model


@pytest.mark.parametrize("arch", ARCHS)
def test_mixed_batch_with_lora_equals_rows_alone(arch: str) -> None:
    model = _mixed_model(arch)
    inputs = tiny_inputs(arch, batch=5)
    routes = ["A", None, "B", "L", "A"]
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=routes))
        base = main_output(model(**inputs, adapter=None))
        for row, name in enumerate(routes):
            alone = main_output(model(**_rows(inputs, row), adapter=name))
            assert_row_matches(mixed[row : row + 1], alone)
    assert torch.isfinite(mixed).all()
    for row, name in enumerate(routes):  # prefixes act on their rows; the base row is the base
        changed = (mixed[row] - base[row]).abs().max().item()
        assert changed > 1e-3 if name else changed <= 1e-5, (row, name, changed)


@pytest.mark.parametrize("arch", ARCHS)
def test_fresh_prefix_acts_only_inside_attention(arch: str) -> None:
    model = AdaptedModel(tiny_model(arch))
    targets = model.add_adapter("A", make_config("prefix", prefix_length=3))
    inputs = tiny_inputs(arch)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    host = model.base.get_submodule(targets[0])
    hook = host.register_forward_hook(
        lambda m, args, out: seen.append((m.base_layer(args[0]), out))
    )
    with torch.no_grad():
        out = main_output(model(**inputs, adapter="A"))
        base = main_output(model(**inputs, adapter=None))
    hook.remove()
    assert seen and all(torch.equal(plain, hosted) for plain, hosted in seen)  # layer unchanged
    assert torch.isfinite(out).all() and (out - base).abs().max() > 1e-3


def test_fully_masked_row_stays_finite() -> None:
    model = _mixed_model("bert")
    inputs = tiny_inputs("bert", batch=3)
    inputs["attention_mask"][1] = 0  # a row of padding only
    with torch.no_grad():
        plain = model(**inputs, adapter=None).last_hidden_state
        for routes in (["A", None, "B"], ["A", "A", "B"], "A"):
            out = model(**inputs, adapter=routes).last_hidden_state
            # the padding-only row behaves as it does without prefixes (where that is finite)
            assert torch.isfinite(out[[0, 2]]).all(), routes
            if (routes if isinstance(routes, str) else routes[1]) is None:
                torch.testing.assert_close(out[1], plain[1], equal_nan=True)
            else:
                assert torch.isfinite(out[1]).all()  # it sees its prefix


@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5"])
def test_generation_with_cache_equals_without_and_rows_alone(arch: str) -> None:
    model = _mixed_model(arch)
    inputs = tiny_inputs(arch, batch=4)
    inputs.pop("decoder_input_ids", None)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    padded = 2 if arch != "t5" else 0  # decoders: row 2 left-padded, as generation batches are
    inputs["attention_mask"][2, :padded] = 0
    routes = ["A", None, "B", "L"]
    settings = {"max_new_tokens": 5, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        cached = model.generate(**inputs, adapter=routes, use_cache=True, **settings)
        uncached = model.generate(**inputs, adapter=routes, use_cache=False, **settings)
        assert torch.equal(cached, uncached)
        for row, name in enumerate(routes):
            start = padded if row == 2 else 0
            alone = model.generate(
                **{k: v[row : row + 1, start:] for k, v in inputs.items()}, adapter=name, **settings
            )
            assert torch.equal(cached[row : row + 1, start:], alone), (row, name)
        scored = {**settings, "max_new_tokens": 1, "output_scores": True}
        scored["return_dict_in_generate"] = True
        with_prefix = model.generate(**_rows(inputs, 0), adapter="A", **scored).scores[0]
        without = model.generate(**_rows(inputs, 0), adapter=None, **scored).scores[0]
    assert (with_prefix - without).abs().max() > 1e-3  # the prefix changes the next token's scores


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama", "t5"])
def test_eager_attention_too(arch: str) -> None:
    base = tiny_model(arch)
    base.set_attn_implementation("eager")
    model = AdaptedModel(base)
    model.add_adapter("A", make_config("prefix", prefix_length=4))
    model.add_adapter("B", make_config("prefix", prefix_length=2))
    inputs = tiny_inputs(arch, batch=3)
    routes = ["A", None, "B"]
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=routes))
        for row, name in enumerate(routes):
            alone = main_output(model(**_rows(inputs, row), adapter=name))
            assert_row_matches(mixed[row : row + 1], alone)
        sdpa = AdaptedModel(tiny_model(arch))
        sdpa.add_adapter("A", make_config("prefix", prefix_length=4))
        sdpa.load_state_dict(model.state_dict(), strict=False)
        torch.testing.assert_close(
            main_output(sdpa(**_rows(inputs, 0), adapter="A")), mixed[:1], rtol=1e-5, atol=1e-5
        )


def test_training_moves_only_the_prefix_and_head() -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("A", make_config("prefix", prefix_length=4), head=ClassificationHead(32, 3))
    model.add_adapter("other", make_config("prefix"))
    model.train_adapter("A")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".mlp." in n for n in trainable)  # the reparameterisation trains
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    inputs = tiny_inputs("bert")
    for _ in range(2):
        hidden = model(**inputs, adapter="A").last_hidden_state
        loss = model.head_logits("A", hidden, inputs["attention_mask"]).logsumexp(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable


def test_folded_bundle_round_trip_with_head(tmp_path) -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("A", make_config("prefix", prefix_length=5), head=ClassificationHead(32, 3))
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        hidden = model(**inputs, adapter="A").last_hidden_state
        logits = model.head_logits("A", hidden, inputs["attention_mask"])
    path = model.save_adapter("A", tmp_path / "a")

    fresh = AdaptedModel(tiny_model("bert"))
    name = fresh.load_adapter(path)
    assert fresh.configs[name].prefix_projection == 0  # served without the MLP
    assert not any(".mlp." in key for key in fresh.adapter_parameters(name))
    modules = [m for m in fresh.base.modules() if isinstance(m, PrefixAdapter)]
    assert modules and all(set(m.parts) <= {"key", "value"} for m in modules)
    with torch.no_grad():
        hidden_again = fresh(**inputs, adapter=name).last_hidden_state
        logits_again = fresh.head_logits(name, hidden_again, inputs["attention_mask"])
    torch.testing.assert_close(hidden_again, hidden, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits_again, logits, rtol=1e-5, atol=1e-5)
    # A checkpoint (resumable) keeps the MLP; the bundle is smaller than the trained form.
    record, tensors = model.bundle_contents("A")
    assert record["config"]["prefix_projection"] == 128 and any(".mlp." in k for k in tensors)
    # And it serves beside another adapter in one mixed batch.
    fresh.add_adapter("L", make_config("lora"))
    with torch.no_grad():
        mixed = fresh(**inputs, adapter=[name, "L", name]).last_hidden_state
    torch.testing.assert_close(mixed[[0, 2]], hidden[[0, 2]], rtol=1e-5, atol=1e-5)


def test_a_target_that_is_no_key_or_value_projection_is_refused() -> None:
    model = AdaptedModel(tiny_model("bert"))
    with pytest.raises(AdapterkitError, match=r"^prefix: --target-modules: .*query"):
        model.add_adapter("A", make_config("prefix", target_modules=["query", "key"]))
    with pytest.raises(AdapterkitError, match=r"^prefix: --target-modules: .*key only"):
        model.add_adapter("A", make_config("prefix", target_modules=["attention.self.key"]))
    assert model.adapter_names == []
    assert not any(hasattr(m, "routed_adapters") for m in model.base.modules())  # no host left


class _HandAttention(nn.Module):
    """Attention written out by hand: no transformers attention interface to reach."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.q(x) @ self.k(x).transpose(1, 2)
        return scores.softmax(-1) @ self.v(x)


def test_attention_it_cannot_reach_is_refused() -> None:
    base = nn.Sequential(_HandAttention())
    model = AdaptedModel(base)
    with pytest.raises(AdapterkitError, match=r"prefix: .*attention interface.*--method"):
        model.add_adapter("A", make_config("prefix", target_modules=["k", "v"]))
    assert isinstance(base[0].k, nn.Linear)  # nothing was wrapped


def test_an_attention_implementation_it_cannot_reach_is_refused() -> None:
    base = tiny_model("bert")
    base.config._attn_implementation_internal = "flex_attention"
    with pytest.raises(AdapterkitError, match=r"prefix: .*'flex_attention'.*sdpa"):
        AdaptedModel(base).add_adapter("A", make_config("prefix"))


def test_activation_checkpointing_keeps_each_rows_prefix() -> None:
    from adapterkit.checkpointing import enable_activation_checkpointing

    grads = []
    for checkpointed in (False, True):
        model = _mixed_model("llama")  # llama: no dropout, so both passes compute the same
        if checkpointed:
            enable_activation_checkpointing(model.base)
        model.train()
        model.train_adapter("A")
        out = model(**tiny_inputs("llama", batch=3), adapter=["A", "B", "A"])
        out.logits.pow(2).mean().backward()
        grads.append({k: p.grad for k, p in model.adapter_parameters("A").items()})
    assert grads[0] and all(g is not None for g in grads[0].values())
    for key, grad in grads[0].items():
        torch.testing.assert_close(grads[1][key], grad, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("arch", ["bert", "gpt2", "t5"])
def test_a_rows_gradients_reach_only_its_own_prefix(arch: str) -> None:
    """Packed training: each job's gradients are those of its rows alone."""
    model = _mixed_model(arch)
    model.train_adapter("A")
    for param in model.adapter_parameters("B").values():
        param.requires_grad_(True)
    inputs = tiny_inputs(arch, batch=4)
    routes = ["A", "B", "A", None]
    out = main_output(model(**inputs, adapter=routes))
    out[[0, 2]].pow(2).mean().backward()  # A's rows only
    mixed = {k: p.grad.clone() for k, p in model.adapter_parameters("A").items()}
    assert all(p.grad is None or not p.grad.any() for p in model.adapter_parameters("B").values())
    model.zero_grad()
    alone = main_output(model(**{k: v[[0, 2]] for k, v in inputs.items()}, adapter="A"))
    alone.pow(2).mean().backward()
    for key, grad in mixed.items():
        torch.testing.assert_close(
            model.adapter_parameters("A")[key].grad, grad, rtol=1e-4, atol=1e-6
        )


def test_gpt2s_own_eager_path_is_refused() -> None:
    base = tiny_model("gpt2")
    base.set_attn_implementation("eager")
    for module in base.modules():
        if hasattr(module, "reorder_and_upcast_attn"):
            module.reorder_and_upcast_attn = True  # computes attention itself, unreachable
    with pytest.raises(AdapterkitError, match=r"^prefix: .*'eager' with reorder_and_upcast_attn"):
        AdaptedModel(base).add_adapter("A", make_config("prefix"))


@pytest.mark.parametrize("arch", ["bert", "llama", "t5"])
def test_mixed_with_prompt_tuning_equals_rows_alone(arch: str) -> None:
    """Prompt tuning lengthens the input; the prefix still lines up with each row's mask."""
    model = _mixed_model(arch)
    model.add_adapter("T", make_config("prompt", num_virtual_tokens=3))
    inputs = tiny_inputs(arch, batch=4)
    routes = ["T", "A", None, "B"]
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=routes))
        for row, name in enumerate(routes):
            alone = main_output(model(**_rows(inputs, row), adapter=name))
            assert_row_matches(mixed[row : row + 1], alone)
