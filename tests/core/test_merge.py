"""LoRA, DoRA and IA3 merge/unmerge exactly, and merged weights refuse other routes."""

from __future__ import annotations

import pytest
import torch
from tests.tiny import ARCHS, main_output, tiny_inputs, tiny_model

from adapterkit.errors import AdapterkitError
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel

MERGEABLE = {
    "lora": ("lora", {"r": 4, "alpha": 8}),
    "rslora": ("lora", {"r": 4, "alpha": 8, "use_rslora": True}),
    "ia3": ("ia3", {}),  # output and input scaling, biases included
    "dora": ("dora", {"r": 4}),  # a per-row gain that depends on the merged weight
}


@pytest.mark.parametrize("kind", list(MERGEABLE))
@pytest.mark.parametrize("arch", ARCHS)
def test_merged_equals_unmerged_and_unmerge_restores_the_weights(arch: str, kind: str) -> None:
    method, options = MERGEABLE[kind]
    model = AdaptedModel(tiny_model(arch))
    model.add_adapter("a", make_config(method, **options))
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
        with pytest.raises(AdapterkitError, match="merged"):
            model(**inputs, adapter=None)
        model.unmerge_adapter("a")
        after = main_output(model(**inputs, adapter=None))
    assert (unmerged - base_only).abs().max() > 1e-3  # the adapter really changes outputs
    # float32 rounding of the merged weight versus the adapter's own path, in every layer
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=3e-5)
    torch.testing.assert_close(outside, unmerged, rtol=1e-5, atol=3e-5)
    # Unmerge works in float64, so weights come back to within rounding.
    for name, param in model.base.named_parameters():
        if ".adapters." not in name:
            torch.testing.assert_close(param, original[name], rtol=1e-6, atol=1e-7, msg=name)
    torch.testing.assert_close(after, base_only, rtol=1e-5, atol=3e-5)


def test_bottleneck_cannot_merge() -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config("pfeiffer"))
    with pytest.raises(AdapterkitError, match="cannot be merged"):
        model.merge_adapter("a")


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
