"""AdaLoRA's module and config on a tiny BERT: merging, mixed batches beside other methods,
dropping masked ranks, the bundle round trip with reduced ranks, and bad options."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tests.tiny import assert_mixed_equals_rows_alone, main_output, tiny_inputs, tiny_model

from adapterkit.errors import AdapterkitError
from adapterkit.methods import make_config
from adapterkit.methods.adalora import AdaLoraAdapter, AdaLoraConfig
from adapterkit.model import AdaptedModel
from adapterkit.train.job import adapter_modules


def _randomise(model: AdaptedModel, name: str, seed: int = 0) -> None:
    """Non-zero λ, P and Q (a fresh adapter is the identity), masks of 0 and 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in adapter_modules(model, name).values():
            for param in (module.lora_A, module.lora_E, module.lora_B):
                param.add_(torch.randn(param.shape, generator=generator) * 0.3)
            module.rank_mask.copy_((torch.rand(module.rank, generator=generator) < 0.6).float())


def _adalora_model(seed: int = 0, **options) -> AdaptedModel:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("ada", make_config("adalora", **{"r": 4, "target_r": 2, **options}))
    _randomise(model, "ada", seed)
    return model


def test_masked_ranks_change_nothing_and_dropping_them_is_exact() -> None:
    torch.manual_seed(0)
    module = AdaLoraAdapter(8, 6, 4, 1.5, 0.0)
    with torch.no_grad():
        module.lora_E.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
        module.rank_mask.copy_(torch.tensor([1.0, 0.0, 1.0, 0.0]))
    x, base = torch.randn(2, 3, 8), torch.randn(2, 3, 6)
    before = module(x, base, None)
    # The masked ranks' λ are not zero, yet do nothing.
    expected = (
        base
        + 1.5
        * x
        @ (module.lora_B[:, [0, 2]] @ (module.lora_E[[0, 2], None] * module.lora_A[[0, 2]])).T
    )
    torch.testing.assert_close(before, expected)
    module.keep_ranks(module.rank_mask > 0)
    assert module.rank == 2 and module.lora_A.shape == (2, 8) and module.lora_B.shape == (6, 2)
    assert module.rank_mask.tolist() == [1.0, 1.0] and not module.rank_mask.requires_grad
    assert module.lora_A.requires_grad and set(module.trainable_parameters()) == {
        "lora_A",
        "lora_E",
        "lora_B",
    }
    torch.testing.assert_close(module(x, base, None), before)


def test_merge_then_unmerge_is_exact() -> None:
    model = _adalora_model()
    inputs = tiny_inputs("bert")
    weights = {n: p.detach().clone() for n, p in model.base.named_parameters()}
    with torch.no_grad():
        unmerged = main_output(model(**inputs, adapter="ada"))
        base = main_output(model(**inputs, adapter=None))
        model.merge_adapter("ada")
        merged = main_output(model(**inputs, adapter="ada"))
        model.unmerge_adapter("ada")
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)
    assert (unmerged - base).abs().max() > 1e-3  # the adapter really acts
    for name, param in model.base.named_parameters():  # to float rounding (merged in float64)
        torch.testing.assert_close(param, weights[name], rtol=1e-6, atol=1e-7, msg=name)


def test_mixed_batch_with_other_methods_equals_rows_alone() -> None:
    model = _adalora_model()
    for name, method in (("lora", "lora"), ("ia3", "ia3"), ("houlsby", "houlsby")):
        model.add_adapter(name, make_config(method))
        with torch.no_grad():
            for param in model.adapter_parameters(name).values():
                param.add_(torch.randn(param.shape) * 0.1)
    adapter_modules(model, "ada")["encoder.layer.0.output.dense"].keep_ranks(
        torch.tensor([True, False, True, False])  # one layer already smaller
    )
    routes = ["ada", "lora", None, "ia3", "ada", "houlsby"]
    assert_mixed_equals_rows_alone(model, tiny_inputs("bert", batch=6), routes)


def test_bundle_keeps_only_the_kept_ranks_and_loads_back_equal(tmp_path) -> None:
    model = _adalora_model()
    modules = adapter_modules(model, "ada")
    kept = {name: int(m.rank_mask.sum()) for name, m in modules.items()}
    config = model.configs["ada"]
    allocator = config.training_controller(modules, total_steps=10)
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        before = main_output(model(**inputs, adapter="ada"))
    line = allocator.finish()
    assert f"final ranks {sum(kept.values())} in all over 10 layers" in line
    assert config.rank_pattern == kept
    path = model.save_adapter("ada", tmp_path / "bundle")

    record = json.loads((path / "adapterkit.json").read_text())
    assert record["config"]["rank_pattern"] == kept
    tensors = load_file(path / "adapterkit.safetensors")
    for layer, rank in kept.items():
        assert tensors[f"adapter.{layer}.lora_A"].shape[0] == rank
        assert tensors[f"adapter.{layer}.lora_B"].shape[1] == rank
        assert tensors[f"adapter.{layer}.lora_E"].shape == (rank,)

    fresh = AdaptedModel(tiny_model("bert"))
    fresh.load_adapter(path)
    loaded = adapter_modules(fresh, "ada")
    assert {name: m.rank for name, m in loaded.items()} == kept
    with torch.no_grad():
        after = main_output(fresh(**inputs, adapter="ada"))
    torch.testing.assert_close(after, before, rtol=1e-6, atol=1e-6)

    # A rank for a layer the adapter does not adapt: the file is not its weights' own.
    record["config"]["rank_pattern"]["encoder.layer.7.output.dense"] = 2
    (path / "adapterkit.json").write_text(json.dumps(record))
    with pytest.raises(AdapterkitError, match=r"rank_pattern names 1 layer.* 'encoder\.layer\.7"):
        AdaptedModel(tiny_model("bert")).load_adapter(path)


def test_a_layer_left_at_rank_zero_saves_and_serves(tmp_path) -> None:
    model = _adalora_model()
    modules = adapter_modules(model, "ada")
    with torch.no_grad():
        modules["encoder.layer.1.attention.self.query"].rank_mask.zero_()
    model.configs["ada"].training_controller(modules, 10).finish()
    path = model.save_adapter("ada", tmp_path / "bundle")
    fresh = AdaptedModel(tiny_model("bert"))
    fresh.load_adapter(path)
    assert adapter_modules(fresh, "ada")["encoder.layer.1.attention.self.query"].rank == 0
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        torch.testing.assert_close(
            main_output(fresh(**inputs, adapter="ada")),
            main_output(model(**inputs, adapter="ada")),
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"r": 4, "target_r": 8}, "adalora: --target-rank 8 is above the initial --rank 4"),
        (
            {"rank_warmup": 0.6, "rank_final": 0.5},
            "adalora: --rank-warmup 0.6 plus --rank-final 0.5",
        ),
        (
            {"r": 4, "target_r": 2, "rank_pattern": {"x": 5}},
            "adalora: rank_pattern gives layer 'x' rank 5",
        ),
        ({"importance_beta1": 1.0}, "adalora: importance_beta1"),
        ({"target_r": 0}, "adalora: target_r"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(options: dict, message: str) -> None:
    with pytest.raises(AdapterkitError) as caught:
        make_config("adalora", **options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_rank_pattern_without_a_layer_is_refused() -> None:
    config = AdaLoraConfig(r=4, target_r=2, rank_pattern={"encoder.layer.0.output.dense": 2})
    model = AdaptedModel(tiny_model("bert"))
    with pytest.raises(AdapterkitError, match="rank_pattern names no rank for layer"):
        model.add_adapter("ada", config)
    assert "ada" not in model.adapter_names
