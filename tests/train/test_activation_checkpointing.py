"""Activation checkpointing recomputes blocks with the same adapters: same loss and grads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.tiny import FINISHED, save_tiny_bert, tiny_model

from adapterkit.checkpointing import enable_activation_checkpointing
from adapterkit.cli import main
from adapterkit.errors import AdapterkitError
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel


def _loss_and_grads(arch: str, method: str, checkpointed: bool | str, rows: list | None = None):
    torch.manual_seed(0)
    model = AdaptedModel(tiny_model(arch))
    for name in ("a", "b"):
        options = {"r": 4} if method == "lora" else {"reduction_factor": 4}
        model.add_adapter(name, make_config(method, **options))
    model.requires_grad_(False)
    for name in ("a", "b"):
        for param in model.adapter_parameters(name).values():
            with torch.no_grad():  # non-zero adapters, so that they change the output
                param.normal_(0, 0.1)
            param.requires_grad_(True)
    model.train()  # dropout on: the recompute must replay the same masks
    if checkpointed == "torch":  # transformers' own: plain torch checkpoint, routing lost
        model.base.activation_checkpointing_enable()
    elif checkpointed:
        enable_activation_checkpointing(model.base)
        assert any(getattr(m, "gradient_checkpointing", False) for m in model.base.modules())
    ids = torch.randint(1, 90, (2, 7), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    out = model(input_ids=ids, adapter=rows or "a")
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out.logits
    loss = hidden.float().pow(2).mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("arch", ["bert", "llama"])
@pytest.mark.parametrize("method", ["houlsby", "pfeiffer", "parallel", "lora"])
def test_checkpointed_training_matches_plain(arch: str, method: str) -> None:
    plain_loss, plain = _loss_and_grads(arch, method, checkpointed=False)
    loss, grads = _loss_and_grads(arch, method, checkpointed=True)
    torch.testing.assert_close(loss, plain_loss)
    assert set(grads) == set(plain) and any(".a." in name for name in grads)
    for name, grad in plain.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_checkpointed_mixed_batch_keeps_per_row_routing() -> None:
    plain_loss, plain = _loss_and_grads("bert", "lora", False, rows=["a", "b"])
    loss, grads = _loss_and_grads("bert", "lora", True, rows=["a", "b"])
    torch.testing.assert_close(loss, plain_loss)
    assert any(".b." in name for name in grads)  # both adapters got gradients
    for name, grad in plain.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_plain_torch_checkpoint_loses_the_routing() -> None:
    """Why routing_checkpoint exists: the stock recompute runs without the adapters."""
    with pytest.raises(Exception, match=r"(?i)recomput|saved"):
        _loss_and_grads("bert", "pfeiffer", "torch")


def test_model_without_checkpointing_support_is_refused() -> None:
    with pytest.raises(AdapterkitError, match="does not support activation checkpointing"):
        enable_activation_checkpointing(torch.nn.Linear(2, 2))


def test_train_flag_checkpoints_and_trains(tmp_path: Path) -> None:
    model_dir = save_tiny_bert(tmp_path / "model", ["good", "bad", "fun", "dull"])
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "good fun,pos\nbad dull,neg\n" * 8)
    args = ["train", "--model", str(model_dir), "--train", str(train), "--epochs", "1"]
    plain, checkpointed = tmp_path / "plain", tmp_path / "checkpointed"
    assert main([*args, "--output", str(plain)]) in FINISHED
    assert main([*args, "--output", str(checkpointed), "--activation-checkpointing"]) in FINISHED
    assert "activation_checkpointing: true" in (checkpointed / "config.yaml").read_text()
    # Same seed and data: the checkpointed run trains the same weights.
    weights = [
        load_file(str(d / "adapter" / "adapterkit.safetensors")) for d in (plain, checkpointed)
    ]
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (plain, checkpointed)]
    assert metrics[0]["accuracy"] == metrics[1]["accuracy"]
