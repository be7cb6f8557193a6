"""The adapters' shared arithmetic (methods/projection.py): the bias added apart at a few
rows, and a few rows under CPU autocast computed in fp32."""

from __future__ import annotations

import pytest
import torch
from tests.tiny import assert_mixed_equals_rows_alone, tiny_inputs, tiny_model

from adapterkit.methods import make_config
from adapterkit.methods.bottleneck.layer import BottleneckAdapter
from adapterkit.methods.lora.layer import LoraAdapter
from adapterkit.methods.projection import (
    BIAS_COLUMN_FROM,
    FP32_ROWS_BELOW,
    add_projection,
    few_rows_in_fp32,
)
from adapterkit.model import AdaptedModel


@pytest.mark.parametrize("rows", [5, BIAS_COLUMN_FROM + 3])
@pytest.mark.parametrize("owned", [False, True])
def test_add_projection_with_a_bias_at_few_and_many_rows(rows: int, owned: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    base_out = torch.randn(1, rows, 12, generator=generator)
    hidden = torch.randn(1, rows, 4, generator=generator)
    weight = torch.randn(12, 4, generator=generator)
    bias = torch.randn(12, generator=generator)
    expected = base_out.double() + 0.5 * (hidden.double() @ weight.double().T + bias.double())
    with torch.no_grad():
        got = add_projection(base_out.clone(), hidden, weight, bias, 0.5, owned)
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-6)


def test_few_rows_in_fp32_only_for_cpu_autocast_inference_on_few_rows() -> None:
    few, many = torch.randn(1, FP32_ROWS_BELOW - 1, 8), torch.randn(2, FP32_ROWS_BELOW, 8)
    with torch.no_grad():
        assert not few_rows_in_fp32(few)  # no autocast: nothing to undo
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert few_rows_in_fp32(few)
            assert not few_rows_in_fp32(many)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not few_rows_in_fp32(few)  # autograd on: training keeps autocast's path


def _modules() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    lora = LoraAdapter(16, 16, r=4, scaling=2.0, dropout=0.1)
    bottleneck = BottleneckAdapter(16, 16, width=4)
    for module in (lora, bottleneck):
        with torch.no_grad():
            for param in module.parameters():
                param.normal_(std=0.5)
    return [lora.eval(), bottleneck.eval()]


@pytest.mark.parametrize("index", [0, 1], ids=["lora", "bottleneck"])
def test_a_few_rows_under_autocast_get_the_fp32_update(index: int) -> None:
    module = _modules()[index]
    x = torch.randn(2, 3, 16)
    base_out = torch.randn(2, 3, 16).to(torch.bfloat16)
    source = x if isinstance(module, LoraAdapter) else base_out.float()
    with torch.no_grad():
        exact = module(source, base_out.float(), None)  # fp32 throughout
        owned = base_out.clone()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert few_rows_in_fp32(x)
            low = module(x, owned, None, owned=True)
    assert low.dtype == torch.bfloat16 and low.data_ptr() == owned.data_ptr()  # in place
    # The update in fp32, rounded into the bf16 output: within one bf16 step of the fp32
    # result (bf16 weights alone would move the update by up to 2^-8 of each weight).
    step = 2.0**-7 * exact.abs().clamp(min=1.0)
    assert bool(((low.float() - exact).abs() <= step).all())


@pytest.mark.parametrize(
    ("method", "option", "values"),
    [("lora", "alpha", (8.0, 16.0, 32.0)), ("pfeiffer", "scaling", (0.5, 1.0, 2.0))],
)
def test_mixed_rows_with_different_scalings_equal_each_row_alone(
    method: str, option: str, values: tuple[float, ...]
) -> None:
    # Adapters of one config share their scaling (the matmul's alpha); these do not, so
    # each row's own scaling multiplies its hidden (the batched path, from 3 adapters).
    model = AdaptedModel(tiny_model("bert"))
    generator = torch.Generator().manual_seed(0)
    names = ("a", "b", "c")
    for name, value in zip(names, values, strict=True):
        model.add_adapter(name, make_config(method, **{option: value}))
        with torch.no_grad():
            for param in model.adapter_parameters(name).values():
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    model.eval()
    assert_mixed_equals_rows_alone(model, tiny_inputs("bert", batch=4), ["c", "a", None, "b"])
