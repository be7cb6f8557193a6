"""Adding into the frozen layer's output in place: only when the host owns it, only where
autograd records nothing, and never under a module that reads the output afterwards."""

from __future__ import annotations

import pytest
import torch
from tests.tiny import METHODS, main_output, tiny_inputs, tiny_model

from adapterkit.errors import AdapterkitError
from adapterkit.methods import make_config
from adapterkit.methods.base import AdapterModule
from adapterkit.model import AdaptedModel


def _module(method: str) -> AdapterModule:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config(method))
    host = next(m for m in model.base.modules() if hasattr(m, "adapters"))
    module = host.adapters["a"]
    with torch.no_grad():
        for param in module.parameters():
            param.normal_(std=0.3)
    return module.eval()


@pytest.mark.parametrize("method", ["lora", "pfeiffer"])
def test_owned_output_is_written_in_place_only_without_autograd(method: str) -> None:
    module = _module(method)
    width = next(p for n, p in module.named_parameters() if "A" in n or "down" in n).shape[1]
    x = torch.randn(2, 3, width)
    base_out = torch.randn(2, 3, width)
    kept = base_out.clone()
    with torch.no_grad():
        expected = module(x, base_out, None)  # not owned: out of place
        torch.testing.assert_close(base_out, kept)
        written = module(x, base_out, None, owned=True)
    assert written.data_ptr() == base_out.data_ptr()
    torch.testing.assert_close(written, expected)
    base_out = kept.clone()
    trained = module(x, base_out, None, owned=True)  # autograd on: never in place
    torch.testing.assert_close(base_out, kept)
    torch.testing.assert_close(trained, expected)


def test_only_the_plain_classes_own_their_output() -> None:
    from adapterkit.methods.dora.layer import DoraAdapter
    from adapterkit.methods.unipelt.layer import GatedBottleneck, GatedLora

    assert _module("lora").owns_output and _module("pfeiffer").owns_output
    assert not any(cls.owns_output for cls in (DoraAdapter, GatedLora, GatedBottleneck))


@pytest.mark.parametrize("method", ["lora", "parallel", "unipelt", "mam"])
def test_inference_in_place_equals_training_mode_outputs(method: str) -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config(method))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.adapter_parameters("a").values():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.eval()
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        fast = main_output(model(**inputs, adapter="a"))
    recorded = main_output(model(**inputs, adapter="a"))  # grad on: out of place
    torch.testing.assert_close(fast, recorded.detach(), rtol=1e-5, atol=1e-5)


# One adapter, then a mixed batch of three (the batched per-row path).
ROUTES = ("a", ["a", "b", "c"])


def _three_adapters(method: str) -> AdaptedModel:
    """A tiny BERT in eval mode with adapters a, b and c of ``method``, moved off their
    identity start."""
    model = AdaptedModel(tiny_model("bert"))
    generator = torch.Generator().manual_seed(0)
    for name in ("a", "b", "c"):
        model.add_adapter(name, make_config(method))
        with torch.no_grad():
            for param in model.adapter_parameters(name).values():
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


@pytest.mark.parametrize("method", METHODS)
def test_bf16_autocast_inference_runs_and_stays_close_to_fp32(method: str) -> None:
    # In-place ops skip autocast: adding an fp32 weight's product into a bf16 output in
    # place failed ("self and mat2 must have the same dtype") for every owning method.
    model = _three_adapters(method)
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        for adapter in ROUTES:  # one adapter, and a mixed batch (batched rows)
            exact = main_output(model(**inputs, adapter=adapter))
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = main_output(model(**inputs, adapter=adapter))
            torch.testing.assert_close(low.float(), exact, rtol=0.1, atol=0.1)


@pytest.mark.parametrize("method", METHODS)
def test_a_base_stored_in_bf16_gives_autocast_outputs_without_casting_per_call(
    method: str,
) -> None:
    model = _three_adapters(method)
    inputs = tiny_inputs("bert")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = [main_output(model(**inputs, adapter=route)) for route in ROUTES]
        assert model.store_base_low(torch.bfloat16) > 0
        stored = [main_output(model(**inputs, adapter=route)) for route in ROUTES]
    # The same bits: autocast rounds the weights as storing them does. DoRA reads the base
    # weight itself (its column norms of W + BA), so there W + BA is summed in bf16: close.
    exact = {"rtol": 0.02, "atol": 1e-3} if method == "dora" else {"rtol": 0, "atol": 0}
    for got, want in zip(stored, autocast, strict=True):
        torch.testing.assert_close(got, want, **exact)
    assert all(p.dtype == torch.float32 for p in model.adapter_parameters("a").values())
    model.add_adapter("later", make_config(method))  # made in float32 beside the bf16 layers
    assert all(p.dtype == torch.float32 for p in model.adapter_parameters("later").values())
    with pytest.raises(AdapterkitError, match="cannot be merged into a base stored in"):
        model.merge_adapter("a")
    with torch.no_grad():  # no autocast opened by the caller: the model opens its own
        alone = [main_output(model(**inputs, adapter=route)) for route in ROUTES]
    for got, want in zip(alone, stored, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
