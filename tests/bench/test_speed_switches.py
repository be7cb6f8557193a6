"""Every speed switch leaves losses and gradients equal to the plain path (within tolerance).

- length-grouped batches: only batch membership changes; a batch's loss and gradients
  do not depend on how much padding dynamic padding adds;
- bf16 autocast (``TrainConfig.precision="bf16"``): close to fp32, at bf16 tolerance;
- "no gradient work below the lowest adapted layer": autograd already does it, so an
  explicit stop-gradient changes neither gradients nor counted FLOPs.
"""

from __future__ import annotations

import random

import pytest
import torch
from benchmarks.speed.measure import count_flops
from benchmarks.speed.workload import PoolHead, loss_of
from tests.tiny import tiny_model, tiny_tokenizer

from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.tasks import make_task
from adapterkit.train.batches import epoch_batches
from adapterkit.train.config import TrainConfig
from adapterkit.train.loop import fit

METHODS = ["houlsby", "pfeiffer", "lora"]


def _model(method: str, layers: list[int] | None = None) -> tuple[AdaptedModel, PoolHead]:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config(method, layers=layers))
    model.train_adapter("a")
    torch.manual_seed(3)
    with torch.no_grad():  # non-zero adapters, so that they change the output
        for param in model.adapter_parameters("a").values():
            param.normal_(0, 0.1)
    return model.eval(), PoolHead(32)  # eval: no dropout, so runs are comparable


def _batch(lengths: list[int], width: int) -> dict[str, torch.Tensor]:
    rng = random.Random(0)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.tensor([rng.randrange(1, 97) for _ in range(n)])
        mask[row, :n] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": torch.tensor([0, 1, 2][: len(lengths)]),
    }


def _loss_and_grads(model: AdaptedModel, head: PoolHead, batch: dict, bf16: bool = False):
    model.zero_grad(set_to_none=True)
    head.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], adapter="a"
        ).last_hidden_state
        loss = loss_of(head(hidden, batch["attention_mask"]), batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.adapter_parameters("a").items()}
    return loss.detach(), grads


def test_length_grouped_batches_partition_and_pad_less() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(4, 120) for _ in range(1000)]
    grouped = epoch_batches(1000, 16, seed=3, epoch=2, lengths=lengths)
    assert sorted(i for b in grouped for i in b) == list(range(1000))
    assert grouped == epoch_batches(1000, 16, seed=3, epoch=2, lengths=lengths)
    plain = epoch_batches(1000, 16, seed=3, epoch=2)
    # The plain path is what it was before the switch existed.
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(3 * 10_007 + 2)).tolist()
    assert plain == [order[i : i + 16] for i in range(0, 1000, 16)]

    def padded(batches: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded(grouped) < 0.7 * padded(plain)


@pytest.mark.parametrize("method", METHODS)
def test_dynamic_padding_leaves_loss_and_grads_unchanged(method: str) -> None:
    model, head = _model(method)
    lengths = [9, 5, 3]
    tight_loss, tight = _loss_and_grads(model, head, _batch(lengths, 9))
    wide_loss, wide = _loss_and_grads(model, head, _batch(lengths, 40))
    assert tight_loss.item() == pytest.approx(wide_loss.item(), abs=1e-6)
    for name in tight:
        torch.testing.assert_close(tight[name], wide[name], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_bf16_autocast_is_close_to_fp32(method: str) -> None:
    model, head = _model(method)
    batch = _batch([12, 7, 4], 12)
    loss32, grads32 = _loss_and_grads(model, head, batch)
    loss16, grads16 = _loss_and_grads(model, head, batch, bf16=True)
    assert loss16.item() == pytest.approx(loss32.item(), rel=2e-2)
    for name in grads32:
        cosine = torch.nn.functional.cosine_similarity(
            grads32[name].flatten(), grads16[name].float().flatten(), dim=0
        )
        assert cosine > 0.98, (name, cosine)


@pytest.mark.parametrize("method", METHODS)
def test_no_gradient_work_below_lowest_adapted_layer(method: str) -> None:
    """Adapters in the top layer only: a stop-gradient at its input changes nothing."""
    model, head = _model(method, layers=[1])
    batch = _batch([10, 6, 8], 10)
    plain_loss, plain = _loss_and_grads(model, head, batch)
    plain_flops = count_flops(lambda: _loss_and_grads(model, head, batch))
    layer = model.base.encoder.layer[1]
    hook = layer.register_forward_pre_hook(
        lambda _module, args, kwargs: ((args[0].detach(), *args[1:]), kwargs), with_kwargs=True
    )
    try:
        cut_loss, cut = _loss_and_grads(model, head, batch)
        cut_flops = count_flops(lambda: _loss_and_grads(model, head, batch))
    finally:
        hook.remove()
    assert cut_loss.item() == plain_loss.item()
    for name in plain:
        torch.testing.assert_close(plain[name], cut[name], atol=0, rtol=0)
    assert cut_flops == plain_flops  # autograd already skipped the lower layer
    all_layers, _ = _model(method)
    assert plain_flops < count_flops(lambda: _loss_and_grads(all_layers, head, batch))


def test_fit_with_group_by_length_trains(tmp_path) -> None:
    words = ["good", "bad", "movie", "plot", "fun", "dull"]
    tokenizer = tiny_tokenizer(words)
    task = make_task("sequence-classification", tokenizer, ["neg", "pos"], max_length=32)
    rng = random.Random(0)
    examples = [
        {
            "text": " ".join(rng.choice(words) for _ in range(rng.randint(1, 20))),
            "label": rng.choice(["neg", "pos"]),
        }
        for _ in range(40)
    ]
    features = [task.encode(e) for e in examples]
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config("pfeiffer"), head=task.build_head(32))
    model.train_adapter("a")
    config = TrainConfig(epochs=2, batch_size=8, group_by_length=True)
    result = fit(
        model,
        "a",
        task,
        features,
        None,
        config,
        1e-3,
        tmp_path,
        log=lambda _: None,
    )
    assert result.state.epoch == 2 and all(row["train_loss"] > 0 for row in result.state.history)


@pytest.mark.parametrize("method", ["pfeiffer", "lora"])
def test_bf16_frozen_base_is_close_to_fp32(method: str) -> None:
    """The harness's bf16_base switch: frozen weights in bf16, adapters and their grads in fp32."""
    from benchmarks.speed.ours import build
    from benchmarks.speed.workload import Spec, make_batches

    results = []
    for base_dtype, precision in [("fp32", "fp32"), ("bf16", "bf16")]:
        spec = Spec(model="tiny", method=method, base_dtype=base_dtype, precision=precision)
        base, forward, trainable, _ = build(spec, method)
        base.eval()
        torch.manual_seed(5)
        with torch.no_grad():
            for param in trainable:
                param.normal_(0, 0.1)
        assert all(p.dtype == torch.float32 for p in trainable)
        batch = make_batches(spec, base.config.vocab_size)[0]
        torch.manual_seed(6)
        head = PoolHead(32)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_of(head(forward(batch), batch["attention_mask"]), batch)
        loss.backward()
        results.append((loss.item(), torch.cat([p.grad.flatten() for p in trainable])))
    (loss32, grads32), (loss16, grads16) = results
    assert loss16 == pytest.approx(loss32, rel=2e-2)
    assert torch.nn.functional.cosine_similarity(grads32, grads16, dim=0) > 0.98


def _backward_ops(output: torch.Tensor) -> set[str]:
    """Names of every autograd node behind ``output``."""
    seen, stack, names = set(), [output.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(node.name())
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


@pytest.mark.parametrize("model_name", ["tiny", "tiny-llama"])
def test_no_attention_dropout_switch_takes_the_fused_attention_kernel(model_name: str) -> None:
    from benchmarks.speed.workload import Spec, build_base

    batch = _batch([5, 3], 6)
    for dropout, fused in ((0.1, False), (0.0, True)):
        base, _ = build_base(Spec(model=model_name, attention_dropout=dropout))
        base.get_input_embeddings().register_forward_hook(lambda _m, _i, out: out.requires_grad_())
        hidden = base(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        flash = any("FlashAttention" in name for name in _backward_ops(hidden))
        assert flash is fused, (model_name, dropout)
