"""adapterkit's runner (main virtual environment): training, inference and scaling points.

    .venv/bin/python -m benchmarks.speed.ours --spec '{"method": "pfeiffer"}' --out r.json

``spec.extra["mode"]`` picks the job: ``train`` (default; also ``method="full"``, the
plain transformers model with every weight trainable, and ``method="floor"``, the frozen
base backpropagating from its first block with no adapter), ``inference``, or ``scaling``.
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from adapterkit.checkpointing import enable_activation_checkpointing
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.train.batches import epoch_batches
from benchmarks.speed.measure import Forward, autocast, run_main, sync, train_benchmark
from benchmarks.speed.workload import (
    LORA_TARGETS,
    Spec,
    batch_order,
    build_base,
    collate,
    family,
    make_batches,
    make_examples,
)

ADAPTER = "bench"


def adapter_config(spec: Spec, method: str):
    """Our config for ``method`` at the spec's reduction factor / rank and targets."""
    if method == "lora":
        return make_config(
            "lora",
            r=spec.lora_r,
            alpha=spec.lora_alpha,
            target_modules=LORA_TARGETS[family(spec)],
            layers=spec.layers,
        )
    if method in ("houlsby", "pfeiffer", "parallel"):
        return make_config(
            method, reduction_factor=float(spec.reduction_factor), layers=spec.layers
        )
    return make_config(method)  # the other families at their defaults (benchmarks.method_speed)


def first_block(base: nn.Module) -> nn.Module:
    """The first transformer block (transformers 5 blocks are GradientCheckpointingLayers)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return next(m for m in base.modules() if isinstance(m, GradientCheckpointingLayer))


def _outputs_need_grad(_module: nn.Module, _inputs: Any, output: Any) -> None:
    """Make a block's hidden-state output a leaf that requires grad (in place)."""
    hidden = output[0] if isinstance(output, tuple) else output
    hidden.requires_grad_()


def build(spec: Spec, method: str) -> tuple[nn.Module, Forward, list[nn.Parameter], float]:
    """The model, its forward (batch -> hidden states), trainable parameters, baseline MiB."""
    base, baseline = build_base(spec)
    if spec.activation_checkpointing:
        enable_activation_checkpointing(base)
    if method == "floor":
        # The frozen base with gradients flowing back from the first block's output and
        # no adapter at all: less backward work than any adapter in every layer needs
        # (each needs at least that; Houlsby and LoRA also some of block 0), at the same
        # numerics. No implementation of those adapters can be faster than this row.
        base.requires_grad_(False)
        first_block(base).register_forward_hook(_outputs_need_grad)
        method = "base"
    if method in ("full", "base"):
        base.requires_grad_(method == "full")
        run = torch.compile(base, dynamic=True) if spec.compile else base

        def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return run(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state

        return base, forward, [p for p in base.parameters() if p.requires_grad], baseline
    if spec.base_dtype == "bf16":
        base.to(torch.bfloat16)  # frozen weights: half the memory, no per-step autocast casts
    model = AdaptedModel(base)
    model.add_adapter(ADAPTER, adapter_config(spec, method))
    if spec.base_dtype == "bf16":
        for param in model.adapter_parameters(ADAPTER).values():
            param.data = param.data.float()  # trainable weights and AdamW state stay fp32
    model.train_adapter(ADAPTER)
    model.train(base.training)
    if spec.compile:
        model.compile()  # routing the compiled graph traces: no break per wrapped layer

    def adapted_forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], adapter=ADAPTER
        ).last_hidden_state

    return base, adapted_forward, [p for p in model.parameters() if p.requires_grad], baseline


def train(spec: Spec) -> dict[str, Any]:
    """One training configuration; length grouping uses the library's own batch order."""
    base, forward, trainable, baseline = build(spec, spec.method)
    vocab = base.config.vocab_size
    batches = None
    if spec.group_by_length:
        lengths = [len(ids) for ids, _ in make_examples(spec, vocab)]
        order = epoch_batches(len(lengths), spec.batch_size, spec.seed, 0, lengths)
        batches = make_batches(spec, vocab, order)
    return train_benchmark(spec, base, forward, trainable, baseline, vocab, batches)


def inference(spec: Spec, repeats: int) -> dict[str, Any]:
    """Latency and throughput at batch 1 and 64 for base, each adapter unmerged, LoRA merged.

    Variants are timed round-robin so that drift in machine speed hits them alike.
    """
    spec = replace(spec, compile=False)
    plain = build_base(spec)[0].eval()
    variants: dict[str, nn.Module] = {"base": plain}
    for method in ("houlsby", "pfeiffer", "lora"):
        model = AdaptedModel(copy.deepcopy(plain))
        model.add_adapter(method, adapter_config(spec, method))
        variants[method] = model.eval()
    merged = AdaptedModel(copy.deepcopy(plain))
    merged.add_adapter("lora", adapter_config(spec, "lora"))
    merged.merge_adapter("lora")
    variants["lora-merged"] = merged.eval()

    spec = replace(spec, examples=max(64, spec.examples), group_by_length=False)
    examples = make_examples(spec, plain.config.vocab_size)
    lengths = [len(ids) for ids, _ in examples]
    median_example = sorted(range(len(lengths)), key=lengths.__getitem__)[len(lengths) // 2]
    batches = {
        1: collate(examples, [median_example], spec.device),
        64: collate(examples, batch_order(replace(spec, batch_size=64), lengths)[0], spec.device),
    }

    def call(name: str, batch: dict[str, torch.Tensor]) -> None:
        kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if name != "base":
            kwargs["adapter"] = "lora" if name == "lora-merged" else name
        variants[name](**kwargs)

    results: dict[str, Any] = {}
    with torch.inference_mode(), autocast(spec):
        for size, batch in batches.items():
            times: dict[str, list[float]] = {name: [] for name in variants}
            for round_ in range(repeats + 2):
                for name in variants:
                    sync(spec.device)
                    start = time.perf_counter()
                    call(name, batch)
                    sync(spec.device)
                    if round_ >= 2:  # the first two rounds warm caches and allocators
                        times[name].append(time.perf_counter() - start)
            tokens = int(batch["attention_mask"].sum())
            for name, values in times.items():
                latency = statistics.median(values)
                results[f"{name}@{size}"] = {
                    "variant": name,
                    "batch": size,
                    "latency_ms": 1000 * latency,
                    "tokens_per_s": tokens / latency,
                    "sequences_per_s": size / latency,
                    "latency_ms_all": [round(1000 * t, 3) for t in values],
                }
    return {"inference": results}


def scaling(spec: Spec) -> dict[str, Any]:
    """Training step cost against sequence length and against the number of adapted layers."""
    points = []
    for length in spec.extra.get("lengths", [64, 128, 256, 512]):
        for method in spec.extra.get("length_methods", ["full", "pfeiffer", "lora"]):
            point = replace(spec, method=method, fixed_length=length, max_length=length)
            base, forward, trainable, _ = build(point, method)
            row = train_benchmark(point, base, forward, trainable, 0.0, base.config.vocab_size)
            points.append({"curve": "length", "method": method, "length": length, **_slim(row)})
            print(f"length {length} {method}: {row['step_ms']:.1f} ms", flush=True)
    layers = build_base(spec)[0].config.num_hidden_layers
    counts = spec.extra.get("layer_counts") or list(range(1, layers + 1))
    for count in counts:
        for method in spec.extra.get("layer_methods", ["pfeiffer", "lora"]):
            top = list(range(layers - count, layers))  # adapters in the top `count` layers
            point = replace(
                spec, method=method, layers=top, fixed_length=spec.extra.get("layer_length", 128)
            )
            base, forward, trainable, _ = build(point, method)
            row = train_benchmark(point, base, forward, trainable, 0.0, base.config.vocab_size)
            points.append({"curve": "layers", "method": method, "layers": count, **_slim(row)})
            print(f"layers {count} {method}: {row['step_ms']:.1f} ms", flush=True)
    return {"scaling": points, "num_layers": layers}


def _slim(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("tokens_per_s", "step_ms", "flops_per_padded_token", "achieved_flops")
    return {k: row[k] for k in keep}


def dispatch(spec: Spec) -> dict[str, Any]:
    """Run the job that ``spec.extra["mode"]`` names."""
    mode = spec.extra.get("mode", "train")
    if mode == "inference":
        return inference(spec, int(spec.extra.get("repeats", 20)))
    if mode == "scaling":
        return scaling(spec)
    return train(spec)


if __name__ == "__main__":
    sys.exit(run_main(sys.argv[1:], dispatch))
