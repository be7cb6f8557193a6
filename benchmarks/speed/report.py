"""Ratio tables, goal checks, the scaling plot and the docs section of the speed benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.doc_blocks import put_block

START, END = "<!-- speed-benchmark:start -->", "<!-- speed-benchmark:end -->"
PEERS = {"lora": "peft", "pfeiffer": "adapterhub", "houlsby": "adapterhub"}
ADAPTERS = ("houlsby", "pfeiffer", "lora")
# Written before measuring, so that each attempt is judged against what we expected.
PREDICTIONS = {
    "group_by_length": "~1.3x tokens/s: the padded share of tokens falls from ~35 % to a few %",
    "no_attn_dropout": "~1.1x tokens/s, ~0.8x memory: SDPA runs its fused CPU flash kernel "
    "instead of softmax + dropout on (B, H, T, T), and keeps no attention probabilities",
    "checkpointing": "~0.75x tokens/s (one more forward pass), ~0.4x memory: only block "
    "inputs are kept for the backward pass",
    "bf16": "1.3-2x on matmuls (avx512_bf16, no AMX); less overall (casts, fp32 ops)",
    "bf16+bf16_base": "as bf16, plus no per-step weight casts; frozen weights take half the memory",
    "all": "bf16 + bf16_base + group_by_length together: the product of their gains",
    "compile": "inductor's fused element-wise ops against eager kernels; long first-step compile",
}
FLOP_FORMULA = (
    "FLOPs per step = 2·N·T (forward) + 2·N_grad·T (input gradients, only in layers at or "
    "above the lowest trainable point) + 2·N_train·T (weight gradients, trainable matrices "
    "only) + attention score/value terms; N = parameters in matrix multiplications (not "
    "embeddings), T = padded tokens. Full fine-tuning: N_grad = N_train = N, so ≈ 6·N·T; "
    "adapters in every layer: ≈ 4·N·T; adapters only in the top k of L layers: "
    "≈ (2 + 2k/L)·N·T. The GFLOP column is counted by torch.utils.flop_counter on a real step."
)


NOTES = [
    "- **No gradient work below the lowest adapted layer** needs no switch: autograd "
    "records no backward for ops whose inputs need no gradient, so an explicit stop-gradient "
    "below the lowest adapter changes neither gradients nor counted FLOPs "
    "(`tests/bench/test_speed_switches.py`). The adapted-layers curve shows what it saves.",
    "- **Frozen weights carry no optimizer state and save no activations for weight "
    "gradients**: AdamW only sees trainable parameters, and a frozen `Linear` saves no input "
    "for backward (2.25 MiB instead of 14.25 MiB for one 64×128×384→1536 layer).",
    "- **torch.compile** (`--compile`, `AdaptedModel.compile()`): the compiled forward reads "
    "its routing from a value dynamo traces, so no wrapped layer breaks the graph (one graph "
    "for MiniLM). Whether it pays, for training and for serving, is measured side by side "
    "in docs/compiled.md (`python -m benchmarks.compiled`). Not on by default.",
    "- **Caching frozen lower-layer outputs** when adapters sit only in upper layers: not "
    "attempted (it needs a partial forward per architecture, and is exact only with dropout "
    "off in the frozen layers); the adapted-layers curve bounds its gain.",
    "- **The floor row** is the frozen base with gradients flowing back from its first block's "
    "output and no adapter: the matmul work that every adapter in every layer needs at least "
    "(`tests/bench/test_speed_harness.py` checks its FLOPs are no more than any adapter's). Its "
    "ratios bound what any implementation can reach at these numerics. Each method's own "
    "bound is tighter: the floor's FLOPs over the method's (the 'at most' lines). An adapter "
    "inside the first block needs gradients through that block's layers, which the floor "
    "skips, so Houlsby and LoRA on the query and value fall short of the floor by their "
    "first block's backward even at a perfect implementation. One run of 12 steps moves "
    "'of it' by several points; docs/method_speed.md gives the same bound for every method "
    "at its defaults.",
    "- **No attention dropout** (`adapterkit train --attention-dropout 0`; off by default "
    "because it changes the regularisation; its test scores beside the default's are in "
    "docs/results.md, `--variant no-attn-dropout`): with "
    "dropout on, SDPA on CPU takes the math path and keeps the (B, H, T, T) probabilities for "
    "backward; at 0 it runs the fused flash kernel. The 'with no_attn_dropout' lines above "
    "judge it against the targets. That holds in fp32, as here; in bf16 the fused kernel's "
    "backward is the slower one, so bf16 training keeps the math kernel (the attention-kernels "
    "section below).",
    "- **Activation checkpointing** (`--activation-checkpointing`, `adapterkit.checkpointing`): "
    "blocks are recomputed in the backward pass inside a copy of the call's context, so the "
    "recompute keeps the adapter routing (the stock checkpoint recomputes without adapters).",
    "- **Batched adapter ops for mixed batches**: from 3 distinct adapters in one batch, each "
    "layer runs them row-batched (`AdapterModule.forward_rows`: weights gathered per row, two "
    "batched matmuls) instead of a group of small ops per adapter; it serves the Serving section's "
    "16-adapter row. Training runs one adapter per batch, so it does not touch these tables.",
]


def _find(rows: list[dict], tool: str, method: str, variant: str = "plain") -> dict | None:
    for row in rows:
        if (row["tool"], row["method"], row["variant"]) == (tool, method, variant):
            return row if "error" not in row else None
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "–" if value is None else pattern.format(value)


def training_table(model: dict[str, Any], peaks: dict[str, float]) -> list[str]:
    """Markdown rows: throughput, memory and FLOP utilisation, as ratios to full and to the peer."""
    rows = model["training"]
    full = _find(rows, "ours", "full")
    lines = [
        "| tool | method | variant | non-pad tok/s | × full | × peer | step ms | non-pad share | peak MiB | mem × full | trainable | GFLOP/1k tok | % of matmul peak |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(
                f"| {row['tool']} | {row['method']} | {row['variant']} | {row['error']} |||||||||"
            )
            continue
        peer = (
            _find(rows, PEERS.get(row["method"], ""), row["method"], row["variant"])
            if row["tool"] == "ours"
            else None
        )
        precision = row["spec"]["precision"]
        lines.append(
            f"| {row['tool']} | {row['method']} | {row['variant']} | {row['tokens_per_s']:,.0f} "
            f"| {_fmt(_ratio(row['tokens_per_s'], full and full['tokens_per_s']))} "
            f"| {_fmt(_ratio(row['tokens_per_s'], peer and peer['tokens_per_s']))} "
            f"| {row['step_ms']:.1f} | {row['nonpad_share']:.0%} | {row['peak_mb']:,.0f} "
            f"| {_fmt(_ratio(row['peak_mb'], full and full['peak_mb']))} "
            f"| {row['trainable_params']:,} | {row['flops_per_padded_token'] / 1e6:.2f} "
            f"| {100 * row['achieved_flops'] / peaks[precision]:.1f} |"
        )
    return lines


def inference_table(inference: dict[str, Any]) -> list[str]:
    """Markdown rows: latency at batch 1 and 64 against the base alone."""
    if "error" in inference:
        return [f"inference: {inference['error']}"]
    table = inference["inference"]
    lines = [
        "| variant | batch 1 ms | × base | batch 64 ms | × base | batch 64 tok/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("base", "houlsby", "pfeiffer", "lora", "lora-merged"):
        one, many = table[f"{name}@1"], table[f"{name}@64"]
        lines.append(
            f"| {name} | {one['latency_ms']:.2f} | {one['latency_ms'] / table['base@1']['latency_ms']:.3f} "
            f"| {many['latency_ms']:.1f} | {many['latency_ms'] / table['base@64']['latency_ms']:.3f} "
            f"| {many['tokens_per_s']:,.0f} |"
        )
    return lines


def _spread(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[(3 * len(ordered)) // 4] - ordered[len(ordered) // 4]


def goals(name: str, model: dict[str, Any]) -> list[str]:
    """One line per target of the issue, with the measured ratio and whether it is met."""
    rows, lines = model["training"], []
    full = _find(rows, "ours", "full")

    def check(label: str, value: float | None, ok: bool | None) -> None:
        mark = "n/a" if value is None else ("met" if ok else "**not met**")
        lines.append(f"- {name}: {label}: {_fmt(value)} — {mark}")

    for method in ADAPTERS:
        ours, peer = _find(rows, "ours", method), _find(rows, PEERS[method], method)
        speed = _ratio(ours and ours["tokens_per_s"], full and full["tokens_per_s"])
        check(f"{method} tokens/s ÷ full (≥ 1.5)", speed, speed is not None and speed >= 1.5)
        versus = _ratio(ours and ours["tokens_per_s"], peer and peer["tokens_per_s"])
        check(
            f"{method} tokens/s ÷ {PEERS[method]} (≥ 1.2)",
            versus,
            versus is not None and versus >= 1.2,
        )
        memory = _ratio(ours and ours["peak_mb"], full and full["peak_mb"])
        check(f"{method} peak memory ÷ full (≤ 0.6)", memory, memory is not None and memory <= 0.6)
    # The floor row (frozen base, backward from its first block, no adapter) bounds what any
    # implementation of an adapter in every layer can reach at the same numerics.
    floor = _find(rows, "ours", "floor")
    bound = _ratio(floor and floor["tokens_per_s"], full and full["tokens_per_s"])
    if bound is not None:
        lines.append(f"- {name}: bound: frozen-base floor tokens/s ÷ full: {bound:.2f}")
    for method in ADAPTERS:
        peer = _find(rows, PEERS[method], method)
        bound = _ratio(floor and floor["tokens_per_s"], peer and peer["tokens_per_s"])
        if bound is not None:
            lines.append(
                f"- {name}: bound: frozen-base floor tokens/s ÷ {PEERS[method]} {method}: "
                f"{bound:.2f} (no {method} at these numerics can beat {PEERS[method]} by more)"
            )
    for method in ADAPTERS:  # the floor's FLOPs over the method's: its own, tighter bound
        ours = _find(rows, "ours", method)
        flops = _ratio(
            floor and floor.get("flops_per_padded_token"),
            ours and ours.get("flops_per_padded_token"),
        )
        reached = _ratio(ours and ours["tokens_per_s"], floor and floor["tokens_per_s"])
        if flops is not None and reached is not None:
            lines.append(
                f"- {name}: bound: {method} tokens/s ÷ floor at most {flops:.3f} (the floor's "
                f"FLOPs per token over {method}'s); reached {reached:.3f}, "
                f"{reached / flops:.3f} of it"
            )
    floor_memory = _ratio(floor and floor["peak_mb"], full and full["peak_mb"])
    if floor_memory is not None:
        lines.append(
            f"- {name}: bound: frozen-base floor peak memory ÷ full: {floor_memory:.2f} "
            "(the activations any adapter in every layer must keep)"
        )
    lines += switch_lines(name, rows)
    inference = model["inference"].get("inference")
    if inference:
        base = inference["base@64"]
        for method in ("houlsby", "pfeiffer"):
            ratio = inference[f"{method}@64"]["latency_ms"] / base["latency_ms"]
            check(f"{method} unmerged batch-64 latency ÷ base (≤ 1.05)", ratio, ratio <= 1.05)
        merged = inference["lora-merged@64"]
        noise = max(_spread(base["latency_ms_all"]), _spread(merged["latency_ms_all"]))
        ratio = merged["latency_ms"] / base["latency_ms"]
        within = abs(merged["latency_ms"] - base["latency_ms"]) <= noise
        check(
            f"merged LoRA batch-64 latency ÷ base (within noise, IQR {noise:.2f} ms)", ratio, within
        )
    return lines


def switch_lines(name: str, rows: list[dict[str, Any]]) -> list[str]:
    """Each adapter row with an optimisation switch on, against the full-fine-tuning targets:
    ÷ plain full (what the targets name) and ÷ full with the same switch (the fair pair)."""
    full = _find(rows, "ours", "full")
    if full is None:
        return []
    lines = []
    for row in rows:
        if row["tool"] != "ours" or row["method"] not in ADAPTERS or row["variant"] == "plain":
            continue
        if "error" in row:
            continue
        speed = _ratio(row["tokens_per_s"], full["tokens_per_s"])
        memory = _ratio(row["peak_mb"], full["peak_mb"])
        same = _find(rows, "ours", "full", row["variant"])
        fair = _ratio(row["tokens_per_s"], same and same["tokens_per_s"])
        lines.append(
            f"- {name}: {row['method']} with {row['variant']}: tokens/s ÷ plain full "
            f"{_fmt(speed)} ({'met' if speed >= 1.5 else 'not met'} at ≥ 1.5)"
            + (f", ÷ full with {row['variant']} {_fmt(fair)}" if fair is not None else "")
            + f"; memory ÷ plain full {_fmt(memory)} ({'met' if memory <= 0.6 else 'not met'} at ≤ 0.6)"
        )
    return lines


def attempts(rows: list[dict[str, Any]]) -> list[str]:
    """Each optimisation variant against the plain row of the same method."""
    if all(row["variant"] == "plain" for row in rows):
        return ["No optimisation rows on this model (`--all-variants` adds them)."]
    lines = [
        "| attempt | tool | method | predicted | measured tok/s × plain | memory × plain |",
        "|---|---|---|---|---:|---:|",
    ]
    for row in rows:
        if row["variant"] == "plain" or "error" in row:
            continue
        plain = _find(rows, row["tool"], row["method"])
        lines.append(
            f"| {row['variant']} | {row['tool']} | {row['method']} | {PREDICTIONS.get(row['variant'], '')} "
            f"| {_fmt(_ratio(row['tokens_per_s'], plain and plain['tokens_per_s']))} "
            f"| {_fmt(_ratio(row['peak_mb'], plain and plain['peak_mb']))} |"
        )
    return lines


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Everything the terminal and the docs show, as markdown lines."""
    peaks = results["matmul_peak"]
    lines = [
        f"Machine: {json.dumps(results['machine'])}; matmul peak fp32 {peaks['fp32'] / 1e9:.0f} "
        f"GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s.",
        "Quiet machine: yes"
        if results["quiet"]
        else f"**Quiet machine: NO** — other processes were busy ({results['busy_before'] + results['busy_during']}); "
        "these timings are not results.",
    ]
    for name, model in results["models"].items():
        settings = model["settings"]
        lines += [
            "",
            f"### {name} (batch {settings['batch_size']}, lengths ≤ {settings['max_length']}, "
            f"{settings['steps']} timed steps after {settings['warmup']} warm-up, {settings['precision']})"
            + (
                ""
                if not model.get("busy")
                else " — **machine busy during these rows: not results**"
            ),
            "",
            *training_table(model, peaks),
            "",
            *inference_table(model["inference"]),
            "",
            *goals(name, model),
            "",
            *attempts(model["training"]),
        ]
    scaling = results.get("scaling")
    if scaling and "error" not in scaling:
        lines += ["", *scaling_lines(scaling)]
    return lines


def scaling_lines(scaling: dict[str, Any]) -> list[str]:
    """The scaling points as a table."""
    lines = [
        "| curve | method | length / adapted layers | step ms | non-pad tok/s |",
        "|---|---|---:|---:|---:|",
    ]
    for point in scaling["scaling"]:
        where = point.get("length", point.get("layers"))
        lines.append(
            f"| {point['curve']} | {point['method']} | {where} | {point['step_ms']:.1f} | {point['tokens_per_s']:,.0f} |"
        )
    return lines


def section(results: dict[str, Any], plot: Path | None, docs: Path) -> str:
    """The whole "Training and inference speed" section, between its markers."""
    body = [
        START,
        "## Training and inference speed",
        "",
        f"Command: `{results['command'].strip()}` (started {results['started']}). Rows of one model use the "
        "same batches, batch size and lengths; each runs in its own process. Throughput is the "
        "median over timed steps of non-pad tokens/s; peak memory is the process's resident "
        "high-water mark during training less its size before the weights were made (CPU) or "
        "`max_memory_allocated` (CUDA).",
        "",
        FLOP_FORMULA,
        "",
        *summary_lines(results),
        "",
        "Notes on the optimisation ideas:",
        "",
        *NOTES,
    ]
    if plot is not None and plot.exists():
        body += ["", f"![training cost scaling]({plot.relative_to(docs.parent)})"]
    body += [
        "",
        f"Every measured row, with its settings: [{json_path(docs).name}]({json_path(docs).name}).",
        END,
    ]
    return "\n".join(body) + "\n"


def json_path(docs: Path) -> Path:
    """Where the run's full JSON is written beside the docs page (docs/benchmarks_speed.json)."""
    return docs.with_name(f"{docs.stem}_speed.json")


def replace_section(docs: Path, text: str) -> None:
    """Put ``text`` between our markers in ``docs``, keeping every other section as it is."""
    put_block(docs, text)


def write_section(results: dict[str, Any], docs: Path, plot: Path | None) -> None:
    """Write the results section into ``docs`` and the full JSON beside it."""
    replace_section(docs, section(results, plot, docs))
    json_path(docs).write_text(json.dumps(results, indent=1) + "\n")
