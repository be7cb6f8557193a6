"""AdapterFusion against each adapter alone: TREC-6 topics and movie sentiment.

Every number in docs/fusion.md comes from this script:

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.fusion [--seeds 0 1 2]
    .venv/bin/python -m benchmarks.fusion --report-only

One Pfeiffer adapter is trained per task on MiniLM (``adapterkit train`` defaults, 3 epochs,
max length 64; movie sentiment on a seeded sample of 4,000 training sentences to keep the
CPU time down); the TREC-6 one is benchmarks/merging.py's, shared. Then, for each task, a
fusion of the two frozen adapters with a new head is trained on that task
(``adapterkit train --fuse``, its defaults: lr 5e-5, and the same epochs), and both are
scored on the task's test split. Runs land in runs/fusion/ and are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch

from adapterkit.cli import main as cli
from benchmarks.merging import trained as trec_adapter

RUNS = Path("runs/fusion")
COMMON = ["--epochs", "3", "--max-length", "64", "--report-to", "none"]
TASKS = {"trec": [], "movie-sentiment": ["--max-train-samples", "4000"]}


def run(out: Path, argv: list[str]) -> dict:
    """One ``adapterkit train`` run (or its earlier metrics)."""
    if not (out / "metrics.json").exists():
        print(f"\n### {out}", flush=True)
        assert cli(["train", *argv, *COMMON, "--output", str(out)]) == 0, f"{out} failed"
    return json.loads((out / "metrics.json").read_text())


def adapters(seed: int) -> dict[str, Path]:
    """Each task's own adapter bundle for ``seed``."""
    sentiment = RUNS / f"movie-sentiment-seed{seed}"
    argv = ["--data", "movie-sentiment", *TASKS["movie-sentiment"], "--seed", str(seed)]
    run(sentiment, [*argv, "--method", "pfeiffer"])
    return {"trec": trec_adapter("pfeiffer", seed), "movie-sentiment": sentiment / "adapter"}


def scores(seed: int) -> dict[str, dict[str, float]]:
    """Test accuracy (%) of each task's adapter alone and of the fusion trained on it."""
    parts = adapters(seed)
    table = {}
    for task, extra in TASKS.items():
        alone = json.loads((parts[task].parent / "metrics.json").read_text())["accuracy"]
        fuse = ["--fuse", *map(str, parts.values())]
        fused = run(
            RUNS / f"fusion-{task}-seed{seed}", ["--data", task, *extra, *fuse, "--seed", str(seed)]
        )
        table[task] = {"alone": 100 * alone, "fusion": 100 * fused["accuracy"]}
    return table


def write_report(path: Path, seeds: list[int]) -> None:
    """docs/fusion.md: per task, the adapter alone against the fusion, per seed and median."""
    per_seed = {seed: scores(seed) for seed in seeds}
    lines = [
        "# AdapterFusion against each adapter alone",
        "",
        "Written by `benchmarks/fusion.py` (see its docstring). Test accuracy (%) on MiniLM;",
        "each fusion combines the frozen TREC-6 and movie-sentiment Pfeiffer adapters of its",
        f"seed. Seeds: {', '.join(map(str, seeds))}. Machine: {platform.machine()},",
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}.",
        "",
        "| task | seed | adapter alone | fusion of both | fusion - alone |",
        "|---|---|---|---|---|",
    ]
    for task in TASKS:
        for seed, table in per_seed.items():
            row = table[task]
            gap = row["fusion"] - row["alone"]
            lines.append(
                f"| {task} | {seed} | {row['alone']:.1f} | {row['fusion']:.1f} | {gap:+.1f} |"
            )
        if len(seeds) > 1:
            gaps = [t[task]["fusion"] - t[task]["alone"] for t in per_seed.values()]
            lines.append(f"| {task} | median | | | {statistics.median(gaps):+.1f} |")
    if len(seeds) < 3:
        lines += ["", f"{len(seeds)} seed(s) only: a measurement, not a quality claim."]
    lines.append("")
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--out", default="docs/fusion.md")
    args = parser.parse_args()
    if not args.report_only:
        for seed in args.seeds:
            scores(seed)
    write_report(Path(args.out), args.seeds)


if __name__ == "__main__":
    main()
