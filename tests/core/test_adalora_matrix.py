"""AdaLoRA's own row-batched path on every architecture: adapters of different ranks, their
factors padded to the widest rank, agree with each row alone (the method matrix,
tests/core/test_methods_matrix.py, covers the rest)."""

from __future__ import annotations

import pytest
import torch
from tests.core import test_methods_matrix as matrix
from tests.tiny import ARCHS, assert_row_matches, main_output, tiny_inputs, tiny_model

from adapterkit.methods import make_config
from adapterkit.methods.adalora import AdaLoraAdapter
from adapterkit.model import AdaptedModel


@pytest.mark.parametrize("arch", ARCHS)
def test_row_batched_adaloras_of_different_ranks_equal_rows_alone(
    arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = AdaptedModel(tiny_model(arch))
    names = ["A", "B", "C", "D"]
    for rank, name in zip((4, 2, 3, 1), names, strict=True):
        model.add_adapter(name, make_config("adalora", r=rank, target_r=1))
        matrix._randomise_adapter(model, name)
    with torch.no_grad():  # masks of 0/1, one layer of B at rank 0
        for host in (m for m in model.base.modules() if hasattr(m, "adapters")):
            for name in names:
                module = host.adapters[name]
                module.rank_mask.copy_((torch.arange(module.rank) % 2 == 0).float())
        first = next(m for m in model.base.modules() if hasattr(m, "adapters"))
        first.adapters["B"].keep_ranks(torch.zeros(2, dtype=torch.bool))
    calls = []
    original = AdaLoraAdapter.forward_rows.__func__

    def spy(cls, *args, **kwargs):
        calls.append(result := original(cls, *args, **kwargs))
        return result

    monkeypatch.setattr(AdaLoraAdapter, "forward_rows", classmethod(spy))
    inputs = tiny_inputs(arch, batch=6)
    routes = ["C", "A", None, "D", "B", "A"]
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=routes))
        assert calls and all(result is not None for result in calls)  # the batched path ran
        for row, name in enumerate(routes):
            alone = main_output(
                model(**{k: v[row : row + 1] for k, v in inputs.items()}, adapter=name)
            )
            assert_row_matches(mixed[row : row + 1], alone)
