"""Continual learning with ``train --init-from``: how much an adapter forgets, and what helps.

Every number in docs/continual.md comes from this script:

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.continual            # all seeds
    .venv/bin/python -m benchmarks.continual --report-only                 # the page only

TREC-6 (the built-in, real questions) is cut into two label phases: phase 1 holds the
questions labelled ABBR, DESC and ENTY, phase 2 those labelled HUM, LOC and NUM (train,
validation and test split the same way). A Pfeiffer adapter on MiniLM (the defaults of
``adapterkit train``, nothing tuned) is trained on phase 1, then continued on phase 2
(``--init-from``) four ways:

- ``plain``: new data only;
- ``replay``: ``--replay phase1 --replay-ratio 0.2`` (a fifth of each epoch is old);
- ``anchor``: ``--anchor-weight 1``;
- ``joint``: not a continuation: one adapter trained on both phases at once (the bound).

Each is scored on the phase-1 test questions (old), the phase-2 ones (new) and all of
them. Forgetting is phase 1's old-test accuracy minus the continued adapter's. Three
seeds; runs land in runs/continual/ and finished runs are reused.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import torch

from adapterkit.cli import main as cli
from adapterkit.data import load_data
from adapterkit.train.config import TrainConfig
from adapterkit.train.options import JobSpec, RunOptions
from adapterkit.train.run import train_jobs

RUNS = Path("runs/continual")
DATA = RUNS / "data"
PHASES = {"phase1": ("ABBR", "DESC", "ENTY"), "phase2": ("HUM", "LOC", "NUM")}
WAYS = ("plain", "replay", "anchor", "joint")
SEEDS = (0, 1, 2)
MAX_LENGTH = 64  # TREC questions are short: 64 tokens cut none of them


def write_phases() -> None:
    """The two label phases (and both together) as CSV folders, from the built-in TREC-6."""
    if (DATA / "joint" / "test.csv").exists():
        return
    splits = load_data("trec", seed=0)
    parts = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    for phase, labels in {**PHASES, "joint": sum(PHASES.values(), ())}.items():
        folder = DATA / phase
        folder.mkdir(parents=True, exist_ok=True)
        for split, examples in parts.items():
            with (folder / f"{split}.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["text", "label"])
                for example in examples or []:
                    if example["label"] in labels:
                        writer.writerow([example["text"], example["label"]])


def train(out: Path, data: Path, seed: int, **continual: Any) -> dict[str, Any]:
    """One ``adapterkit train`` run with the defaults (or reuse it); its metrics."""
    done = out / "metrics.json"
    if done.exists():
        return json.loads(done.read_text())
    options = RunOptions(
        data=str(data),
        method="pfeiffer",  # the method docs/continual.md was measured with
        max_length=MAX_LENGTH,
        output=str(out),
        adapter_name=out.name,
        report_to=["none"],
        **continual,
    )
    print(f"\n### {out}", flush=True)
    train_jobs([JobSpec(out.name, options, TrainConfig(seed=seed))], out)
    return json.loads(done.read_text())


def test_accuracy(bundle: Path, phase: str) -> float:
    """The bundle's accuracy on one phase's test questions (``adapterkit evaluate``)."""
    out = bundle.parent / f"eval-{phase}"
    if not (out / "metrics.json").exists():
        code = cli(["evaluate", str(bundle), "--data", str(DATA / phase), "--output", str(out)])
        assert code == 0, f"evaluate {bundle} on {phase} failed"
    return float(json.loads((out / "metrics.json").read_text())["accuracy"])


def run_seed(seed: int) -> None:
    """Phase 1, then each way of learning phase 2, for one seed."""
    first = RUNS / f"seed{seed}" / "phase1"
    train(first, DATA / "phase1", seed)
    parent = str(first / "adapter")
    ways = {
        "plain": {},
        "replay": {"replay": str(DATA / "phase1"), "replay_ratio": 0.2},
        "anchor": {"anchor_weight": 1.0},
    }
    for way, extra in ways.items():
        out = RUNS / f"seed{seed}" / way
        train(out, DATA / "phase2", seed, init_from=parent, old_data=str(DATA / "phase1"), **extra)
    train(RUNS / f"seed{seed}" / "joint", DATA / "joint", seed)


def scores(seed: int) -> dict[str, dict[str, float]]:
    """Old, new and all-question test accuracy (in %) of every way, for one seed."""
    counts = {p: sum(1 for _ in (DATA / p / "test.csv").open()) - 1 for p in PHASES}
    table = {}
    for way in ("phase1", *WAYS):
        bundle = RUNS / f"seed{seed}" / way / "adapter"
        old = test_accuracy(bundle, "phase1")
        new = test_accuracy(bundle, "phase2") if way != "phase1" else float("nan")
        both = (old * counts["phase1"] + new * counts["phase2"]) / sum(counts.values())
        table[way] = {"old": 100 * old, "new": 100 * new, "all": 100 * both}
    return table


def write_report(path: Path) -> None:
    """docs/continual.md: median (min-max) over seeds of every way's old/new/all accuracy."""
    per_seed = [scores(seed) for seed in SEEDS]
    counts = {p: sum(1 for _ in (DATA / p / "test.csv").open()) - 1 for p in PHASES}
    lines = [
        "# Continual learning: forgetting with and without replay",
        "",
        "Written by `benchmarks/continual.py` (see its docstring for the commands). TREC-6",
        f"test questions: {counts['phase1']} of phase 1 (ABBR, DESC, ENTY), {counts['phase2']} of",
        "phase 2 (HUM, LOC, NUM). Pfeiffer adapter on MiniLM with `adapterkit train`'s defaults",
        f"(max length {MAX_LENGTH}); test accuracy in %, median (min-max) over seeds "
        f"{', '.join(map(str, SEEDS))}.",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}.",
        "",
        "| run | old (phase 1) | new (phase 2) | all | forgetting (old, points) |",
        "|---|---|---|---|---|",
    ]
    names = {
        "phase1": "phase 1 only (the parent)",
        "plain": "phase 2 `--init-from` parent",
        "replay": "... `--replay phase1 --replay-ratio 0.2`",
        "anchor": "... `--anchor-weight 1`",
        "joint": "both phases at once (bound)",
    }
    for way, name in names.items():
        cells = []
        for column in ("old", "new", "all"):
            cells.append(_cell([table[way][column] for table in per_seed]))
        lost = [table["phase1"]["old"] - table[way]["old"] for table in per_seed]
        cells.append("" if way == "phase1" else _cell(lost))
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += [
        "",
        "`all` weighs old and new by their question counts. Forgetting is the parent's old-test",
        "accuracy minus the run's, per seed (positive: forgotten).",
        "",
    ]
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def _cell(values: list[float]) -> str:
    if any(v != v for v in values):  # nan: not measured for this run
        return "-"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--out", default="docs/continual.md")
    args = parser.parse_args()
    write_phases()
    if not args.report_only:
        for seed in args.seeds:
            run_seed(seed)
    write_report(Path(args.out))


if __name__ == "__main__":
    main()
