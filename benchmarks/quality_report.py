"""docs/results.md from the finished runs of benchmarks.quality: scores, seed medians, targets."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import torch

from benchmarks.doc_blocks import owned_blocks
from benchmarks.quality_spec import (
    ADAPTERS,
    BEST_PEER_ADAPTER,
    FULL_GAP,
    FULL_MODEL_BYTES,
    MAX_BUNDLE_PERCENT,
    MAX_TRAINABLE_PERCENT,
    METHODS,
    PEERS,
    RUNS,
    TASKS,
    VARIANTS,
    run_dir,
)


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def seed_scores(task: str, method: str, runs: Path = RUNS) -> list[float]:
    """The test metric (x100) of every finished seed of (task, method), seed 0 first."""
    metric = TASKS[task]["metric"]
    paths = [runs / f"{task}-{method}", *sorted(runs.glob(f"{task}-{method}-seed*"))]
    found = (_load(p / "metrics.json") for p in paths)
    return [100 * m[metric] for m in found if m is not None]


def seeds_cell(task: str, method: str, runs: Path = RUNS) -> str:
    """'median (min–max, n)' where other seeds ran, else '—'."""
    scores = seed_scores(task, method, runs)
    if len(scores) < 2:
        return "—"
    return f"{statistics.median(scores):.1f} ({min(scores):.1f}–{max(scores):.1f}, {len(scores)})"


def validation_cell(method: str, runs: Path = RUNS) -> str:
    """Seed 0's validation score of each task (the best epoch's), 'TREC / CoNLL'."""
    cells = []
    for task, spec in TASKS.items():
        metrics = _load(run_dir(task, method, 0, runs=runs) / "validation_metrics.json")
        cells.append(f"{100 * metrics[spec['metric']]:.1f}" if metrics else "–")
    return " / ".join(cells)


def _headline(task: str, method: str, runs: Path) -> tuple[float, int] | None:
    """The score a target is judged on: the median over finished seeds, and their count."""
    scores = seed_scores(task, method, runs)
    return (statistics.median(scores), len(scores)) if scores else None


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def target_lines(runs: Path = RUNS) -> list[str]:
    """The issue's targets, judged per adapter on test medians over the seeds that ran."""
    rows = []
    for method in ADAPTERS:
        cells = []
        for task in TASKS:
            ours = _headline(task, method, runs)
            cells.append(
                f"{ours[0]:.1f} (n={ours[1]}): {_verdict(ours[0] >= BEST_PEER_ADAPTER[task])}"
                if ours
                else "not run"
            )
        for task in TASKS:
            ours, full = _headline(task, method, runs), _headline(task, "full", runs)
            if ours and full:
                gap = ours[0] - full[0]
                cells.append(f"{gap:+.2f}: {_verdict(gap >= -FULL_GAP)}")
            else:
                cells.append("not run")
        finished = [
            m
            for task in TASKS
            if (m := _load(run_dir(task, method, 0, runs=runs) / "metrics.json")) is not None
        ]
        if not finished:
            continue
        trainable = max(m["trainable_percent"] for m in finished)
        bundle = 100 * max(m["bundle_bytes"] for m in finished) / FULL_MODEL_BYTES
        cells.append(f"{trainable:.2f} %: {_verdict(trainable <= MAX_TRAINABLE_PERCENT)}")
        cells.append(f"{bundle:.1f} %: {_verdict(bundle <= MAX_BUNDLE_PERCENT)}")
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    trec, conll = (BEST_PEER_ADAPTER[t] for t in TASKS)
    return [
        "## Against the issue's targets",
        "",
        "Judged on the test median over the seeds that ran (n); 'vs full' is that median minus "
        "`full`'s median on the same task. Trainable % and bundle: the larger of the two tasks.",
        "",
        f"| method | TREC-6 >= {trec} (best peer adapter) | CoNLL-2003 >= {conll} (best peer adapter) | "
        f"TREC-6 vs full (>= -{FULL_GAP}) | CoNLL-2003 vs full (>= -{FULL_GAP}) | "
        f"trainable <= {MAX_TRAINABLE_PERCENT:g} % | bundle <= {MAX_BUNDLE_PERCENT:g} % |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def variant_lines(variant: str, runs: Path = RUNS) -> list[str]:
    """A table of one VARIANTS entry's runs against the default, where any ran."""
    rows = []
    for method in METHODS:
        cells, minutes = [], []
        for task, spec in TASKS.items():
            switched = _load(run_dir(task, method, 0, variant, runs) / "metrics.json")
            default = _load(run_dir(task, method, 0, None, runs) / "metrics.json")
            if switched is None:
                cells.append("not run")
                minutes.append("–")
                continue
            score = 100 * switched[spec["metric"]]
            cell, time_cell = f"{score:.1f}", f"{switched['train_seconds'] / 60:.1f}"
            if default is not None:
                cell += f" ({score - 100 * default[spec['metric']]:+.1f})"
                time_cell += f" ({default['train_seconds'] / 60:.1f})"
            cells.append(cell)
            minutes.append(time_cell)
        if any(c != "not run" for c in cells):
            rows.append(f"| {method} | " + " | ".join(cells) + " | " + " / ".join(minutes) + " |")
    if not rows:
        return []
    flag, what = VARIANTS[variant].flag, VARIANTS[variant].what
    return [
        f"## With `{flag}` (`--variant {variant}` here)",
        "",
        f"The same runs (seed 0) with {what} In parentheses: the difference to the default runs "
        "above, and the default's train minutes.",
        "",
        "| method | "
        + " | ".join(f"{t} test {s['metric']}" for t, s in TASKS.items())
        + " | train minutes (TREC / CoNLL) |",
        "|---|" + "---|" * (len(TASKS) + 1),
        *rows,
        "",
    ]


def score_rows(runs: Path = RUNS) -> list[str]:
    """One row per method with a finished seed-0 run."""
    rows = []
    for method in METHODS:
        cells = {}
        for task, spec in TASKS.items():
            metrics = _load(run_dir(task, method, 0, runs=runs) / "metrics.json")
            if metrics is not None:
                cells[task] = (metrics, spec["metric"])
        if not cells:
            continue
        any_metrics = next(iter(cells.values()))[0]
        score = {
            t: f"{100 * cells[t][0][cells[t][1]]:.1f}" if t in cells else "not run" for t in TASKS
        }
        bundle = max(m["bundle_bytes"] for m, _ in cells.values())
        minutes = " / ".join(f"{m['train_seconds'] / 60:.1f}" for m, _ in cells.values())
        rows.append(
            f"| {method} | {score['trec']} | {seeds_cell('trec', method, runs)} | "
            f"{score['conll2003']} | {seeds_cell('conll2003', method, runs)} | "
            f"{validation_cell(method, runs)} | {any_metrics['trainable_percent']:.2f} | "
            f"{bundle / 1e6:.2f} MB ({100 * bundle / FULL_MODEL_BYTES:.1f} %) | "
            f"{any_metrics['lr']:g} | {minutes} |"
        )
    return rows


def write_report(path: Path, runs: Path = RUNS, title: str = "Quality results") -> None:
    """docs/results.md (or another page, titled ``title``) from every finished run under ``runs``."""
    lines = [
        f"# {title}",
        "",
        "Generated by `python -m benchmarks.quality` (see its docstring); rerun it to reproduce every number.",
        "Medians over 3 or more seeds of every method, the second wave's too, with the goal's table "
        "(within 0.5 of full at <= 2 % trainable), are in docs/results_sweep.md (`python -m "
        "benchmarks.quality_sweep`); quality against trainable % in docs/frontier.md, each method "
        "beside peft's in docs/peft_methods.md, the default method per task type in "
        "docs/default_method.md. This page holds the first CPU runs of the first wave.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU, torch {torch.__version__}; the runs "
        "went as two processes side by side (`--shard 0/2` and `--shard 1/2`, OMP_NUM_THREADS=1 each). "
        "Model: all-MiniLM-L6-v2 (`minilm`). Seed 0 unless a seeds column says otherwise. Default "
        "hyperparameters of each method (no --lr, no method options given; how they were chosen: "
        "docs/defaults_study.md and docs/defaults_study_methods.md), shuffled batches (`--no-group-by-length --loss-weighting batch`: the default when these runs were made; docs/switches.md compares today's default, grouped batches with even token weights). TREC-6: batch "
        "32, max length 64, 5 epochs, test = the standard 500 questions. "
        "CoNLL-2003: batch 16, max length 128, 2 epochs, entity-level F1 by the conlleval rules (seqeval's "
        "default mode; strict-IOB2 F1 is in each run's metrics.json as strict_f1) on the standard test set. "
        "Early stopping (patience 2) on the validation split; the best epoch is evaluated.",
        "",
        "| method | TREC-6 test acc | TREC-6 over seeds: median (range, n) | CoNLL-2003 test F1 | "
        "CoNLL-2003 over seeds | validation, seed 0 (TREC / CoNLL) | trainable % (TREC) | "
        "bundle (% of full model file) | lr | train minutes (TREC / CoNLL) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *score_rows(runs),
        "",
        "TREC-6's test set has 500 questions (one question = 0.2 points), so single-seed differences "
        "under ~1 point are noise; `--seeds 0 1 2` adds runs with other seeds (initialisation, "
        "shuffling, dropout) and the seeds columns give their median. "
        "Validation is the split early stopping watched (TREC-6: 545 questions carved from train "
        "with a fixed seed, the same for every run; CoNLL-2003: the standard validation set), at "
        "the best epoch. More seeds of these defaults, and candidates for other defaults, run side "
        "by side on a GPU: docs/results_sweep.md (`python -m benchmarks.quality_sweep`).",
        "",
        "Trainable % counts the adapter plus its task head over base + adapter + head. The `full` bundle holds the "
        "whole model; the adapter bundles hold the adapter and head only. Train minutes are the training loop's "
        "time (with the per-epoch validation, without the final evaluations) at one torch thread beside "
        "a second run: they are not a speed benchmark (see docs/benchmarks.md).",
        "",
        *target_lines(runs),
        *[line for variant in VARIANTS for line in variant_lines(variant, runs)],
        "## Peer reference points (quoted from the issue, measured elsewhere; not produced by this script)",
        "",
        "| method | TREC-6 test acc | CoNLL-2003 test F1 | trainable % |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in PEERS],
        "",
    ]
    for kept in owned_blocks(path.read_text()) if path.exists() else []:
        lines += [kept, ""]  # the blocks other benchmarks write into this page
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")
