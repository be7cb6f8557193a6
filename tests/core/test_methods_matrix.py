"""The method × architecture matrix: identity at init, only adapters train, routing."""

from __future__ import annotations

import zlib

import pytest
import torch
from tests.tiny import (
    ARCHS,
    BOTTLENECKS,
    METHODS,
    assert_row_matches,
    main_output,
    tiny_inputs,
    tiny_model,
)

from adapterkit.heads import ClassificationHead
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel


def tiny_config(method: str):
    """The method's config, with a bottleneck wide enough for hidden 32 (the default rf 16 gives
    width 2, where a ReLU can be dead on every unit of a random tiny model)."""
    return make_config(method, reduction_factor=4) if method in BOTTLENECKS else make_config(method)


def _randomise_adapter(model: AdaptedModel, name: str) -> None:
    """Give an adapter non-zero weights so it changes outputs (fresh ones are the identity)."""
    # crc32, not hash(): str hashes change per process, and so would the weights and the test
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()) % 1000)
    with torch.no_grad():
        for param in model.adapter_parameters(name).values():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


NOT_IDENTITY_AT_INIT = {
    "prompt": "soft tokens start as real token embeddings (Lester et al.)",
    "prefix": "learned keys and values take attention from the real tokens from the start",
    "mam": "its prefix half, as prefix",
    "unipelt": "its prefix part, as prefix",
}
"""Methods whose fresh adapter changes outputs by design, with why: the identity test
leaves them out (their other matrix tests run)."""


@pytest.mark.parametrize("method", [m for m in METHODS if m not in NOT_IDENTITY_AT_INIT])
@pytest.mark.parametrize("arch", ARCHS)
def test_fresh_adapter_is_identity(arch: str, method: str) -> None:
    base = tiny_model(arch)
    inputs = tiny_inputs(arch)
    with torch.no_grad():
        expected = main_output(base(**inputs))
    model = AdaptedModel(base)
    targets = model.add_adapter("a", tiny_config(method))
    assert targets, "no layer was adapted"
    with torch.no_grad():
        got = main_output(model(**inputs, adapter="a"))
    assert (got - expected).abs().max().item() <= 1e-6


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ARCHS)
def test_step_changes_only_adapter_and_head(arch: str, method: str) -> None:
    model = AdaptedModel(tiny_model(arch))
    model.add_adapter("a", tiny_config(method), head=ClassificationHead(32, 3))
    model.add_adapter("other", tiny_config(method))
    model.train_adapter("a")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapters.a." in n or n.startswith("heads.a.") for n in trainable)

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    inputs = tiny_inputs(arch)
    for _ in range(2):  # two steps: the first only moves B/up (A/down get zero grad while B/up = 0)
        out = model(**inputs, adapter="a", output_hidden_states=True)
        hidden = out.decoder_hidden_states[-1] if arch == "t5" else out.hidden_states[-1]
        loss = model.head_logits("a", hidden).logsumexp(-1).mean() + main_output(out).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable, f"unexpected: {sorted(changed ^ trainable)[:5]}"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ARCHS)
def test_mixed_batch_equals_rows_alone(arch: str, method: str) -> None:
    model = AdaptedModel(tiny_model(arch))
    for name in ("A", "B"):
        model.add_adapter(name, tiny_config(method))
        _randomise_adapter(model, name)
    inputs = tiny_inputs(arch, batch=3)
    routes = ["A", None, "B"]
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=routes))
        for row, name in enumerate(routes):
            alone = main_output(
                model(**{k: v[row : row + 1] for k, v in inputs.items()}, adapter=name)
            )
            assert (mixed[row : row + 1] - alone).abs().max().item() <= 1e-5, (row, name)
        # The adapters really act: A's row differs from the base.
        base_row = main_output(model(**{k: v[:1] for k, v in inputs.items()}, adapter=None))
    assert (mixed[:1] - base_row).abs().max().item() > 1e-3


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ARCHS)
def test_many_adapter_batch_runs_row_batched_and_equals_rows_alone(
    arch: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapterkit.methods.adalora.layer import AdaLoraAdapter
    from adapterkit.methods.bottleneck.layer import BottleneckAdapter
    from adapterkit.methods.dora.layer import DoraAdapter
    from adapterkit.methods.ia3.layer import Ia3Adapter
    from adapterkit.methods.lora.layer import LoraAdapter
    from adapterkit.methods.prefix.layer import PrefixAdapter
    from adapterkit.methods.prompt.layer import PromptEmbedding
    from adapterkit.methods.unipelt.layer import GatedLora

    module_class = {
        "lora": LoraAdapter,
        "adalora": AdaLoraAdapter,
        "ia3": Ia3Adapter,
        "dora": DoraAdapter,
        "prompt": PromptEmbedding,
        "prefix": PrefixAdapter,  # mam: its parallel adapters' BottleneckAdapter
        "unipelt": GatedLora,
    }.get(method, BottleneckAdapter)
    model = AdaptedModel(tiny_model(arch))
    names = ["A", "B", "C", "D"]
    for name in names:
        model.add_adapter(name, tiny_config(method))
        _randomise_adapter(model, name)
    calls = []
    original = module_class.forward_rows.__func__

    def spy(cls, *args, **kwargs):
        calls.append(result := original(cls, *args, **kwargs))
        return result

    monkeypatch.setattr(module_class, "forward_rows", classmethod(spy))
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
