"""Quality benchmark: TREC-6 accuracy and CoNLL-2003 F1 per method on the real MiniLM.

Every number in docs/results.md comes from this script:

    .venv/bin/python -m benchmarks.quality                       # everything (~3 CPU hours: ~1.5 h as two shards)
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.quality --shard 0/2 &   # or two halves
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.quality --shard 1/2     # side by side
    .venv/bin/python -m benchmarks.quality --tasks trec --methods lora
    .venv/bin/python -m benchmarks.quality --grouped --seeds 0    # the length-grouped comparison
    .venv/bin/python -m benchmarks.quality --report-only          # rebuild the table from runs/quality

Each (task, method) run uses the method's default hyperparameters (what a user who
passes no --lr gets), seed 0, and the budget of the peer reference runs quoted in
the issue: TREC batch 32, max length 64, 5 epochs; CoNLL batch 16, max length 128,
2 epochs. Runs land in runs/quality/<task>-<method>/ (metrics.json, report.md,
curves, bundle); finished runs are reused unless --rerun is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
from pathlib import Path

import torch

from adapterkit.train.config import TrainConfig
from adapterkit.train.run import RunOptions, train_adapter_run

TASKS = {
    "trec": {"data": "trec", "metric": "accuracy", "batch_size": 32, "max_length": 64, "epochs": 5},
    "conll2003": {
        "data": "conll2003",
        "metric": "f1",
        "batch_size": 16,
        "max_length": 128,
        "epochs": 2,
    },
}
METHODS = ["head", "full", "houlsby", "pfeiffer", "lora"]
RUNS = Path("runs/quality")
# benchmarks.generation_quality owns this block of docs/results.md; keep it on rewrites.
GENERATION_SECTION = re.compile(
    r"<!-- generation-quality:start -->.*?<!-- generation-quality:end -->", re.DOTALL
)
FULL_MODEL_BYTES = 90_868_376  # MiniLM's model.safetensors in the wheel

# Peer reference points quoted in the issue (same MiniLM, seed 0): not produced here.
PEERS = [
    ("full fine-tuning, lr 5e-5 (HF Trainer)", "96.8", "85.0", "100"),
    ("head only, lr 1e-3", "41.0", "—", "0.01"),
    ("peft LoRA r=8 query/value, lr 5e-4", "93.0", "77.5", "0.33"),
    ("AdapterHub Pfeiffer rf 16, lr 1e-3", "96.4", "81.5", "1.15"),
    ("AdapterHub Houlsby rf 16, lr 1e-3", "96.4", "—", "1.63"),
]


def run_dir(task: str, method: str, seed: int, grouped: bool = False) -> Path:
    """runs/quality/<task>-<method> for seed 0 (the headline run), ...-seed<N> for others;
    ``-grouped`` before the seed for runs with length-grouped batches."""
    name = f"{task}-{method}" + ("-grouped" if grouped else "")
    return RUNS / (name if seed == 0 else f"{name}-seed{seed}")


def run_one(task: str, method: str, rerun: bool, seed: int = 0, grouped: bool = False) -> dict:
    """Train and evaluate one (task, method, seed), or reuse its finished run."""
    spec = TASKS[task]
    out = run_dir(task, method, seed, grouped)
    metrics_path = out / "metrics.json"
    if metrics_path.exists() and not rerun:
        return json.loads(metrics_path.read_text())
    options = RunOptions(
        data=spec["data"], method=method, max_length=spec["max_length"], output=str(out)
    )
    config = TrainConfig(
        epochs=spec["epochs"], batch_size=spec["batch_size"], seed=seed, group_by_length=grouped
    )
    print(f"\n### {task} / {method} / seed {seed}" + (" / grouped" if grouped else ""), flush=True)
    return train_adapter_run(options, config)


def seed_scores(task: str, method: str) -> list[float]:
    """The test metric of every finished seed of (task, method), seed 0 first."""
    metric = TASKS[task]["metric"]
    paths = [RUNS / f"{task}-{method}", *sorted(RUNS.glob(f"{task}-{method}-seed*"))]
    return [
        100 * json.loads((p / "metrics.json").read_text())[metric]
        for p in paths
        if (p / "metrics.json").exists()
    ]


def seeds_cell(task: str, method: str) -> str:
    """'median (min-max, n seeds)' where other seeds ran, else '-'."""
    scores = seed_scores(task, method)
    if len(scores) < 2:
        return "—"
    return f"{statistics.median(scores):.1f} ({min(scores):.1f}–{max(scores):.1f}, {len(scores)})"


def grouped_lines() -> list[str]:
    """A table of the length-grouped runs (``--grouped``) against the default, where any ran."""
    rows = []
    for method in METHODS:
        cells, minutes = [], []
        for task, spec in TASKS.items():
            grouped, plain = (run_dir(task, method, 0, g) / "metrics.json" for g in (True, False))
            if not grouped.exists():
                cells.append("not run")
                minutes.append("–")
                continue
            metrics = json.loads(grouped.read_text())
            score = 100 * metrics[spec["metric"]]
            cell, time_cell = f"{score:.1f}", f"{metrics['train_seconds'] / 60:.1f}"
            if plain.exists():
                default = json.loads(plain.read_text())
                cell += f" ({score - 100 * default[spec['metric']]:+.1f})"
                time_cell += f" ({default['train_seconds'] / 60:.1f})"
            cells.append(cell)
            minutes.append(time_cell)
        if any(c != "not run" for c in cells):
            rows.append(f"| {method} | " + " | ".join(cells) + " | " + " / ".join(minutes) + " |")
    if not rows:
        return []
    return [
        "## With length-grouped batches (`--group-by-length`, `--grouped` here)",
        "",
        "The same runs with training batches grouped by length (seed 0); in parentheses the "
        "difference to the default shuffled batches above, and the default's train minutes. "
        "Grouping pads less, so it trains faster; it is off by default for what it costs in quality.",
        "",
        "| method | "
        + " | ".join(f"{t} test {s['metric']}" for t, s in TASKS.items())
        + " | train minutes (TREC / CoNLL) |",
        "|---|" + "---|" * (len(TASKS) + 1),
        *rows,
        "",
    ]


def write_report(path: Path) -> None:
    """docs/results.md from every finished run under runs/quality."""
    rows = []
    for method in METHODS:
        cells = {}
        for task, spec in TASKS.items():
            metrics_path = RUNS / f"{task}-{method}" / "metrics.json"
            if metrics_path.exists():
                cells[task] = (json.loads(metrics_path.read_text()), spec["metric"])
        if not cells:
            continue
        any_metrics = next(iter(cells.values()))[0]
        score = {
            t: f"{100 * m[k]:.1f}" if t in cells else "not run"
            for t, (m, k) in {t: cells.get(t, ({}, "")) for t in TASKS}.items()
        }
        bundle = max(m["bundle_bytes"] for m, _ in cells.values())
        minutes = " / ".join(f"{m['train_seconds'] / 60:.1f}" for m, _ in cells.values())
        rows.append(
            f"| {method} | {score['trec']} | {seeds_cell('trec', method)} | {score['conll2003']} | "
            f"{any_metrics['trainable_percent']:.2f} | "
            f"{bundle / 1e6:.2f} MB ({100 * bundle / FULL_MODEL_BYTES:.1f} %) | {any_metrics['lr']:g} | {minutes} |"
        )
    lines = [
        "# Quality results",
        "",
        "Generated by `python -m benchmarks.quality` (see its docstring); rerun it to reproduce every number.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU, torch {torch.__version__}; the runs "
        "went as two processes side by side (`--shard 0/2` and `--shard 1/2`, OMP_NUM_THREADS=1 each). "
        "Model: all-MiniLM-L6-v2 (`minilm`). Seed 0. Default hyperparameters of each method (no --lr, no "
        "method options given; how they were chosen: docs/defaults_study.md), shuffled batches (the "
        "default: no length grouping). TREC-6: batch 32, max length 64, 5 epochs, test = the standard 500 questions. "
        "CoNLL-2003: batch 16, max length 128, 2 epochs, entity-level F1 by the conlleval rules (seqeval's "
        "default mode; strict-IOB2 F1 is in each run's metrics.json as strict_f1) on the standard test set. "
        "Early stopping (patience 2) on the validation split; the best epoch is evaluated.",
        "",
        "| method | TREC-6 test acc | TREC-6 over seeds: median (range, n) | CoNLL-2003 test F1 | "
        "trainable % (TREC) | bundle (% of full model file) | lr | train minutes (TREC / CoNLL) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "TREC-6's test set has 500 questions (one question = 0.2 points), so single-seed differences "
        "under ~1 point are noise; `--seeds 0 1 2` adds runs with other seeds (initialisation, "
        "shuffling, dropout, the carved validation split) and the seeds column gives their median.",
        "",
        "Trainable % counts the adapter plus its task head over base + adapter + head. The `full` bundle holds the "
        "whole model; the adapter bundles hold the adapter and head only. Train minutes are the training loop's "
        "time (with the per-epoch validation, without the final evaluations) at one torch thread beside "
        "a second run: they are not a speed benchmark (see docs/benchmarks.md).",
        "",
        *grouped_lines(),
        "## Peer reference points (quoted from the issue, measured elsewhere; not produced by this script)",
        "",
        "| method | TREC-6 test acc | CoNLL-2003 test F1 | trainable % |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in PEERS],
        "",
    ]
    kept = GENERATION_SECTION.search(path.read_text()) if path.exists() else None
    if kept:
        lines += [kept.group(0), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument(
        "--rerun", action="store_true", help="train again even when a finished run exists"
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild docs/results.md")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="seeds to run (default: 0 only)"
    )
    parser.add_argument(
        "--shard",
        default="0/1",
        help="I/N: run every N-th (task, method) pair from I, to run N processes side by side",
    )
    parser.add_argument(
        "--grouped",
        action="store_true",
        help="train with length-grouped batches instead (runs/quality/<task>-<method>-grouped)",
    )
    parser.add_argument("--out", default="docs/results.md")
    args = parser.parse_args()
    index, count = (int(x) for x in args.shard.split("/"))
    if not args.report_only:
        runs = [(t, m, seed) for seed in args.seeds for t in args.tasks for m in args.methods]
        for task, method, seed in runs[index::count]:
            run_one(task, method, args.rerun, seed, args.grouped)
            write_report(Path(args.out))
    write_report(Path(args.out))


if __name__ == "__main__":
    main()
