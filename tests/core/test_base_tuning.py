"""Bias and norm tuning (--train-bias, --train-norms) beside any method, per adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.tiny import (
    ARCHS,
    FINISHED,
    assert_mixed_equals_rows_alone,
    main_output,
    save_tiny_bert,
    tiny_inputs,
    tiny_model,
)
from torch import nn

from adapterkit.cli import main
from adapterkit.errors import AdapterkitError
from adapterkit.heads import ClassificationHead
from adapterkit.methods import make_config
from adapterkit.methods.base_tuning import BaseTuning
from adapterkit.model import AdaptedModel
from adapterkit.train.options import RunOptions

NO_BIAS = ("llama", "t5")  # their linear layers have no bias


def _tuning(arch: str) -> dict[str, bool]:
    return {"train_bias": arch not in NO_BIAS, "train_norms": True}


def _randomise(model: AdaptedModel, name: str, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.adapter_parameters(name).values():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)


@pytest.mark.parametrize("arch", ARCHS)
def test_fresh_tuning_is_identity_and_trained_rows_equal_rows_alone(arch: str) -> None:
    base = tiny_model(arch)
    inputs = tiny_inputs(arch, batch=4)
    with torch.no_grad():
        reference = main_output(base(**inputs))
    model = AdaptedModel(base)
    model.add_adapter("A", make_config("lora", **_tuning(arch)))
    with torch.no_grad():
        assert (main_output(model(**inputs, adapter="A")) - reference).abs().max() <= 1e-6
    model.add_adapter("B", make_config("pfeiffer", reduction_factor=4, train_norms=True))
    model.add_adapter("C", make_config("ia3"))  # no tuning: its rows must not see the others'
    for seed, name in enumerate("ABC"):
        _randomise(model, name, seed)
    routes = ["A", None, "B", "C"]
    assert_mixed_equals_rows_alone(model, inputs, routes)
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=routes))
    assert (mixed[0] - reference[0]).abs().max() > 1e-3  # the tuning really acts


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["lora", "ia3", "dora", "head"])
def test_merge_folds_tuning_exactly_and_unmerge_restores_the_base(arch: str, method: str) -> None:
    model = AdaptedModel(tiny_model(arch))
    inputs = tiny_inputs(arch)
    model.add_adapter("a", make_config(method, **_tuning(arch)))
    _randomise(model, "a", 0)
    weights = {n: p.detach().clone() for n, p in model.base.named_parameters()}
    with torch.no_grad():
        unmerged = main_output(model(**inputs, adapter="a"))
        model.merge_adapter("a")
        merged = main_output(model(**inputs, adapter="a"))
        model.unmerge_adapter("a")
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)
    for name, param in model.base.named_parameters():
        torch.testing.assert_close(param, weights[name], rtol=1e-6, atol=1e-6, msg=name)


def test_only_the_adapters_tuning_trains_and_is_counted() -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config("lora", train_bias=True, train_norms=True))
    model.add_adapter("plain", make_config("lora"))
    tuned = [k for k in model.adapter_parameters("a") if ".base_tuning." in k]
    # tiny BERT: 2 blocks x (q, k, v, attn out, intermediate, output: 6 biases, 2 norms)
    # + the embedding norm: 12 bias shifts, 5 norms with scale and shift.
    assert len(tuned) == 12 + 5 * 2
    assert not any(".base_tuning." in k for k in model.adapter_parameters("plain"))
    with_tuning = model.parameter_report("a")
    without = model.parameter_report("plain")
    extra = sum(p.numel() for k, p in model.adapter_parameters("a").items() if k in tuned)
    assert with_tuning.trainable - without.trainable == extra
    assert with_tuning.total - without.total == extra  # the base total is not inflated

    model.train_adapter("a")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".base_tuning.a." in n for n in trainable)
    assert all(".a." in n or ".base_tuning.a." in n for n in trainable)


def test_bundle_round_trip_keeps_the_tuning(tmp_path: Path) -> None:
    inputs = tiny_inputs("bert")
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter(
        "a", make_config("head", train_bias=True, train_norms=True), head=ClassificationHead(32, 3)
    )
    _randomise(model, "a", 1)
    with torch.no_grad():
        expected = main_output(model(**inputs, adapter="a"))
    model.save_adapter("a", tmp_path / "bundle")
    fresh = AdaptedModel(tiny_model("bert"))
    fresh.load_adapter(tmp_path / "bundle")
    with torch.no_grad():
        torch.testing.assert_close(main_output(fresh(**inputs, adapter="a")), expected)
    fresh.delete_adapter("a")  # unwraps every norm and linear layer again
    assert not any("base_layer" in n for n, _ in fresh.base.named_modules())


def test_bias_tuning_on_a_base_without_biases_is_refused() -> None:
    model = AdaptedModel(tiny_model("llama"))
    with pytest.raises(AdapterkitError, match="--train-bias: this base has no bias"):
        model.add_adapter("a", make_config("lora", train_bias=True))
    assert not any("base_layer" in n for n, _ in model.base.named_modules())  # nothing left


def test_full_fine_tuning_refuses_the_tuning_options() -> None:
    with pytest.raises(AdapterkitError, match="full fine-tuning already trains"):
        RunOptions(method="full", method_options={"train_bias": True})


class OnePlusWeightNorm(nn.Module):
    """An RMSNorm that scales by ``1 + weight`` (as Gemma's does)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1 + self.weight)


def test_a_norm_that_does_not_scale_by_its_weight_refuses_to_merge() -> None:
    norm = OnePlusWeightNorm(8)
    tuning = BaseTuning(norm)
    with torch.no_grad():
        tuning.scale.fill_(0.5)
    before = norm.weight.detach().clone()
    with pytest.raises(AdapterkitError, match="cannot be merged into a OnePlusWeightNorm"):
        tuning.merge_into(norm)
    assert torch.equal(norm.weight, before)


def test_cli_bitfit_trains_biases_beside_the_head(tmp_path: Path) -> None:
    from tests.cli.test_cli_train import FILLER, TOPICS, _csv, _rows

    save_tiny_bert(tmp_path / "model", [w for ws in TOPICS.values() for w in ws] + FILLER)
    args = ["train", "--model", str(tmp_path / "model"), "--max-length", "32"]
    for split, seed in (("train", 1), ("validation", 2), ("test", 3)):
        args += [f"--{split}", str(_csv(tmp_path / f"{split}.csv", _rows(60, seed)))]
    out = tmp_path / "run"
    code = main([*args, "--output", str(out), "--method", "head", "--train-bias", "--epochs", "1"])
    assert code in FINISHED
    record = json.loads((out / "adapter" / "adapterkit.json").read_text())
    assert record["config"]["train_bias"] is True and record["config"]["train_norms"] is False
    from safetensors.torch import load_file

    keys = load_file(out / "adapter" / "adapterkit.safetensors")
    assert sum(".base_tuning.shift" in k for k in keys) == 12
    assert main(["predict", str(out / "adapter"), "goal team ball"]) == 0


def test_peft_export_and_compose_refuse_tuned_bundles_and_merged_export_keeps_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from adapterkit.models import load_base

    model_dir = save_tiny_bert(tmp_path / "model", ["ball", "goal", "soup"])
    inputs = tiny_inputs("bert")
    model = AdaptedModel(load_base(str(model_dir)), name_or_path=str(model_dir))
    for name, tuned in (("tuned", True), ("plain", False)):
        model.add_adapter(
            name,
            make_config("lora", train_bias=tuned, train_norms=tuned),
            head=ClassificationHead(32, 2, pooling="cls"),
            task={"type": "sequence-classification", "labels": ["x", "y"], "max_length": 16},
        )
        _randomise(model, name, 3)
        model.save_adapter(name, tmp_path / name)
    with torch.no_grad():
        expected = main_output(model(**inputs, adapter="tuned"))
    capsys.readouterr()

    assert main(["export", str(tmp_path / "tuned"), "--out", str(tmp_path / "peft")]) == 2
    assert "cannot hold this bundle's per-adapter bias and norm changes" in capsys.readouterr().err
    assert not (tmp_path / "peft").exists()
    compose = ["compose", str(tmp_path / "plain"), str(tmp_path / "tuned"), "--mode", "average"]
    assert main([*compose, "--out", str(tmp_path / "avg")]) == 2
    assert "bundle 2" in capsys.readouterr().err and not (tmp_path / "avg").exists()

    out = tmp_path / "merged"
    assert main(["export", str(tmp_path / "tuned"), "--format", "merged", "--out", str(out)]) == 0
    with torch.no_grad():
        got = main_output(load_base(str(out))(**inputs))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
