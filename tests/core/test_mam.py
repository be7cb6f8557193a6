"""The MAM adapter: a prefix on every attention plus a scaled parallel adapter beside every
FFN, built from the ``prefix`` and ``parallel`` modules; per-row routing and bundles."""

from __future__ import annotations

import pytest
import torch
from tests.tiny import ARCHS, assert_row_matches, main_output, tiny_inputs, tiny_model

from adapterkit.heads import ClassificationHead
from adapterkit.host import AdapterHost
from adapterkit.methods import make_config
from adapterkit.methods.bottleneck.layer import BottleneckAdapter
from adapterkit.methods.prefix.layer import PrefixAdapter
from adapterkit.model import AdaptedModel


def _act(model: AdaptedModel, name: str, seed: int) -> None:
    """Move the parallel adapters off their zero start (the prefix acts from the start)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, param in model.adapter_parameters(name).items():
            if ".up." in key:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


@pytest.mark.parametrize("arch", ARCHS)
def test_mam_modules_and_mixed_batch_equals_rows_alone(arch: str) -> None:
    model = AdaptedModel(tiny_model(arch))
    targets = model.add_adapter("M", make_config("mam", prefix_length=3, reduction_factor=4))
    model.add_adapter("P", make_config("prefix", prefix_length=5))
    model.add_adapter("L", make_config("lora"))
    _act(model, "M", 1)
    hosts = {t: model.base.get_submodule(t) for t in targets}
    prefixes = [t for t, h in hosts.items() if isinstance(h.adapters["M"], PrefixAdapter)]
    parallel = [t for t, h in hosts.items() if isinstance(h.adapters["M"], BottleneckAdapter)]
    assert prefixes and parallel and len(prefixes) + len(parallel) == len(targets)
    assert all(
        hosts[t].adapters["M"].parallel and hosts[t].adapters["M"].scaling == 4.0 for t in parallel
    )
    assert all("M" not in hosts[t].reads_block for t in prefixes)  # they run before the FFN tap
    inputs = tiny_inputs(arch, batch=5)
    routes = ["M", "P", None, "L", "M"]
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=routes))
        base = main_output(model(**inputs, adapter=None))
        for row, name in enumerate(routes):
            alone = main_output(
                model(**{k: v[row : row + 1] for k, v in inputs.items()}, adapter=name)
            )
            assert_row_matches(mixed[row : row + 1], alone)
    assert (mixed[0] - base[0]).abs().max() > 1e-3


def test_mam_bundle_is_folded_and_round_trips(tmp_path) -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter(
        "M", make_config("mam", prefix_length=4, reduction_factor=4), head=ClassificationHead(32, 2)
    )
    _act(model, "M", 2)
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        hidden = model(**inputs, adapter="M").last_hidden_state
    path = model.save_adapter("M", tmp_path / "m")
    fresh = AdaptedModel(tiny_model("bert"))
    name = fresh.load_adapter(path)
    config = fresh.configs[name]
    assert config.method == "mam" and config.prefix_projection == 0 and config.scaling == 4.0
    assert not any(".mlp." in key for key in fresh.adapter_parameters(name))
    with torch.no_grad():
        again = fresh(**inputs, adapter=name).last_hidden_state
    torch.testing.assert_close(again, hidden, rtol=1e-5, atol=1e-5)


def test_mam_generation_reuses_the_cache() -> None:
    model = AdaptedModel(tiny_model("llama"))
    model.add_adapter("M", make_config("mam", prefix_length=3, reduction_factor=4))
    _act(model, "M", 3)
    ids = tiny_inputs("llama", batch=2)["input_ids"]
    settings = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        cached = model.generate(input_ids=ids, adapter=["M", None], use_cache=True, **settings)
        plain = model.generate(input_ids=ids, adapter=["M", None], use_cache=False, **settings)
    assert torch.equal(cached, plain)


def test_removing_mam_unwraps_every_layer() -> None:
    base = tiny_model("bert")
    model = AdaptedModel(base)
    model.add_adapter("M", make_config("mam"))
    model.delete_adapter("M")
    assert not any(isinstance(m, AdapterHost) for m in base.modules())
