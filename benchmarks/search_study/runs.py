"""The runs of the search study, each through the command line as a user starts it.

A search is ``adapterkit search --data T --trials N --parallel K``: the built-in space, the
task's default budget (or the study's, see :data:`BUDGETS`), wall time measured around the
whole process. A retrain is ``adapterkit train`` with the best trial's options, at seeds
the search never trained with, beside the defaults at the same seeds and budget. A run
whose result file exists is not run again, so an interrupted study goes on where it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from adapterkit.files import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[2]

BUDGETS: dict[str, list[str]] = {
    "trec": [],
    # CoNLL's default run is 5 epochs of ~85 s here: 24 such trials are ~3 h of this CPU.
    # The search and both sides of the comparison train 2 epochs instead, the budget of
    # the quality tables (benchmarks/quality_spec.py).
    "conll2003": ["--epochs", "2"],
}
"""Options every run of a task gets (the search's trials, its retrains and the defaults)."""

RETRAIN_SEEDS = (1, 2, 3)
"""Seeds of the retrains: the search's trials all train with seed 0, so these are new."""


def _adapterkit(args: list[str], log_path: Path) -> float:
    """Run ``adapterkit ARGS`` with its output in ``log_path``; its wall seconds."""
    command = [sys.executable, "-m", "adapterkit", *args]
    started = time.perf_counter()
    with open(log_path, "w") as log:
        done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}); see {log_path}")
    return seconds


def search_dir(root: Path, task: str, parallel: int, trials: int, prune_from: int = 1) -> Path:
    """Where the search of ``task`` with ``trials`` trials, ``parallel`` at a time, lives."""
    pruning = "" if prune_from == 1 else f"-prune{prune_from}"
    return root / f"{task}-{trials}trials-k{parallel}{pruning}"


def run_search(
    root: Path, task: str, parallel: int, trials: int, prune_from: int = 1
) -> dict[str, Any]:
    """One search (or its recorded result): wall seconds, the best trial and every trial."""
    out = search_dir(root, task, parallel, trials, prune_from)
    result = out / "study_result.json"
    if not result.exists():
        args = ["search", "--data", task, "--trials", str(trials), "--parallel", str(parallel)]
        if prune_from != 1:
            args += ["--prune-from", str(prune_from)]
        args += [*BUDGETS[task], "--output", str(out)]
        if out.exists():  # interrupted: go on; its wall time then covers only this part
            args.append("--resume")
        out.mkdir(parents=True, exist_ok=True)
        print(f"search_study: adapterkit {' '.join(args)}", flush=True)
        seconds = _adapterkit(args, out.parent / f"{out.name}.log")
        best = json.loads((out / "best" / "search_best.json").read_text())
        record = {
            "task": task,
            "parallel": parallel,
            "prune_from": prune_from,
            "trials": trials,
            "seconds": round(seconds, 1),
            "resumed": "--resume" in args,
            "best": best,
            "command": "adapterkit " + " ".join(args),
        }
        atomic_write_bytes(result, json.dumps(record, indent=1).encode())
    return json.loads(result.read_text())


def best_label(prune_from: int) -> str:
    """The retrains' label of the best options of a search pruning from ``prune_from``."""
    return "best" if prune_from == 1 else f"best-prune{prune_from}"


def option_args(options: dict[str, Any]) -> list[str]:
    """``train`` flags for a trial's sampled options (as the search records them)."""
    args: list[str] = []
    for name, value in options.items():
        args += ["--" + name.replace("_", "-"), str(value)]
    return args


def run_train(root: Path, task: str, label: str, options: dict[str, Any], seed: int) -> dict:
    """One ``adapterkit train`` run (or its recorded result): validation and test metrics."""
    out = root / f"{task}-{label}-seed{seed}"
    result = out / "study_result.json"
    if not result.exists():
        args = ["train", "--data", task, *BUDGETS[task], *option_args(options)]
        args += ["--seed", str(seed), "--output", str(out), "--report-to", "none"]
        print(f"search_study: adapterkit {' '.join(args)}", flush=True)
        seconds = _adapterkit(args, root / f"{out.name}.log")
        record = {
            "task": task,
            "label": label,
            "seed": seed,
            "seconds": round(seconds, 1),
            "validation": json.loads((out / "validation_metrics.json").read_text()),
            "test": json.loads((out / "metrics.json").read_text()),
            "command": "adapterkit " + " ".join(args),
        }
        atomic_write_bytes(result, json.dumps(record, indent=1).encode())
    return json.loads(result.read_text())
