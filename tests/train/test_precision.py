"""fp16 trains through a loss scaler (unscaled before clipping, updated once per step);
``--precision auto`` is bf16 where the device computes it natively."""

from __future__ import annotations

import json

import pytest
import torch
from tests.generation.test_cli_generation import save_lm

from adapterkit import precision
from adapterkit.cli import main
from adapterkit.train import optim
from adapterkit.train.config import TrainConfig


def test_fp16_uses_a_grad_scaler_and_trains_like_fp32(tmp_path, monkeypatch) -> None:
    model = save_lm(tmp_path / "llama")
    data = tmp_path / "d.jsonl"
    rows = [
        {"prompt": f"translate to spanish : the {w}", "response": f"el {w}"}
        for w in ["cat", "dog", "house"]
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 4))
    import adapterkit.train.engine as engine

    made, updates = [], []

    class Spy(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self.is_enabled())

        def update(self, *args, **kwargs):
            if self.is_enabled():
                updates.append(self.get_scale())
            return super().update(*args, **kwargs)

    monkeypatch.setattr(engine.torch.amp, "GradScaler", Spy)
    scores = {}
    for chosen in ("fp32", "fp16"):
        out = tmp_path / chosen
        argv = ["train", "--model", str(model), "--train", str(data), "--method", "lora"]
        argv += ["--epochs", "2", "--batch-size", "4", "--lr", "0.01", "--output", str(out)]
        assert main([*argv, "--precision", chosen]) == 0
        scores[chosen] = json.loads((out / "metrics.json").read_text())["perplexity"]
    assert made == [False, True]  # fp32 runs no scaler; fp16 does
    assert updates and all(scale > 1 for scale in updates)  # the loss was scaled up
    assert abs(scores["fp16"] - scores["fp32"]) / scores["fp32"] < 0.02


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ({"avx512_bf16"}, None, "bf16"),
        ({"amx_bf16", "avx512f"}, None, "bf16"),
        ({"avx512f", "avx2"}, None, "fp32"),  # emulated bf16 is slower than fp32
        (set(), None, "fp32"),
        ({"avx512_bf16"}, "0", "fp32"),  # the override wins both ways
        (set(), "1", "bf16"),
    ],
)
def test_auto_precision_is_bf16_on_cpus_with_native_bf16(flags, env, expected, monkeypatch) -> None:
    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset(flags))
    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(precision.CPU_BF16_ENV, env)
    cpu = torch.device("cpu")
    assert precision.resolve_precision("auto", cpu) == expected
    assert precision.resolve_precision("fp32", cpu) == "fp32"  # an explicit choice is kept
    autocasting = optim.autocast_context(TrainConfig(), cpu)
    with autocasting:
        assert torch.is_autocast_enabled("cpu") == (expected == "bf16")
        # bf16 training on the CPU runs attention on the math kernel (the fused one's
        # backward is slower there: benchmarks/attention_kernels.py); fp32 keeps both
        assert torch.backends.cuda.flash_sdp_enabled() == (expected == "fp32")
    assert torch.backends.cuda.flash_sdp_enabled()  # and the choice ends with the step
    with precision.inference_context("auto", cpu):  # evaluation: autocast, PyTorch's kernels
        assert torch.is_autocast_enabled("cpu") == (expected == "bf16")
        assert torch.backends.cuda.flash_sdp_enabled()
    with precision.inference_context("fp32", cpu):
        assert not torch.is_autocast_enabled("cpu")


def test_auto_precision_trains_in_bf16_and_says_so(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(precision.CPU_BF16_ENV, "1")
    model = save_lm(tmp_path / "llama")
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": "a b", "response": "c"}) + "\n" for _ in range(8))
    )
    seen = []
    real = optim.autocast_context

    def spy(config, device):
        seen.append(precision.resolve_precision(config.precision, device))
        return real(config, device)

    import adapterkit.train.engine as engine

    monkeypatch.setattr(engine, "autocast_context", spy)
    import adapterkit.train.evaluate as evaluate

    scored: list[bool] = []
    forward = evaluate.task_forward

    def scoring(*args):
        scored.append(torch.is_autocast_enabled("cpu"))
        return forward(*args)

    monkeypatch.setattr(evaluate, "task_forward", scoring)
    argv = ["train", "--model", str(model), "--train", str(data), "--method", "lora"]
    assert main([*argv, "--epochs", "1", "--output", str(tmp_path / "out")]) == 0
    assert seen and set(seen) == {"bf16"}
    assert scored and not any(scored)  # a generation task's perplexity is scored in fp32
    assert "--precision auto: bf16 autocast on this cpu" in capsys.readouterr().out
