"""Does ``adapterkit merge`` keep accuracy? Two seeds of one adapter, averaged, against each.

Every number in docs/merging.md comes from this script:

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.merging
    .venv/bin/python -m benchmarks.merging --report-only

A Pfeiffer adapter and a LoRA on MiniLM are trained on TREC-6 (the built-in, real
questions) with ``adapterkit train``'s defaults (3 epochs, max length 64) for seeds 0, 1
and 2; each pair of seeds is then merged with ``adapterkit merge`` (equal weights, the
heads averaged too, as the command does when the labels match) and scored on the test
split. The seed draws the adapter's and head's initial weights and the batch order, so
two seeds are two independent trainings. Runs land in runs/merging/ and are reused.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
from pathlib import Path

import torch

from adapterkit.cli import main as cli

RUNS = Path("runs/merging")
METHODS = ("pfeiffer", "lora")
SEEDS = (0, 1, 2)
COMMON = ["--data", "trec", "--epochs", "3", "--max-length", "64", "--report-to", "none"]


def trained(method: str, seed: int) -> Path:
    """The bundle of one method and seed (trained unless it already is)."""
    out = RUNS / f"{method}-seed{seed}"
    if not (out / "metrics.json").exists():
        print(f"\n### {out}", flush=True)
        argv = ["train", *COMMON, "--method", method, "--seed", str(seed), "--output", str(out)]
        assert cli(argv) == 0, f"training {out} failed"
    return out / "adapter"


def test_accuracy(bundle: Path) -> float:
    """Test accuracy of a bundle (``adapterkit evaluate``), cached beside it."""
    out = bundle.parent / f"eval-{bundle.name}"
    if not (out / "metrics.json").exists():
        assert cli(["evaluate", str(bundle), "--data", "trec", "--output", str(out)]) == 0
    return 100 * float(json.loads((out / "metrics.json").read_text())["accuracy"])


def merged(method: str, first: int, second: int) -> Path:
    """The equal-weight merge of two seeds' bundles."""
    out = RUNS / f"{method}-merge{first}{second}" / "adapter"
    if not out.exists():
        parts = [str(trained(method, s)) for s in (first, second)]
        assert cli(["merge", *parts, "--out", str(out)]) == 0, f"merging into {out} failed"
    return out


def write_report(path: Path) -> None:
    """docs/merging.md: each seed, each merged pair, and the pair's better and worse seed."""
    lines = [
        "# Merging two seeds of one adapter",
        "",
        "Written by `benchmarks/merging.py` (see its docstring). TREC-6 test accuracy (%) on",
        f"MiniLM, `adapterkit train` defaults with 3 epochs. Machine: {platform.machine()},",
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}.",
        "",
        "| method | seeds | seed A | seed B | merged (A+B)/2 | merged - mean(A, B) |",
        "|---|---|---|---|---|---|",
    ]
    gaps: dict[str, list[float]] = {}
    for method in METHODS:
        for first, second in itertools.combinations(SEEDS, 2):
            a = test_accuracy(trained(method, first))
            b = test_accuracy(trained(method, second))
            m = test_accuracy(merged(method, first, second))
            gaps.setdefault(method, []).append(m - (a + b) / 2)
            lines.append(
                f"| {method} | {first}+{second} | {a:.1f} | {b:.1f} | {m:.1f} | {m - (a + b) / 2:+.1f} |"
            )
    lines += ["", "Median of the last column over the three pairs:"]
    lines += [
        f"- {method}: {statistics.median(values):+.1f} points" for method, values in gaps.items()
    ]
    lines.append("")
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--out", default="docs/merging.md")
    args = parser.parse_args()
    if not args.report_only:
        for method, seed in itertools.product(METHODS, SEEDS):
            trained(method, seed)
        for method in METHODS:
            for first, second in itertools.combinations(SEEDS, 2):
                merged(method, first, second)
    write_report(Path(args.out))


if __name__ == "__main__":
    main()
