"""The composition module's math: stack and average exactly as their parts, a fresh fusion
as their average, and parts that never train."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.compose.helpers import composed, hosts_of, layer_input, model_with, parts

from adapterkit.errors import AdapterkitError
from adapterkit.lifecycle.compose_parts import part_tensors, read_parts
from adapterkit.methods import make_config
from adapterkit.methods.compose import CompositionAdapter


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("parts")
    found = parts(folder)
    found["stack"] = composed(folder, "stack", ["a", "lora", "b"], found)
    found["average"] = composed(folder, "average", ["a", "b", "lora"], found)
    return found


@torch.no_grad()
def test_stack_runs_each_part_on_the_previous_ones_output(bundles) -> None:
    model = model_with(bundles)
    layers = hosts_of(model, "stack")
    assert len(layers) == 2
    for host in layers.values():
        x, out = layer_input(host)
        a, lora, b = (host.adapters[n] for n in ("a", "lora", "b"))
        expected = b(x, lora(x, a(x, out, None), None), None)
        assert torch.equal(host.adapters["stack"](x, out, None), expected)


@torch.no_grad()
def test_average_is_the_mean_of_the_parts_outputs(bundles) -> None:
    model = model_with(bundles)
    for host in hosts_of(model, "average").values():
        x, out = layer_input(host)
        outs = [host.adapters[n](x, out, None) for n in ("a", "b", "lora")]
        assert torch.equal(host.adapters["average"](x, out, None), torch.stack(outs).mean(0))
        assert (outs[0] - outs[1]).abs().max() > 1e-3  # the parts differ: the mean is news


def test_a_composition_holds_its_parts_weights_bit_for_bit(bundles) -> None:
    model = model_with(bundles)
    own = model.adapter_parameters("stack")
    for place, name in enumerate(["a", "lora", "b"]):
        for key, param in model.adapter_parameters(name).items():
            layer, module, leaf = key.rsplit(".", 2)  # adapter.<layer>.down.weight
            mine = own[f"{layer}.parts.{place}.{module}.{leaf}"]
            assert torch.equal(mine, param), key


def _fusion(bundles: dict[str, Path]):
    """A fresh fusion of a, b and lora added to the model that holds them alone."""
    model = model_with({n: bundles[n] for n in ("a", "b", "lora")})
    read = read_parts([bundles[n] for n in ("a", "b", "lora")], "--fuse", minimum=2)
    torch.manual_seed(0)
    model.add_adapter("fu", make_config("fusion", parts=[p.entry() for p in read]))
    start = {k: p.detach() for k, p in model.adapter_parameters("fu").items()}
    model.load_weights("fu", {**start, **part_tensors(read)}, "test")
    return model


def test_a_fresh_fusion_is_the_average_of_its_parts(bundles) -> None:
    model = _fusion(bundles)
    with torch.no_grad():
        for host in hosts_of(model, "fu").values():
            x, out = layer_input(host)
            fused = host.adapters["fu"](x, out, None)
            outs = [host.adapters[n](x, out, None) for n in ("a", "b", "lora")]
            assert fused.shape == out.shape == (2, 5, 32)
            torch.testing.assert_close(fused, torch.stack(outs).mean(0), rtol=1e-5, atol=1e-6)
            fusion = host.adapters["fu"].fusion
            deltas = torch.stack([o - out for o in outs], dim=2)
            weights = fusion.weights(out, deltas)
            assert weights.shape == (2, 5, 3)
            torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5))


def test_fusion_trains_its_attention_and_never_its_parts(bundles) -> None:
    model = _fusion(bundles)
    trainable = model.adapter_parameters("fu", trainable_only=True)
    assert trainable and all(".fusion." in key for key in trainable)
    frozen = set(model.adapter_parameters("fu")) - set(trainable)
    assert frozen and all(".parts." in key for key in frozen)
    model.train_adapter("fu")
    model.train()
    inputs = {"input_ids": torch.randint(0, 97, (2, 6))}
    model(**inputs, adapter="fu").last_hidden_state.pow(2).mean().backward()
    params = model.adapter_parameters("fu")
    assert all(params[key].grad is None and not params[key].requires_grad for key in frozen)
    assert any(
        params[key].grad is not None and params[key].grad.abs().max() > 0 for key in trainable
    )
    report = model.parameter_report("fu")
    assert report.trainable == sum(p.numel() for p in trainable.values())


def test_parts_of_methods_that_do_not_wrap_layers_are_refused() -> None:
    for method in ("none", "composition"):
        part = {"method": method, "config": {}, "name": "p", "sha256": None}
        with pytest.raises(AdapterkitError, match=f"is of method '{method}'"):
            make_config("average", parts=[part, part])
    with pytest.raises(AdapterkitError, match="at least 2 parts"):
        make_config("fusion")


@pytest.mark.parametrize("mode", ["average", "stack"])
def test_ia3_dora_and_adalora_parts_act_as_they_do_alone(tmp_path: Path, mode: str) -> None:
    """IA3 rescales the FFN down-projection's input, DoRA reads the frozen weight, AdaLoRA
    has a rank of its own per layer: in a composition each part still sees what the host
    gives it alone, layer by layer."""
    from tests.compose.helpers import FFN_OUT
    from tests.lifecycle.helpers import make_bundle

    from adapterkit.train.job import adapter_modules

    parts = ("ia3", "dora", "lora", "adalora")
    found = {n: tmp_path / n for n in parts}
    make_bundle(found["ia3"], "ia3", seed=1)
    make_bundle(found["dora"], "dora", seed=2, target_modules=[FFN_OUT])
    make_bundle(found["lora"], "lora", seed=3, target_modules=[FFN_OUT])
    ada = make_bundle(
        found["adalora"], "adalora", seed=4, target_modules=[FFN_OUT], r=4, target_r=2
    )
    modules = adapter_modules(ada, "a")
    with torch.no_grad():  # as its schedule leaves it: layer 0 at rank 1, layer 1 at rank 3
        for index, module in enumerate(modules.values()):
            module.rank_mask.copy_((torch.arange(4) < 1 + 2 * index).float())
    ada.configs["a"].training_controller(modules, total_steps=10).finish()
    ada.save_adapter("a", found["adalora"])
    found["mix"] = composed(tmp_path, mode, list(parts), found)
    model = model_with(found)
    layers = hosts_of(model, "mix")
    assert len(layers) == 6  # IA3's keys, values and FFN outputs; the others on the last
    for name, host in layers.items():
        x, base = layer_input(host)
        names = [n for n in parts if n in host.adapters]
        if mode == "average":  # an absent part leaves the layer as it is
            outs = [_alone(host, n, x) for n in names] + [base] * (4 - len(names))
            expected = torch.stack(outs).mean(0)
        else:  # each part on the output so far; IA3 comes first, so on the frozen output
            expected = base
            with torch.no_grad():
                for n in names:
                    extra = {"base": host.base_weights()} if n == "dora" else {}
                    module = host.adapters[n]
                    expected = (
                        _alone(host, n, x) if n == "ia3" else module(x, expected, None, **extra)
                    )
        torch.testing.assert_close(_alone(host, "mix", x), expected, rtol=1e-5, atol=1e-6)
        if "ia3" in names and host.adapters["ia3"].adapts_input:
            assert (_alone(host, "ia3", x) - base).abs().max() > 1e-3, name  # the scale acts


def _alone(host, adapter: str, x: torch.Tensor) -> torch.Tensor:
    """The wrapped layer's output for ``x`` with ``adapter`` routed, as the host runs it."""
    from adapterkit.routing import make_routing, use_routing

    with torch.no_grad(), use_routing(make_routing(adapter)):
        return host(x)


def test_parallel_parts_read_the_block_input(tmp_path: Path) -> None:
    from tests.lifecycle.helpers import make_bundle

    found = {n: tmp_path / n for n in ("p", "q")}
    for seed, path in enumerate(found.values(), start=1):
        make_bundle(path, "parallel", seed=seed)
    found["avg"] = composed(tmp_path, "average", ["p", "q"], found)
    model = model_with(found)
    inputs = {"input_ids": torch.randint(0, 97, (2, 6))}
    with torch.no_grad():
        outs = [model(**inputs, adapter=n).last_hidden_state for n in ("p", "q", "avg", None)]
    assert isinstance(
        next(iter(hosts_of(model, "avg").values())).adapters["avg"], CompositionAdapter
    )
    assert (outs[2] - outs[3]).abs().max() > 1e-3  # the parallel parts act
    assert not torch.allclose(outs[2], outs[0]) and not torch.allclose(outs[2], outs[1])
