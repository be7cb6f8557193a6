"""The CPU dropout from packed random draws: its keep rate, scaling and gradient, its
determinism per seed, and where it steps aside for torch's own."""

from __future__ import annotations

import pytest
import torch
from tests.tiny import tiny_inputs, tiny_model
from torch import nn

from adapterkit.train.fast_dropout import FastDropout, keep_mask, use_fast_dropout


def test_every_lane_of_a_draw_keeps_one_minus_p() -> None:
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([400_000]), 0.1)
    # Four elements come from each 64-bit draw: each of the four lanes must keep 90 %
    # (torch's random_() without a range leaves one lane's sign bit at 0: 100 % kept).
    lanes = mask.view(-1, 4).float().mean(dim=0)
    assert torch.all((lanes - 0.9).abs() < 0.004), lanes
    assert abs(keep_mask(torch.Size([400_000]), 0.5).float().mean().item() - 0.5) < 0.004


def test_kept_elements_are_scaled_and_the_gradient_follows_the_mask() -> None:
    layer = FastDropout(0.25).train()
    x = torch.randn(8, 16, 32, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.75)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.75)


def test_the_same_seed_drops_the_same_elements_and_another_seed_others() -> None:
    layer = FastDropout(0.1).train()
    x = torch.ones(4, 64, 32)
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), first)
    torch.manual_seed(4)
    assert not torch.equal(layer(x), first)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_evaluation_and_the_edge_probabilities_are_torchs(p: float) -> None:
    x = torch.randn(4, 8)
    assert torch.equal(FastDropout(0.3).eval()(x), x)
    assert torch.equal(FastDropout(p).train()(x), nn.Dropout(p).train()(x))


def test_every_plain_dropout_of_a_model_is_replaced_and_eval_outputs_do_not_move() -> None:
    model = tiny_model("bert").eval()
    inputs = tiny_inputs("bert")
    before = model(**inputs).last_hidden_state
    count = sum(type(m) is nn.Dropout for m in model.modules())
    assert count > 0 and use_fast_dropout(model) == count
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert all(not m.training for m in model.modules() if isinstance(m, FastDropout))
    assert torch.equal(model(**inputs).last_hidden_state, before)
