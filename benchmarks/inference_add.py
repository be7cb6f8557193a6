"""Adapter inference against the frozen base alone, and what the in-place add buys.

At inference the bottleneck adapters and LoRA add their up-projection into the frozen
layer's fresh output in place (``AdapterModule.owns_output``); out of place, ``addmm`` first
copies the whole output. This script times MiniLM forwards (no autograd, eval mode) of the
base alone, each adapter with the in-place add, and each adapter without it, every batch
running all three in turns so that drift in machine speed hits them alike; then a
serving-sized batch (16 short questions) routed to one adapter and to 16 adapters mixed.
Each in fp32 and in bf16 the way ``serve`` and ``predict`` run it by default on a CPU with
native bf16 (the frozen base stored in bf16, the forward under autocast; skipped where the
CPU has none). Nothing else may run; it writes docs/inference_add.md:

    .venv/bin/python -m benchmarks.inference_add
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from adapterkit.methods import make_config
from adapterkit.methods.bottleneck.layer import BottleneckAdapter
from adapterkit.methods.lora.layer import LoraAdapter
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer
from adapterkit.precision import cpu_has_bf16, inference_context, store_for_inference
from benchmarks.compiled import minilm_spec
from benchmarks.serve import TEXTS
from benchmarks.speed.measure import swapped
from benchmarks.speed.workload import make_batches

METHODS = ("houlsby", "pfeiffer", "lora")
OWNERS = (BottleneckAdapter, LoraAdapter)
DOCS = Path("docs/inference_add.md")
CPU = torch.device("cpu")


def adapted(method: str, precision: str, count: int = 1) -> AdaptedModel:
    """MiniLM with ``count`` adapters of ``method`` (random weights: speed does not depend
    on their values), in eval mode, its base stored as ``serve`` stores it in ``precision``."""
    model = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    for index in range(count):
        torch.manual_seed(index)
        model.add_adapter(f"a{index:02d}", make_config(method))
        with torch.no_grad():
            for param in model.adapter_parameters(f"a{index:02d}").values():
                param.normal_(std=0.02)
    store_for_inference(model, precision, CPU)
    return model.eval()


def _timed(run: Callable[..., object], *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    run(*args, **kwargs)
    return time.perf_counter() - start


def serving_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """16 short questions, as one batch of the server (benchmarks/serve.py's texts)."""
    rng = random.Random(seed)
    texts = [rng.choice(TEXTS) for _ in range(16)]
    return dict(load_tokenizer("minilm")(texts, padding=True, return_tensors="pt"))


@torch.no_grad()
def owned_ab(
    method: str, batch_size: int, steps: int, threads: int, precision: str
) -> dict[str, float]:
    """Median ms of the base, the adapter adding in place, and the adapter out of place;
    ``batch_size`` 16 is the serving batch, others the speed harness's batches."""
    spec = replace(minilm_spec(steps, threads), batch_size=batch_size)
    model = adapted(method, precision)
    if batch_size == 16:
        batches = [serving_batch()] * (spec.warmup + steps)
    else:
        batches = make_batches(spec, model.base.config.vocab_size)
    kinds = {"base": None, "in_place": "a00", "out_of_place": "a00"}  # kind -> adapter
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for index, batch in enumerate(batches):
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
        order = list(kinds)[index % 3 :] + list(kinds)[: index % 3]  # each kind leads in turn
        for kind in order:
            with (
                swapped(OWNERS, "owns_output", kind != "out_of_place"),
                inference_context(precision, CPU),
            ):
                seconds = _timed(model, **inputs, adapter=kinds[kind])
            if index >= spec.warmup:
                times[kind].append(seconds)
    return {kind: 1000 * statistics.median(values) for kind, values in times.items()}


@torch.no_grad()
def mixed_vs_one(method: str, rounds: int, precision: str) -> dict[str, float]:
    """Median ms of a 16-question batch routed to one adapter and to 16 adapters mixed."""
    model = adapted(method, precision, 16)
    inputs = serving_batch()
    rng = random.Random(0)
    routes = {"one": ["a00"] * 16, "mixed": [f"a{rng.randrange(16):02d}" for _ in range(16)]}
    times: dict[str, list[float]] = {kind: [] for kind in routes}
    for index in range(rounds + 4):
        for kind in routes if index % 2 == 0 else reversed(list(routes)):
            with inference_context(precision, CPU):
                seconds = _timed(model, **inputs, adapter=routes[kind])
            if index >= 4:
                times[kind].append(seconds)
    distinct = len(set(routes["mixed"]))
    return {"distinct": distinct} | {k: 1000 * statistics.median(v) for k, v in times.items()}


def write_report(owned: dict, mixed: dict, threads: int, steps: int) -> None:
    """docs/inference_add.md (and .json, from which ``--report-only`` rewrites the page):
    ``owned`` by (precision, method, batch), ``mixed`` by (precision, method)."""
    DOCS.with_suffix(".json").write_text(
        json.dumps(
            {
                "threads": threads,
                "steps": steps,
                "owned": [[*key, row] for key, row in owned.items()],
                "mixed": [[*key, row] for key, row in mixed.items()],
            },
            indent=1,
        )
        + "\n"
    )
    lines = [
        "# Adapter inference against the base alone",
        "",
        "Generated by `python -m benchmarks.inference_add` (see its docstring). Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, {threads} torch threads, no GPU, torch "
        f"{torch.__version__}. MiniLM, eval mode, no autograd; the speed harness's "
        f"batches (lengths up to 128) at batch 1 and 64, and at 16 one serving batch of short "
        f"questions (15 tokens); medians of {steps} batches after warm-up, the three kinds in "
        "turns on every batch. Each method at its defaults (`make_config(method)`; LoRA: "
        "rank 8 on the query, value, attention output and both FFN layers of every block). "
        "bf16 is what `serve` and `predict` run by default on a CPU with native bf16: the "
        "frozen base stored in bf16, the forward under autocast, adapters fp32 (below 64 "
        "rows LoRA and the bottleneck adapters compute their update in fp32: "
        "methods/projection.py).",
        "",
        "| precision | method | batch | base ms | in place ms | × base | out of place ms "
        "| × base |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (precision, method, batch), row in owned.items():
        lines.append(
            f"| {precision} | {method} | {batch} | {row['base']:.1f} | {row['in_place']:.1f} | "
            f"{row['in_place'] / row['base']:.3f} | {row['out_of_place']:.1f} | "
            f"{row['out_of_place'] / row['base']:.3f} |"
        )
    lines += [
        "",
        "A serving batch: 16 short questions routed to one adapter, then to 16 adapters "
        "mixed (the rows' adapters drawn at random), in turns:",
        "",
        "| precision | method | one adapter ms | 16 mixed ms (distinct in the batch) "
        "| one ÷ mixed |",
        "|---|---|---:|---:|---:|",
    ]
    for (precision, method), row in mixed.items():
        lines.append(
            f"| {precision} | {method} | {row['one']:.1f} | {row['mixed']:.1f} "
            f"({row['distinct']}) | {row['one'] / row['mixed']:.2f} |"
        )
    DOCS.write_text("\n".join(lines) + "\n")
    print(f"wrote {DOCS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed batches per row")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--report-only", action="store_true", help="rewrite the page from JSON")
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads(DOCS.with_suffix(".json").read_text())
        owned = {tuple(entry[:-1]): entry[-1] for entry in saved["owned"]}
        mixed = {tuple(entry[:-1]): entry[-1] for entry in saved["mixed"]}
        write_report(owned, mixed, saved["threads"], saved["steps"])
        return
    torch.set_num_threads(args.threads)
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    owned, mixed = {}, {}
    for precision in precisions:
        for method in METHODS:
            for batch in args.batches:
                row = owned_ab(method, batch, args.steps, args.threads, precision)
                owned[(precision, method, batch)] = row
                print(
                    precision, method, batch, {k: round(v, 2) for k, v in row.items()}, flush=True
                )
        for method in ("lora", "pfeiffer"):
            mixed[(precision, method)] = row = mixed_vs_one(method, 4 * args.steps, precision)
            print(precision, method, "mixed", {k: round(v, 2) for k, v in row.items()}, flush=True)
    write_report(owned, mixed, args.threads, args.steps)


if __name__ == "__main__":
    main()
