"""fp16 trains through a loss scaler (unscaled before clipping, updated once per step)."""

from __future__ import annotations

import json

import torch
from tests.generation.test_cli_generation import save_lm

from adapterkit.cli import main


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
    for precision in ("fp32", "fp16"):
        out = tmp_path / precision
        argv = ["train", "--model", str(model), "--train", str(data), "--method", "lora"]
        argv += ["--epochs", "2", "--batch-size", "4", "--lr", "0.01", "--output", str(out)]
        assert main([*argv, "--precision", precision]) == 0
        scores[precision] = json.loads((out / "metrics.json").read_text())["perplexity"]
    assert made == [False, True]  # fp32 runs no scaler; fp16 does
    assert updates and all(scale > 1 for scale in updates)  # the loss was scaled up
    assert abs(scores["fp16"] - scores["fp32"]) / scores["fp32"] < 0.02
