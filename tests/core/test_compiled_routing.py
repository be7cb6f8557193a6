"""A compiled AdaptedModel: no graph break at wrapped layers, the same numbers as eager,
callers in other threads keep their own routing, generation stays eager; with index
routing one graph serves every mix of adapters."""

from __future__ import annotations

import threading

import pytest
import torch
import torch._dynamo as dynamo
from tests.tiny import main_output, tiny_inputs, tiny_model
from torch._dynamo.utils import counters

from adapterkit.errors import AdapterkitError
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.routing import _TRACED, Routing, traced_routing, use_routing


@pytest.fixture(autouse=True)
def _fresh_dynamo_cache():
    dynamo.reset()  # each test compiles its own models; no recompile limit carried over
    yield
    dynamo.reset()


def _model(arch: str, methods: tuple[str, ...]) -> AdaptedModel:
    model = AdaptedModel(tiny_model(arch))
    for index, method in enumerate(methods):
        model.add_adapter(f"a{index}", make_config(method))
        with torch.no_grad():  # off the identity, so that each adapter changes its rows
            for param in model.adapter_parameters(f"a{index}").values():
                param.add_(0.05 * torch.randn_like(param))
    return model.eval()


@pytest.mark.parametrize(
    ("methods", "routes"),
    [
        (("pfeiffer",), "a0"),
        (("parallel", "lora"), ["a0", "a1", None]),  # a tapped block input, mixed rows
        (("prefix", "houlsby"), ["a1", "a0", "a0"]),  # inside attention
        (("dora", "ia3"), ["a1", "a0", None]),
    ],
)
@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_wrapped_layers_do_not_break_the_graph(arch: str, methods, routes) -> None:
    model = _model(arch, methods)
    inputs = tiny_inputs(arch)
    routing = model._routing(routes)

    def forward(**kwargs):
        return main_output(model.base(**kwargs))

    with use_routing(routing), traced_routing(routing):
        explained = dynamo.explain(forward)(**inputs)
    assert explained.graph_break_count == 0, [r.reason[:200] for r in explained.break_reasons]
    assert explained.graph_count == 1


# aot_eager traces exactly what inductor would compile (dynamo graph, AOT autograd) without
# generating C++: the routing's tracing is what is tested here; tests/real runs inductor.
def test_compiled_outputs_and_gradients_equal_eager() -> None:
    model = _model("bert", ("pfeiffer", "lora", "ia3"))
    inputs = tiny_inputs("bert")
    trainable = [p for n, p in model.named_parameters() if "adapters" in n]
    for param in trainable:
        param.requires_grad_(True)

    def run(routes):
        model.zero_grad(set_to_none=True)
        out = main_output(model(**inputs, adapter=routes))
        out.pow(2).sum().backward()
        return out.detach(), [p.grad.clone() for p in trainable if p.grad is not None]

    cases = ["a0", ["a2", None, "a1"]]
    eager = [run(routes) for routes in cases]
    model.compile(backend="aot_eager")
    for routes, (out, grads) in zip(cases, eager, strict=True):
        compiled_out, compiled_grads = run(routes)
        torch.testing.assert_close(compiled_out, out, rtol=1e-5, atol=1e-5)
        assert len(compiled_grads) == len(grads) > 0
        for got, want in zip(compiled_grads, grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_compiled_callers_in_threads_keep_their_own_adapter() -> None:
    model = _model("bert", ("pfeiffer", "lora"))
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        expected = {name: main_output(model(**inputs, adapter=name)) for name in ("a0", "a1")}
    model.compile(backend="eager")  # dynamo's guards on the routing are what is tested
    failures: list[str] = []

    def call(name: str) -> None:
        with torch.no_grad():
            for _ in range(5):
                got = main_output(model(**inputs, adapter=name))
                if not torch.allclose(got, expected[name], atol=1e-5):
                    failures.append(name)

    threads = [threading.Thread(target=call, args=(name,)) for name in ("a0", "a1") * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_eager_forwards_never_read_the_compiled_holder() -> None:
    model = _model("bert", ("pfeiffer",))
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        want = main_output(model(**inputs, adapter="a0"))
        _TRACED.routing = Routing(disabled=True)  # what a compiled call elsewhere might hold
        try:
            got = main_output(model(**inputs, adapter="a0"))
        finally:
            _TRACED.routing = None
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, main_output(model(**inputs, adapter=None)))


def test_generation_stays_eager_and_unchanged_after_compile() -> None:
    model = _model("gpt2", ("lora",))
    prompt = tiny_inputs("gpt2", batch=2, length=5)
    prompt["attention_mask"] = torch.ones_like(prompt["input_ids"])
    kwargs = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": 0}
    want = model.generate(**prompt, adapter="a0", **kwargs)
    model.compile()
    got = model.generate(**prompt, adapter="a0", **kwargs)
    assert torch.equal(got, want)
    assert not any("_orig_mod" in key for key in model.state_dict())


def test_index_routing_serves_every_mix_with_one_graph() -> None:
    """Batches of three sizes, each mixed, single-adapter and base-only, with base tuning
    beside the modules: one graph, every output equal to eager."""
    model = AdaptedModel(tiny_model("bert"))
    for index, method in enumerate(("pfeiffer", "lora", "houlsby", "parallel", "ia3", "dora")):
        config = make_config(method, train_bias=True, train_norms=index % 2 == 0)
        model.add_adapter(f"a{index}", config)
        with torch.no_grad():
            for param in model.adapter_parameters(f"a{index}").values():
                param.add_(0.05 * torch.randn_like(param))
    model.eval()
    names = list(model.configs)
    calls = []
    for batch in (3, 5, 4):
        inputs = tiny_inputs("bert", batch=batch, seed=batch)
        mixed = [
            None if row % 3 == 0 else names[(row * 7 + batch) % len(names)] for row in range(batch)
        ]
        calls += [(inputs, mixed), (inputs, names[batch % len(names)]), (inputs, None)]
    with torch.no_grad():
        want = [main_output(model(**inputs, adapter=routes)) for inputs, routes in calls]
        counters.clear()
        model.compile(index_routing=True, backend="eager")
        got = [main_output(model(**inputs, adapter=routes)) for inputs, routes in calls]
    for out, ref in zip(got, want, strict=True):
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == 1


def test_index_routing_refuses_what_reads_rows_by_name() -> None:
    model = _model("bert", ("pfeiffer", "prefix"))
    with pytest.raises(AdapterkitError, match="'a1' \\(prefix\\) cannot be routed by index"):
        model.compile(index_routing=True, backend="eager")
    model.delete_adapter("a1")
    model.compile(index_routing=True, backend="eager")
    with pytest.raises(AdapterkitError, match="cannot be routed by index"):
        model.add_adapter("soft", make_config("prompt", num_virtual_tokens=2))
    assert "soft" not in model.configs and not any("soft" in k for k in model.state_dict())
