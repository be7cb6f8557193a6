"""Verdicts on the switches that would make training faster: docs/switches.md.

Each switch (length grouping with even token weights, bf16 autocast on the CPU, no
attention-probability dropout) becomes a default only if it costs no quality beyond seed
noise. This page holds the evidence: the default method (LoRA) on TREC-6 and CoNLL-2003
at the quality benchmark's budget, 3 seeds with and without the switch, validation for
the decision and test reported. The runs come from benchmarks.quality (two processes
side by side, one thread each):

    OMP_NUM_THREADS=1 python -m benchmarks.quality --tasks conll2003 trec --methods lora \\
        --seeds 0 1 2 --out /tmp/ignored.md &
    OMP_NUM_THREADS=1 python -m benchmarks.quality --tasks conll2003 trec --methods lora \\
        --seeds 0 1 2 --variant grouped-even --out /tmp/ignored.md   # then bf16, no-attn-dropout
    python -m benchmarks.switches                                     # runs -> docs/switches.md

The rule, stated before the runs finished: a switch costs quality on a task when its
validation median falls below the median without it by more than seed noise, taken as
the larger of the two seed ranges (best minus worst seed). A switch holds when it costs
nothing on both tasks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
from pathlib import Path
from typing import NamedTuple

import torch

from benchmarks.quality_spec import RUNS, TASKS, VARIANTS, run_dir

SWITCHES = ("grouped-even", "bf16", "no-attn-dropout")
# Switches judged on another page, at the defaults of today rather than this page's fp32
# shuffled runs: the verdict, for a switch this page has too few seeds of.
JUDGED_ELSEWHERE = {
    "no-attn-dropout": "**kept off**. Judged at today's defaults (bf16 autocast, grouped "
    "batches) as the candidate `adapterkit-attn0` of docs/time_to_quality.md (`python -m "
    "benchmarks.time_to_quality`, 3 seeds): its validation score is within seed noise on "
    "both tasks there, so it costs no quality; but it buys little speed at today's defaults. "
    "Training in bf16 runs attention on the math kernel, where dropping the dropout saves "
    "only its own pass: the attention-kernels table of docs/benchmarks.md (its 'dropout 0.1 "
    "/ dropout 0 on math' column) has that at about a tenth of a training step or less at 32 "
    "tokens and fewer, the length of every TREC-6 question and most CoNLL-2003 sentences; "
    "the time-to-quality page's seconds per epoch agree on TREC-6. Too little to change the base's regularisation for every "
    "user; long inputs in fp32 gain the most from the switch (the fused kernel too)",
}
SEEDS = (0, 1, 2)
PAGE = Path("docs/switches.md")


class Arm(NamedTuple):
    """One side of a comparison: every finished seed's scores (x100) and train minutes."""

    validation: list[float]
    test: list[float]
    minutes: list[float]

    def cell(self, scores: list[float]) -> str:
        """'median (worst–best, n)', or '–' when no seed finished."""
        if not scores:
            return "–"
        return (
            f"{statistics.median(scores):.1f} ({min(scores):.1f}–{max(scores):.1f}, {len(scores)})"
        )

    @property
    def spread(self) -> float:
        """Best minus worst validation seed."""
        return max(self.validation) - min(self.validation) if self.validation else 0.0


def arm(task: str, method: str, variant: str | None, runs: Path = RUNS) -> Arm:
    """The finished seeds of (task, method[, variant])."""
    metric = TASKS[task]["metric"]
    validation, test, minutes = [], [], []
    for seed in SEEDS:
        folder = run_dir(task, method, seed, variant, runs)
        final, valid = folder / "metrics.json", folder / "validation_metrics.json"
        if not final.exists() or not valid.exists():
            continue
        metrics = json.loads(final.read_text())
        test.append(100 * metrics[metric])
        validation.append(100 * json.loads(valid.read_text())[metric])
        minutes.append(metrics["train_seconds"] / 60)
    return Arm(validation, test, minutes)


def verdict(without: Arm, switched: Arm) -> tuple[float, float, str]:
    """(validation median difference, seed noise, what it means)."""
    if len(without.validation) < 3 or len(switched.validation) < 3:
        return float("nan"), float("nan"), "not decided (fewer than 3 seeds)"
    diff = statistics.median(switched.validation) - statistics.median(without.validation)
    noise = max(without.spread, switched.spread)
    return diff, noise, "costs quality" if diff < -noise else "within seed noise"


def table(method: str, runs: Path = RUNS) -> tuple[list[str], dict[str, bool | None]]:
    """The page's table rows, and per switch whether it holds (None: not decided)."""
    rows = [
        "| switch | task | validation without | with | difference (noise) | "
        "verdict | test without | with | train minutes (without / with) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    holds: dict[str, bool | None] = {}
    for switch in SWITCHES:
        outcomes = []
        for task in TASKS:
            without, switched = arm(task, method, None, runs), arm(task, method, switch, runs)
            diff, noise, said = verdict(without, switched)
            outcomes.append(None if math.isnan(diff) else said == "within seed noise")
            minutes = [
                f"{statistics.median(a.minutes):.1f}" if a.minutes else "–"
                for a in (without, switched)
            ]
            rows.append(
                f"| `{VARIANTS[switch].flag}` | {task} | {without.cell(without.validation)} | "
                f"{switched.cell(switched.validation)} | "
                + ("–" if math.isnan(diff) else f"{diff:+.1f} ({noise:.1f})")
                + f" | {said} | {without.cell(without.test)} | {switched.cell(switched.test)} | "
                f"{' / '.join(minutes)} |"
            )
        holds[switch] = None if None in outcomes else all(outcomes)
    return rows, holds


def _adopted(switch: str) -> str:
    """', the trainer's default now' when TrainConfig's defaults are the switch's values
    (bf16: when ``--precision auto`` picks it on a CPU with native bf16)."""
    from adapterkit.train.config import TrainConfig

    default = TrainConfig()
    values = VARIANTS[switch].switches.items()
    if all(getattr(default, k) == v for k, v in values):
        return ", the trainer's default now"
    if dict(values) == {"precision": "bf16"} and default.precision == "auto":
        return ", the default now on CPUs with avx512_bf16 or AMX (`--precision auto`)"
    return ""


def small_data_lines() -> list[str]:
    """LoRA with and without grouping on the small sets of benchmarks.small_data_study
    (its ``lora-grouped`` row), when that study's runs are here."""
    from benchmarks.small_data_study import SWITCHED, collect

    runs = collect()
    rows = []
    for variant in sorted({r["variant"] for r in runs if r["method"] in SWITCHED}):
        cells = []
        for method in ("lora", *SWITCHED):
            scores = [
                r["validation"] for r in runs if r["variant"] == variant and r["method"] == method
            ]
            stuck = sum(
                r["stuck"] for r in runs if r["variant"] == variant and r["method"] == method
            )
            cells.append(
                f"{statistics.median(scores):.1f} (worst {min(scores):.1f}; stuck {stuck}/{len(scores)})"
                if scores
                else "–"
            )
        rows.append(f"| {variant} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "## On small data",
        "",
        "The same LoRA runs as docs/small_data_study.md (validation, 3 seeds, each its own "
        "subsample; every option at its default but the batching), without and with the "
        "grouping switch:",
        "",
        "| set | without | with `--group-by-length --loss-weighting even` |",
        "|---|---|---|",
        *rows,
        "",
    ]


def write_page(
    method: str = "lora", runs: Path = RUNS, page: Path = PAGE
) -> dict[str, bool | None]:
    """Write docs/switches.md; returns each switch's verdict (True: holds on both tasks).

    Raises:
        SystemExit: No run of any arm is under ``runs`` (a fresh clone, or runs cleaned
            away): the committed page keeps its numbers instead of turning blank.
    """
    if not any(
        arm(task, method, variant, runs).validation
        for task in TASKS
        for variant in (None, *SWITCHES)
    ):
        raise SystemExit(
            f"no finished runs of {method} under {runs} (see the docstring for the "
            f"commands): {page} is left as it is"
        )
    rows, holds = table(method, runs)
    said = {True: "holds on both tasks", False: "costs quality", None: "not decided"}
    lines = [
        "# Fast switches: do they cost quality?",
        "",
        f"Generated by `python -m benchmarks.switches` from the runs of `benchmarks.quality` "
        f"(see the script's docstring). Machine: {platform.machine()}, {os.cpu_count()} "
        f"cores, no GPU, torch {torch.__version__}; two runs side by side, one thread each. "
        "Method: "
        f"{method} at its defaults; TREC-6 (batch 32, max length 64, 5 epochs) and CoNLL-2003 "
        "(batch 16, max length 128, 2 epochs), early stopping on validation, the best epoch "
        "scored. Scores are median (worst–best, seeds).",
        "",
        "Each switch is compared with the same runs without it: shuffled batches, each a "
        "mean over its own items, fp32, the model's attention dropout (the trainer's "
        "defaults when these runs were made; `benchmarks.quality` pins them).",
        "",
        "Rule: a switch costs quality on a task when its validation median is below the "
        "median without it by more than seed noise (the larger of the two seed ranges); it "
        "holds when it costs nothing on both tasks. Train minutes come from runs that shared "
        "the machine with another run: a rough guide only (docs/benchmarks.md measures speed).",
        "",
        *rows,
        "",
        *[
            f"- `{VARIANTS[s].flag}`: "
            + (
                JUDGED_ELSEWHERE[s]
                if holds[s] is None and s in JUDGED_ELSEWHERE
                else f"**{said[holds[s]]}**{_adopted(s)}"
            )
            + "."
            for s in SWITCHES
        ],
        "",
        *small_data_lines(),
    ]
    page.write_text("\n".join(lines))
    return holds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="lora")
    parser.add_argument("--out", type=Path, default=PAGE)
    args = parser.parse_args()
    holds = write_page(args.method, page=args.out)
    print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in holds.items()))


if __name__ == "__main__":
    main()
