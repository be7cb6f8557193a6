"""Do the defaults hold on small data? Every method with its defaults on seeded subsamples.

Every number in docs/small_data_study.md comes from this script:

    rm -rf runs/small_data_study/claims
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.small_data_study &
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.small_data_study
    .venv/bin/python -m benchmarks.small_data_study --report-only

Each worker claims a run before training it (runs/small_data_study/claims/), so workers
started side by side share the list; remove the claims after an interrupted study.

Each run is what a user gets from ``adapterkit train --data D --max-train-samples N
--method M --seed S`` with nothing else set: default learning rate, epochs (5, or more to
reach 300 optimizer steps), patience and early stopping. The seed also draws the
subsample, so three seeds are three different small data sets. Only the validation split
is looked at (the test split is held out: these runs choose defaults). A run counts as
stuck when its best validation score is no better than the trivial predictor's (the
run's ``learned_nothing``). Runs land in runs/small_data_study/ and finished runs are
reused; docs/small_data_study.json keeps every finished run's record, so runs of earlier
sessions count (and are not trained again) after their folders are gone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import torch

from adapterkit.train.config import TrainConfig
from adapterkit.train.options import JobSpec, RunHooks, RunOptions
from adapterkit.train.run import train_jobs
from benchmarks.quality_spec import MEASURED_AS
from benchmarks.rare_entities import write_rare_variant

RUNS = Path("runs/small_data_study")
# variant -> (built-in data set, training examples, validation examples cap, metric);
# RARE's data is built per seed as user files (benchmarks/rare_entities.py), already cut.
RARE = "conll2003-rare-1000"
VARIANTS: dict[str, tuple[str, int | None, int | None, str]] = {
    "trec-500": ("trec", 500, None, "accuracy"),
    "movie-sentiment-500": ("movie-sentiment", 500, None, "accuracy"),
    "conll2003-1000": ("conll2003", 1000, 500, "f1"),
    "trec-2000": ("trec", 2000, None, "accuracy"),
    "movie-sentiment-2000": ("movie-sentiment", 2000, None, "accuracy"),
    "conll2003-2000": ("conll2003", 2000, 500, "f1"),
    RARE: ("conll2003", None, None, "f1"),
}
# The first wave's four methods, then the other families (issue #22), each at its defaults.
METHODS = (
    "pfeiffer",
    "houlsby",
    "parallel",
    "lora",
    "ia3",
    "dora",
    "adalora",
    "prompt",
    "prefix",
    "mam",
    "unipelt",
)
# Rows that are a method with training switches, beside the methods at their defaults:
# whether a switch that would become a default (length grouping with even token weights,
# docs/switches.md) holds on small data too.
SWITCHED: dict[str, tuple[str, dict[str, Any]]] = {
    "lora-grouped": ("lora", {"group_by_length": True, "loss_weighting": "even"}),
}
ROWS = (*METHODS, *SWITCHED)
SEEDS = (0, 1, 2)


def run_one(
    variant: str, method: str, seed: int, recorded: frozenset[tuple[str, str, int]] = frozenset()
) -> None:
    """Train one method on one variant and seed, unless it is done (here, or ``recorded``
    in the study's JSON by an earlier session) or another worker has it."""
    data, samples, eval_cap, _ = VARIANTS[variant]
    out = RUNS / f"{variant}-{method}-seed{seed}"
    if (out / "metrics.json").exists() or (variant, method, seed) in recorded:
        return
    try:  # a claim: workers started side by side (--claim) never train the same run twice
        (RUNS / "claims").mkdir(parents=True, exist_ok=True)
        (RUNS / "claims" / out.name).mkdir()
    except FileExistsError:
        return
    if variant == RARE:
        folder, summary = write_rare_variant(RUNS / "data" / f"conll2003-rare-seed{seed}", seed)
        data = str(folder)
        print(f"{folder}: {summary}", flush=True)
    base_method, switches = SWITCHED.get(method, (method, {}))
    options = RunOptions(
        data=data,
        method=base_method,
        max_train_samples=samples,
        max_eval_samples=eval_cap,
        output=str(out),
        adapter_name=f"{variant}-{method}",
        report_to=["none"],
    )
    print(f"\n### {variant} / {method} / seed {seed}", flush=True)
    config = TrainConfig(seed=seed, **MEASURED_AS | switches)
    spec = JobSpec(f"{variant}-{method}", options, config)
    train_jobs([spec], out, resume=False, hooks=RunHooks(hold_out_test=True))


def collect() -> list[dict[str, Any]]:
    """Every finished run: variant, method, seed, validation score (percent), stuck, epochs."""
    found = []
    for variant, (_, _, _, metric) in VARIANTS.items():
        for method in ROWS:
            for seed in SEEDS:
                path = RUNS / f"{variant}-{method}-seed{seed}" / "metrics.json"
                if path.exists():
                    run = json.loads(path.read_text())
                    found.append(
                        {
                            "variant": variant,
                            "method": method,
                            "seed": seed,
                            "metric": metric,
                            "validation": round(100 * run[metric], 2),
                            "stuck": bool(run.get("learned_nothing")),
                            "epochs": run["epochs_run"],
                        }
                        | _per_type(variant, run)
                    )
    return found


def merge_runs(kept: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded runs with ``new`` ones added, a rerun replacing its earlier record: runs
    of earlier sessions live on in the JSON after their folders are gone. In table order."""

    def key(run: dict[str, Any]) -> tuple[str, str, int]:
        return run["variant"], run["method"], run["seed"]

    fresh = {key(run) for run in new}
    merged = [run for run in kept if key(run) not in fresh] + new
    order = {name: i for i, name in enumerate([*VARIANTS, *ROWS])}
    return sorted(merged, key=lambda r: (order[r["variant"]], order[r["method"]], r["seed"]))


# The report's tables: heading -> variants.
TABLES = {
    "500 and 1,000 examples": ["trec-500", "movie-sentiment-500", "conll2003-1000"],
    "2,000 examples, and rare entity types": [
        "trec-2000",
        "movie-sentiment-2000",
        "conll2003-2000",
        RARE,
    ],
}


def _cell(runs: list[dict[str, Any]]) -> str:
    """Median, worst seed, stuck runs and epochs of one method on one variant."""
    if not runs:
        return "not run"
    if len(runs) < len(SEEDS):
        scores = ", ".join(f"{r['validation']:.1f}" for r in runs)
        return f"{scores} ({len(runs)} of {len(SEEDS)} seeds run)"
    scores = [r["validation"] for r in runs]
    stuck = sum(r["stuck"] for r in runs)
    epochs = sorted({r["epochs"] for r in runs})
    return (
        f"{statistics.median(scores):.1f} (worst {min(scores):.1f}; stuck {stuck}/"
        f"{len(runs)}; epochs {', '.join(map(str, epochs))})"
    )


def _table(every: list[dict[str, Any]], heading: str, variants: list[str]) -> list[str]:
    """One table: a row per method that ran on any of ``variants``."""
    header = " | ".join(f"{v} validation {VARIANTS[v][3]}" for v in variants)
    rows, unrun = [], []
    for method in ROWS:
        cells = [
            _cell([r for r in every if r["variant"] == v and r["method"] == method])
            for v in variants
        ]
        if all(cell == "not run" for cell in cells):
            unrun.append(method)
        else:
            rows.append(f"| {method} | " + " | ".join(cells) + " |")
    lines = [f"## {heading}", "", f"| method | {header} |", "|---|" + "---|" * len(variants)]
    lines += rows or ["| (none run yet) |" + " |" * len(variants)]
    if unrun:
        lines += ["", f"Not run on these: {', '.join(unrun)}."]
    return [*lines, ""]


def _per_type(variant: str, run: dict[str, Any]) -> dict[str, Any]:
    """The rare variant's score per entity type (percent): its point is the rare types."""
    if variant != RARE or not isinstance(run.get("per_type"), dict):
        return {}
    return {"per_type": {k: round(100 * v["f1"], 1) for k, v in run["per_type"].items()}}


def _per_type_lines(every: list[dict[str, Any]]) -> list[str]:
    """Per method on the rare variant: each entity type's median F1 (worst seed)."""
    lines = []
    for method in METHODS:
        runs = [r for r in every if r["variant"] == RARE and r["method"] == method]
        if len(runs) < len(SEEDS) or any("per_type" not in r for r in runs):
            continue
        cells = []
        for kind in sorted(runs[0]["per_type"]):
            scores = [r["per_type"].get(kind, 0.0) for r in runs]
            cells.append(f"{kind} {statistics.median(scores):.1f} (worst {min(scores):.1f})")
        lines.append(f"- {method}: " + ", ".join(cells))
    if not lines:
        return []
    return [f"Per entity type on {RARE} (validation F1, median over the seeds):", "", *lines, ""]


def write_report(path: Path) -> None:
    """docs/small_data_study.md (and .json, every run): median and worst validation score
    per method and variant."""
    runs_json = path.with_suffix(".json")
    every = json.loads(runs_json.read_text()) if runs_json.exists() else []
    if RUNS.exists():  # runs finished here join (or replace) those the JSON holds already
        every = merge_runs(every, collect())
        runs_json.write_text(json.dumps(every, indent=1) + "\n")
    lines = [
        "# Do the defaults hold on small data?",
        "",
        "Generated by `python -m benchmarks.small_data_study` (see its docstring for the commands). "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU, torch {torch.__version__}. "
        "Real MiniLM, every option at its default but the method (`adapterkit train --data D "
        "--max-train-samples N --method M --seed S`) and the batching (shuffled, each batch "
        "a mean over its items: the default when the study ran; `--no-group-by-length "
        "--loss-weighting batch` now), seeds 0, 1 and 2 (each draws its own "
        "subsample). Validation only; CoNLL-2003 validation capped at 500 sentences. "
        f"{RARE}: 1,000 training and 500 validation sentences of CoNLL-2003 in which the two "
        "entity types with the fewest mentions (MISC, ORG) were thinned to about 10 % of the "
        "mentions (benchmarks/rare_entities.py), given as user files. Cells: median "
        "over the seeds (worst seed; runs stuck at the trivial predictor; epochs the runs took, "
        "set by the 300-step budget and early stopping).",
        "",
    ]
    for heading, variants in TABLES.items():
        lines += _table(every, heading, variants)
    lines += _per_type_lines(every)
    lines += [
        "`not run` and `N of 3 seeds run` mark runs left out for CPU time, not failures; "
        "docs/default_method.md ranks the methods with 3 seeds everywhere. "
        + " ".join(
            f"`{row}` is {method} with {', '.join(f'{k} {v}' for k, v in switches.items())} "
            "(docs/switches.md)."
            for row, (method, switches) in SWITCHED.items()
        ),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(ROWS))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--out", default="docs/small_data_study.md")
    args = parser.parse_args()
    if not args.report_only:
        saved = Path(args.out).with_suffix(".json")
        recorded = frozenset(
            (r["variant"], r["method"], r["seed"])
            for r in (json.loads(saved.read_text()) if saved.exists() else [])
        )
        runs = [(v, m, s) for s in SEEDS for v in args.variants for m in args.methods]
        for variant, method, seed in runs:
            run_one(variant, method, seed, recorded)
    write_report(Path(args.out))


if __name__ == "__main__":
    main()
