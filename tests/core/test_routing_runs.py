"""Contiguous blocks of rows per adapter (packed training batches) run as slices."""

from __future__ import annotations

import pytest
import torch
from tests.tiny import main_output, tiny_inputs, tiny_model

from adapterkit import host
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.routing import contiguous_runs, make_routing


def test_runs_are_found_only_when_every_name_is_one_block() -> None:
    assert contiguous_runs(["a", "a", None, "b", "b"]) == [("a", 0, 2), (None, 2, 3), ("b", 3, 5)]
    assert contiguous_runs(["a", "b", "a"]) is None
    assert make_routing(["a", "a", "b"]).runs == [("a", 0, 2), ("b", 2, 3)]


@pytest.mark.parametrize("method", ["houlsby", "parallel", "lora"])
def test_sliced_mixed_batch_equals_each_adapter_alone(method: str, monkeypatch) -> None:
    torch.manual_seed(0)
    model = AdaptedModel(tiny_model("bert"))
    for name in ("a", "b", "c"):
        model.add_adapter(name, make_config(method))
        with torch.no_grad():
            for param in model.adapter_parameters(name).values():
                param.normal_(0, 0.3)
    inputs = tiny_inputs("bert", batch=12, length=7)
    names = ["a"] * 4 + [None] * 4 + ["c"] * 4
    called = []
    real = host.AdapterHost._forward_runs
    monkeypatch.setattr(host.AdapterHost, "_forward_runs", lambda *a: called.append(1) or real(*a))
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=names))
        for name, rows in (("a", slice(0, 4)), (None, slice(4, 8)), ("c", slice(8, 12))):
            alone = main_output(model(**{k: v[rows] for k, v in inputs.items()}, adapter=name))
            torch.testing.assert_close(mixed[rows], alone, rtol=1e-5, atol=1e-6)
    assert called  # the sliced path ran
