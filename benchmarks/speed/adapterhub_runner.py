"""AdapterHub ``adapters``' runner (``.venv-adapters``, transformers 4.57): Pfeiffer and Houlsby.

    .venv-adapters/bin/python -m benchmarks.speed.adapterhub_runner --spec '{"method": "pfeiffer"}' --out r.json

``SeqBnConfig`` is AdapterHub's Pfeiffer adapter and ``DoubleSeqBnConfig`` its Houlsby
adapter; both take the same reduction factor as ours.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from benchmarks.speed.measure import run_main, train_benchmark
from benchmarks.speed.workload import Spec, build_base

NAME = "bench"


def train(spec: Spec) -> dict[str, Any]:
    """Train an AdapterHub bottleneck adapter on the shared workload."""
    import adapters
    from adapters import DoubleSeqBnConfig, SeqBnConfig

    configs = {"pfeiffer": SeqBnConfig, "houlsby": DoubleSeqBnConfig}
    if spec.method not in configs:
        raise SystemExit(f"adapterhub runner: only {', '.join(configs)}, not {spec.method}")
    base, baseline = build_base(spec)
    adapters.init(base)
    options: dict[str, Any] = {"reduction_factor": spec.reduction_factor}
    if spec.layers is not None:
        layers = base.config.num_hidden_layers
        options["leave_out"] = [i for i in range(layers) if i not in spec.layers]
    base.add_adapter(NAME, config=configs[spec.method](**options))
    base.train_adapter(NAME)  # freezes the base and activates the adapter
    base.train()

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return base(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state

    trainable = [p for p in base.parameters() if p.requires_grad]
    result = train_benchmark(spec, base, forward, trainable, baseline, base.config.vocab_size)
    return {**result, "peer_version": f"adapters {adapters.__version__}"}


if __name__ == "__main__":
    sys.exit(run_main(sys.argv[1:], train))
