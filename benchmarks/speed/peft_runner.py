"""peft's runner (``.venv-peft``): LoRA at the same rank, alpha and targets as ours.

.venv-peft/bin/python -m benchmarks.speed.peft_runner --spec '{"method": "lora"}' --out r.json
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from benchmarks.speed.measure import run_main, train_benchmark
from benchmarks.speed.workload import LORA_TARGETS, Spec, build_base, family


def train(spec: Spec) -> dict[str, Any]:
    """Train peft LoRA on the shared workload."""
    import peft
    from peft import LoraConfig, get_peft_model

    if spec.method != "lora":
        raise SystemExit(f"peft runner: only lora, not {spec.method}")
    base, baseline = build_base(spec)
    config = LoraConfig(
        r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS[family(spec)],
        layers_to_transform=spec.layers,
        bias="none",
    )
    model = get_peft_model(base, config)
    model.train()

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state

    trainable = [p for p in model.parameters() if p.requires_grad]
    result = train_benchmark(spec, base, forward, trainable, baseline, base.config.vocab_size)
    return {**result, "peer_version": f"peft {peft.__version__}"}


if __name__ == "__main__":
    sys.exit(run_main(sys.argv[1:], train))
