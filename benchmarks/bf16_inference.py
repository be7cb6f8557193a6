"""Does bf16 inference give the answers fp32 gives? ``python -m benchmarks.bf16_inference``.

On CPUs with native bf16, ``--precision auto`` trains, evaluates, predicts and serves in
bf16 autocast; this script is the evidence that made it the inference default.
benchmarks.attention_kernels measured the evaluation forward 1.7-2.9x faster in bf16 on
such a CPU, but the answers must agree too: this script takes the bundles that
``python -m benchmarks.time_to_quality`` trained with adapterkit's defaults (3 seeds per
task, runs/time_to_quality/<task>/adapterkit-seed<N>/adapter), scores each one on its
task's test split in fp32, in bf16 autocast, and in bf16 autocast over a base whose frozen
linear layers are stored in bf16 (interleaved repeats), and reports how many predictions
change, the metric in each precision and the evaluation time. Then it times one forward
of the TREC-6 seed-0 bundle at the batch sizes a server and ``predict`` see (1 and 16
questions) and evaluation's 64: autocast alone casts every frozen fp32 weight to bf16 on
every call, a fixed cost that small batches do not earn back. Writes
docs/bf16_inference.md (and .json); run it on a quiet machine for the times
(``--latency-only`` times the forwards again and keeps the last run's scores).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.speed.machine import machine_info

RUNS = Path("runs/time_to_quality")
PAGE = Path("docs/bf16_inference.md")
TASKS = ("trec", "conll2003")
SEEDS = (0, 1, 2)


def _units(prediction: Any) -> list[Any]:
    """The units a prediction is made of: a tag per word for NER, else the whole answer."""
    return list(prediction) if isinstance(prediction, list) else [prediction]


def _agreement(first: list[Any], second: list[Any]) -> dict[str, float]:
    """Share of examples predicted alike, and of units (words for NER) predicted alike."""
    same = sum(a == b for a, b in zip(first, second, strict=True))
    pairs = [
        (u, v)
        for a, b in zip(first, second, strict=True)
        for u, v in zip(_units(a), _units(b), strict=True)
    ]
    return {
        "examples_same": same / len(first),
        "units_same": sum(u == v for u, v in pairs) / len(pairs),
        "units": len(pairs),
    }


# How each arm runs: (precision passed to evaluation, base stored in bf16 first).
ARMS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "stored": ("bf16", True)}


def _load_arms(bundle: Path) -> dict[str, tuple[Any, str, Any]]:
    """(model, adapter name, task) per arm: the fp32 and bf16 arms share one fp32 model."""
    from adapterkit.predict import load_for_inference

    plain, stored = (load_for_inference(bundle, precision=p) for p in ("fp32", "bf16"))
    return {arm: stored if low else plain for arm, (_, low) in ARMS.items()}


def score_bundle(task_name: str, bundle: Path, repeats: int) -> dict[str, Any]:
    """One bundle on its test split in fp32, in bf16 autocast, and in bf16 autocast over a
    base stored in bf16 (what ``evaluate`` does): metrics, agreement, median seconds."""
    from adapterkit.data import load_data
    from adapterkit.tasks.base import encode_examples
    from adapterkit.train.evaluate import evaluate_features

    loaded = _load_arms(bundle)
    _, name, task = loaded["fp32"]
    examples = load_data(task_name, task=task.task_type).test
    features = encode_examples(task, examples)
    references = task.references(examples)
    runs: dict[str, dict[str, Any]] = {arm: {"seconds": []} for arm in ARMS}
    for _ in range(repeats):
        for arm, run in runs.items():
            model = loaded[arm][0]
            start = time.perf_counter()
            metrics, _, predictions = evaluate_features(
                model, name, task, features, references, precision=ARMS[arm][0]
            )
            run["seconds"].append(time.perf_counter() - start)
            run["metrics"], run["predictions"] = metrics, predictions
    metric = "f1" if task.task_type == "token-classification" else "accuracy"
    stored_same = runs["stored"]["predictions"] == runs["bf16"]["predictions"]
    return {
        "task": task_name,
        "bundle": str(bundle),
        "metric": metric,
        "examples": len(examples),
        **{arm: 100 * run["metrics"][metric] for arm, run in runs.items()},
        **{f"{arm}_seconds": statistics.median(run["seconds"]) for arm, run in runs.items()},
        "stored_predicts_as_autocast": stored_same,
    } | _agreement(runs["fp32"]["predictions"], runs["bf16"]["predictions"])


LATENCY_BATCHES = (1, 16, 64)


def forward_latency(bundle: Path, steps: int) -> list[dict[str, Any]]:
    """Median ms of one task-head forward (no autograd) per batch size for each arm, the
    arms in turns on every step."""
    from adapterkit.data import load_data
    from adapterkit.precision import inference_context
    from adapterkit.tasks.base import encode_examples
    from adapterkit.train.evaluate import task_forward

    loaded = _load_arms(bundle)
    _, name, task = loaded["fp32"]
    features = encode_examples(task, load_data("trec", task=task.task_type).test)
    cpu = torch.device("cpu")
    rows = []
    for size in LATENCY_BATCHES:
        batch = task.collate(features[:size])
        times: dict[str, list[float]] = {arm: [] for arm in ARMS}
        with torch.no_grad():
            for step in range(steps + 3):
                for arm, seen in times.items():
                    model = loaded[arm][0].eval()
                    start = time.perf_counter()
                    with inference_context(ARMS[arm][0], cpu):
                        task_forward(model, name, task, batch)
                    if step >= 3:  # the first calls warm up
                        seen.append(1000 * (time.perf_counter() - start))
        row = {"batch": size, "tokens": int(batch["attention_mask"].sum())}
        rows.append(row | {f"{arm}_ms": statistics.median(v) for arm, v in times.items()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def write_page(
    results: list[dict[str, Any]],
    machine: dict[str, Any],
    repeats: int,
    latency: list[dict[str, Any]],
    page: Path = PAGE,
    latency_rerun: str | None = None,
) -> None:
    """docs/bf16_inference.md: a row per bundle, the per-task summary, the forward times
    (``latency_rerun``: the date they were measured again alone, ``--latency-only``)."""
    lines = [
        "# bf16 inference against fp32",
        "",
        "Generated by `python -m benchmarks.bf16_inference` (see its docstring). "
        f"Machine: {json.dumps(machine)}. Bundles: adapterkit's defaults from "
        "benchmarks.time_to_quality (MiniLM, seeds 0-2), scored on the standard test split "
        "by `evaluate_features` (batch 64, rows in length order) in three arms: **fp32**; "
        "**bf16**, `torch.autocast('cpu', bfloat16)` over the fp32 base, which casts every "
        "frozen weight on every call (what validation during training does); **stored**, the "
        "same autocast over a base whose frozen linear layers are stored in bf16 once "
        "(`AdaptedModel.store_base_low`: what `evaluate`, `predict` and `serve` do). "
        f"{repeats} interleaved repeats, median seconds.",
        "",
        "| task | seed | test examples | fp32 | bf16 | examples predicted alike | "
        "units alike | stored predicts as bf16 | fp32 s | bf16 s | stored s | "
        "fp32 ÷ stored time |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['task']} ({r['metric']}) | {r['seed']} | {r['examples']:,} | {r['fp32']:.2f} | "
            f"{r['bf16']:.2f} | {100 * r['examples_same']:.2f} % | {100 * r['units_same']:.3f} % "
            f"of {r['units']:,} | {'yes' if r['stored_predicts_as_autocast'] else '**no**'} | "
            f"{r['fp32_seconds']:.2f} | {r['bf16_seconds']:.2f} | {r['stored_seconds']:.2f} | "
            f"{r['fp32_seconds'] / r['stored_seconds']:.2f}x |"
        )
    lines += ["", "Units are words for CoNLL-2003 (one tag each) and questions for TREC-6.", ""]
    for task in TASKS:
        rows = [r for r in results if r["task"] == task]
        if not rows:
            continue
        gap = [r["bf16"] - r["fp32"] for r in rows]
        autocast = [r["fp32_seconds"] / r["bf16_seconds"] for r in rows]
        stored = [r["fp32_seconds"] / r["stored_seconds"] for r in rows]
        lines.append(
            f"- {task}: bf16 minus fp32 {min(gap):+.2f} to {max(gap):+.2f} points over "
            f"{len(rows)} seeds; examples predicted alike "
            f"{100 * min(r['examples_same'] for r in rows):.2f} % or more; evaluation "
            f"{statistics.median(autocast):.2f}x faster than fp32 in bf16 autocast, "
            f"{statistics.median(stored):.2f}x with the base stored in bf16 (medians)."
        )
    lines += [
        "",
        "## One forward, by batch size",
        "",
        "The TREC-6 seed-0 bundle (LoRA), the first test questions as one batch, no "
        "autograd; median ms of the timed calls, the three arms in turns"
        + (
            f" (measured again alone on {latency_rerun}, `--latency-only`):"
            if latency_rerun
            else ":"
        ),
        "",
        "| batch | tokens | fp32 ms | bf16 ms | stored ms | fp32 ÷ bf16 time | "
        "fp32 ÷ stored time |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['batch']} | {r['tokens']:,} | {r['fp32_ms']:.1f} | {r['bf16_ms']:.1f} | "
        f"{r['stored_ms']:.1f} | {r['fp32_ms'] / r['bf16_ms']:.2f}x | "
        f"{r['fp32_ms'] / r['stored_ms']:.2f}x |"
        for r in latency
    ]
    page.write_text("\n".join(lines) + "\n")
    record = {"machine": machine, "repeats": repeats, "results": results, "latency": latency}
    if latency_rerun:
        record["latency_rerun"] = latency_rerun
    page.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {page}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="timed forwards per batch size")
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="time the forwards again, keeping the scored bundles of the last run's JSON",
    )
    args = parser.parse_args()
    trec_bundle = RUNS / "trec" / "adapterkit-seed0" / "adapter"
    if args.latency_only:
        saved = json.loads(PAGE.with_suffix(".json").read_text())
        latency = forward_latency(trec_bundle, args.steps)
        today = datetime.date.today().isoformat()
        write_page(saved["results"], saved["machine"], saved["repeats"], latency, PAGE, today)
        return
    results = []
    for task in args.tasks:
        for seed in SEEDS:
            bundle = RUNS / task / f"adapterkit-seed{seed}" / "adapter"
            if not bundle.exists():
                raise SystemExit(f"{bundle} is missing: run python -m benchmarks.time_to_quality")
            result = score_bundle(task, bundle, args.repeats) | {"seed": seed}
            print(json.dumps(result), flush=True)
            results.append(result)
    latency = forward_latency(trec_bundle, args.steps)
    write_page(results, machine_info(torch.get_num_threads()), args.repeats, latency)


if __name__ == "__main__":
    main()
