"""LoRA merge/unmerge is exact, and merged weights refuse other routes."""

from __future__ import annotations

import pytest
import torch
from tests.tiny import ARCHS, main_output, tiny_inputs, tiny_model

from adapterkit.errors import AdapterkitError
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel


@pytest.mark.parametrize("use_rslora", [False, True])
@pytest.mark.parametrize("arch", ARCHS)
def test_merged_lora_equals_unmerged(arch: str, use_rslora: bool) -> None:
    model = AdaptedModel(tiny_model(arch))
    model.add_adapter("a", make_config("lora", r=4, alpha=8, use_rslora=use_rslora))
    with torch.no_grad():
        for param in model.adapter_parameters("a").values():
            param.normal_(std=0.2)
    original = {
        n: p.detach().clone() for n, p in model.base.named_parameters() if ".adapters." not in n
    }
    inputs = tiny_inputs(arch)
    with torch.no_grad():
        unmerged = main_output(model(**inputs, adapter="a"))
        base_only = main_output(model(**inputs, adapter=None))
        model.merge_adapter("a")
        merged = main_output(model(**inputs, adapter="a"))
        with pytest.raises(AdapterkitError, match="merged"):
            model(**inputs, adapter=None)
        model.unmerge_adapter("a")
        after = main_output(model(**inputs, adapter=None))
    assert (unmerged - base_only).abs().max() > 1e-3  # the LoRA really changes outputs
    # float32 rounding of W + s·BA versus W x + s·B(A x), through every adapted layer
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=3e-5)
    # Unmerge subtracts the update again (in float64), so weights come back to within rounding.
    for name, param in model.base.named_parameters():
        if ".adapters." not in name:
            torch.testing.assert_close(param, original[name], rtol=1e-6, atol=1e-7, msg=name)
    torch.testing.assert_close(after, base_only, rtol=1e-5, atol=3e-5)


def test_bottleneck_cannot_merge() -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config("pfeiffer"))
    with pytest.raises(AdapterkitError, match="cannot be merged"):
        model.merge_adapter("a")


@pytest.mark.parametrize("method", ["ia3", "dora"])
@pytest.mark.parametrize("arch", ARCHS)
def test_scaling_methods_merge_and_unmerge_exactly(arch: str, method: str) -> None:
    """IA3 (output and input scaling, biases included) and DoRA (per-row gain) fold into the
    frozen weights and come back out again."""
    model = AdaptedModel(tiny_model(arch))
    model.add_adapter("a", make_config(method))
    with torch.no_grad():  # move away from the identity start, keeping scales away from 0
        for param in model.adapter_parameters("a").values():
            param.add_(torch.randn(param.shape) * 0.2)
    original = {
        n: p.detach().clone() for n, p in model.base.named_parameters() if ".adapters." not in n
    }
    inputs = tiny_inputs(arch)
    with torch.no_grad():
        unmerged = main_output(model(**inputs, adapter="a"))
        base_only = main_output(model(**inputs, adapter=None))
        model.merge_adapter("a")
        merged = main_output(model(**inputs, adapter="a"))
        outside = main_output(model.base(**inputs))  # a plain call: the merged weights alone
        model.unmerge_adapter("a")
        after = main_output(model(**inputs, adapter=None))
    assert (unmerged - base_only).abs().max() > 1e-3
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=3e-5)
    torch.testing.assert_close(outside, unmerged, rtol=1e-5, atol=3e-5)
    for name, param in model.base.named_parameters():
        if ".adapters." not in name:
            torch.testing.assert_close(param, original[name], rtol=1e-6, atol=1e-7, msg=name)
    torch.testing.assert_close(after, base_only, rtol=1e-5, atol=3e-5)


def test_ia3_with_a_zero_scale_refuses_to_merge() -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config("ia3"))
    with torch.no_grad():
        list(model.adapter_parameters("a").values())[-1][0] = 0.0  # the last layer's vector
    before = {n: p.detach().clone() for n, p in model.base.named_parameters()}
    with pytest.raises(AdapterkitError, match="cannot be merged"):
        model.merge_adapter("a")
    # The layers merged before the refusal were unmerged again: no half-merged model.
    for name, param in model.base.named_parameters():
        torch.testing.assert_close(param, before[name], rtol=1e-6, atol=1e-7, msg=name)
    assert all(host.merged is None for host in model.base.modules() if hasattr(host, "merged"))
