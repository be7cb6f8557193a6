"""Does the fused residual add (``methods.projection.add_projection``) pay? A/B on MiniLM training steps.

The bottleneck adapters and LoRA add their up-projection to the frozen output in one
``addmm`` (the matmul's epilogue scales and adds). This script times the speed harness's
training step with that path and with the three-pass form it replaced (projection, scale,
add), alternating A and B on the same batches so that drift in machine speed
hits both alike (each batch runs both ways), and prints the median step time of each
(nothing else may run):

    .venv/bin/python -m benchmarks.fused_add
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from adapterkit.methods.bottleneck import layer as bottleneck_layer
from adapterkit.methods.lora import layer as lora_layer
from benchmarks.compiled import minilm_spec
from benchmarks.speed.measure import autocast, swapped
from benchmarks.speed.ours import build
from benchmarks.speed.workload import PoolHead, loss_of, make_batches

MODULES = (bottleneck_layer, lora_layer)


def unfused(
    base_out: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """The form before: the projection, its scaling and the add, one pass each."""
    return base_out + scale * torch.nn.functional.linear(hidden, weight, bias)


def adding(kind: str) -> AbstractContextManager[None]:
    """Within the block, the adapters add their projection the ``kind`` way."""
    return swapped(MODULES, "add_projection", unfused) if kind == "unfused" else nullcontext()


def ab(method: str, steps: int, threads: int) -> dict[str, Any]:
    """Median step seconds of each kind, alternating kinds step by step."""
    spec = minilm_spec(steps, threads)
    base, forward, trainable, _ = build(spec, method)
    torch.manual_seed(1)
    head = PoolHead(base.config.hidden_size)
    params = [p for p in trainable if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    batches = make_batches(spec, base.config.vocab_size)
    times: dict[str, list[float]] = {"fused": [], "unfused": []}
    for index, batch in enumerate(batches[: steps + 1]):
        # Every batch runs both ways, in turns first, so lengths and drift hit both alike.
        for kind in ("fused", "unfused") if index % 2 == 0 else ("unfused", "fused"):
            with adding(kind):
                start = time.perf_counter()
                with autocast(spec):
                    loss = loss_of(head(forward(batch), batch["attention_mask"]), batch)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if index >= 1:  # the first batch warms caches
                    times[kind].append(time.perf_counter() - start)
    fused, plain = statistics.median(times["fused"]), statistics.median(times["unfused"])
    return {"method": method, "fused_ms": 1000 * fused, "unfused_ms": 1000 * plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps of each kind")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for method in ("houlsby", "pfeiffer", "lora"):
        row = ab(method, args.steps, args.threads)
        print(
            f"{method}: fused {row['fused_ms']:.0f} ms, unfused {row['unfused_ms']:.0f} ms, "
            f"unfused / fused {row['unfused_ms'] / row['fused_ms']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
