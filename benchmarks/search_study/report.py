"""The page of the search study: each task's search, its best trial retrained against the
defaults and full fine-tuning, and the wall time of K = 1 against K = 4 packed trials."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from adapterkit.data import load_data
from adapterkit.search.space import DEFAULT_SPACE
from benchmarks.doc_blocks import block, put_block
from benchmarks.quality_spec import TASKS
from benchmarks.search_study.runs import BUDGETS, RETRAIN_SEEDS, ROOT, best_label, search_dir
from benchmarks.speed.machine import machine_info
from benchmarks.time_to_quality.contenders import Setup, curve_of, task_of

GOAL_POINTS = 0.5
"""The project's quality goal: within this many points of full fine-tuning ..."""
GOAL_TRAINABLE = 2.0
"""... with at most this trainable % (adapter and head over the whole model)."""
FULL_RUNS = ROOT / "runs" / "time_to_quality"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _spread(values: list[float]) -> str:
    """Median (range, n) of percentages."""
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.1f} (n 1)"
    return f"{median:.1f} ({min(values):.1f}-{max(values):.1f}, n {len(values)})"


def _trials(out: Path) -> list[dict[str, str]]:
    with (out / "trials.csv").open() as handle:
        return list(csv.DictReader(handle))


def _states(rows: list[dict[str, str]]) -> str:
    counts = Counter(row["state"].lower() for row in rows)
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def _methods_by_state(rows: list[dict[str, str]]) -> str:
    """Which methods finished and which were pruned, and after which epoch."""
    parts = []
    for state in ("COMPLETE", "PRUNED"):
        chosen = [row for row in rows if row["state"] == state]
        if not chosen:
            continue
        counts = Counter(row.get("method", "?") for row in chosen)
        text = ", ".join(f"{method} {n}" for method, n in sorted(counts.items()))
        if state == "PRUNED":
            epochs = sorted(
                {sum(1 for k, v in row.items() if k.startswith("epoch_") and v) for row in chosen}
            )
            text += f" (after epoch {' or '.join(map(str, epochs))})"
        parts.append(f"{'finished' if state == 'COMPLETE' else 'pruned'}: {text}")
    return "; ".join(parts)


def _distribution(name: str, spec: dict[str, Any]) -> str:
    """A space entry as a reader wants it: ``lr log-uniform 0.0003 to 0.01``."""
    if spec["type"] == "categorical":
        return f"{name} one of {', '.join(map(str, spec['choices']))}"
    kind = {"loguniform": "log-uniform"}.get(spec["type"], spec["type"])
    return f"{name} {kind} {spec['low']:g} to {spec['high']:g}"


def _command(study: dict[str, Any]) -> str:
    """The search's command with its output folder relative to the repository."""
    return study["command"].replace(f"{ROOT}/", "")


def _options(options: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in options.items()
    )


def _retrains(runs: Path, task: str, label: str) -> list[dict[str, Any]]:
    found = []
    for seed in RETRAIN_SEEDS:
        path = runs / f"{task}-{label}-seed{seed}" / "study_result.json"
        if path.exists():
            found.append(json.loads(path.read_text()))
    return found


def _full(task: str) -> tuple[list[float], str] | None:
    """Full fine-tuning's test scores from benchmarks.time_to_quality's runs, if there."""
    records = sorted((FULL_RUNS / task).glob("full-seed*.json"))
    records = [r for r in records if not r.name.endswith(".spec.json")]
    if not records:
        return None
    spec = TASKS[task]
    setup = Setup(spec["data"], "minilm", spec["batch_size"], spec["max_length"], spec["epochs"])
    splits = load_data(setup.data)
    scorer = task_of(splits, setup)
    scores = []
    for path in records:
        seed = int(path.stem.rsplit("-seed", 1)[1])
        curve = curve_of(json.loads(path.read_text()), seed, scorer, splits)
        if curve.test is not None:
            scores.append(curve.test)
    budget = f"Trainer, lr 5e-5, {setup.epochs} epochs, batch {setup.batch_size}, its last epoch"
    return scores, budget


Search = tuple[str, int, int]
"""(task, trials packed per run K, first epoch a trial may be pruned P)."""


def _row(label: str, records: list[dict[str, Any]], metric: str) -> tuple[str, float | None]:
    validation = [100 * r["validation"][metric] for r in records]
    test = [100 * r["test"][metric] for r in records]
    trainable = records[0]["test"]["trainable_percent"] if records else None
    seconds = statistics.median(r["test"]["train_seconds"] for r in records) if records else None
    line = (
        f"| {label} | {_spread(validation)} | {_spread(test)} | "
        f"{'-' if trainable is None else f'{trainable:.2f}'} | {_pct(seconds)} |"
    )
    return line, (statistics.median(test) if test else None)


def _study(runs: Path, search: Search, trials: int) -> tuple[Path, dict[str, Any]] | None:
    task, parallel, prune_from = search
    out = search_dir(runs, task, parallel, trials, prune_from)
    result = out / "study_result.json"
    return (out, json.loads(result.read_text())) if result.exists() else None


def _verdict(
    best_test: float | None, trainable: float | None, default_test: float | None, task: str
) -> tuple[str | None, str]:
    """Full fine-tuning's table row, and the goal's verdict for the search's best."""
    full = _full(task)
    if full is None:
        return None, (
            "No full fine-tuning runs found (`python -m benchmarks.time_to_quality "
            "--contenders full` makes them)."
        )
    scores, how = full
    row = f"| full fine-tuning ({how}; seeds 0-2) | - | {_spread(scores)} | 100.00 | - |"
    if best_test is None or trainable is None or not scores:
        return row, ""
    gap = best_test - statistics.median(scores)
    met = gap >= -GOAL_POINTS and trainable <= GOAL_TRAINABLE
    verdict = (
        f"The search's best options, retrained: {gap:+.2f} points of full fine-tuning's test "
        f"median at {trainable:.2f} % trainable: the goal (within {GOAL_POINTS} point, "
        f"<= {GOAL_TRAINABLE:.0f} %) is {'met' if met else 'not met'}."
    )
    if default_test is not None:
        verdict += f" Over the defaults: {best_test - default_test:+.1f} points."
    return row, verdict


def task_section(
    runs: Path, task: str, searches: list[Search], trials: int, docs: Path
) -> tuple[list[str], list[str]]:
    """One task: its searches and their best options retrained at three seeds beside the
    defaults; the page's lines and the summary's (the table and the verdict)."""
    recorded = [(search, found) for search in searches if (found := _study(runs, search, trials))]
    if not recorded:
        lines = [f"## {task}", "", "Not run yet.", ""]
        return lines, lines
    budget = " ".join(BUDGETS[task]) or "the defaults' (up to 5 epochs, early stopping)"
    lines = [f"## {task}", "", f"Trial budget: {budget}.", ""]
    metric = next(iter(recorded[0][1][1]["best"]["validation"]))
    for _, (out, study) in recorded:
        best = study["best"]
        test = 100 * best["test"][metric] if "test" in best else None
        lines += [
            f"- `{_command(study)}`: {trials} trials ({_states(_trials(out))}) in "
            f"{study['seconds']:.0f} s. Best: {best['trial']} ({_options(best['options'])}), "
            f"validation {metric} {100 * best['validation'][metric]:.1f}, test (scored "
            f"once) {_pct(test)}. By method, {_methods_by_state(_trials(out))}."
        ]
    default_line, default_test = _row(
        "`adapterkit train` defaults", _retrains(runs, task, "default"), metric
    )
    table = [
        f"| run (seeds {', '.join(map(str, RETRAIN_SEEDS))}) | validation {metric} | "
        f"test {metric} | trainable % | train s |",
        "|---|---:|---:|---:|---:|",
        default_line,
    ]
    judged: tuple[float | None, float | None] = (None, None)
    for prune_from in sorted({p for (_, _, p), _ in recorded}):
        records = _retrains(runs, task, best_label(prune_from))
        label = "search's best options, retrained"
        if prune_from != 1:
            label = f"search's best options (--prune-from {prune_from}), retrained"
        line, test = _row(label, records, metric)
        table.append(line)
        if prune_from == 1 and records:
            judged = (test, records[0]["test"]["trainable_percent"])
    full_row, verdict = _verdict(*judged, default_test, task)
    if full_row is not None:
        table.append(full_row)
    png = docs / f"search_study_{task}.png"
    shutil.copyfile(recorded[0][1][0] / "plots" / "score_by_trial.png", png)
    lines += ["", *table, "", verdict, "", f"![{task}: trials of the first search]({png.name})", ""]
    return lines, [f"### {task} (search and retrains: {budget})", "", *table, "", verdict, ""]


def variants_section(runs: Path, searches: list[Search], trials: int) -> list[str]:
    """Wall time and outcome of each search: K = 1 against K = 4 packed trials, and the
    pruning variants."""
    lines = [
        "### Trials one at a time or packed, and when pruning starts",
        "",
        "| task | K | prune from epoch | wall s | trials | epochs trained | s per trial epoch "
        "| best validation | its test (once) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    seconds: dict[tuple[str, int], dict[int, float]] = {}
    for search in searches:
        found = _study(runs, search, trials)
        if found is None:
            continue
        (task, parallel, prune_from), (out, study) = search, found
        best = study["best"]
        metric = next(iter(best["validation"]))
        seconds.setdefault((task, prune_from), {})[parallel] = study["seconds"]
        test = 100 * best["test"][metric] if "test" in best else None
        # Searches differ in how many epochs their trials ran before finishing or being
        # pruned: seconds per trial epoch is the packing's own cost.
        epochs = sum(
            1 for row in _trials(out) for k, v in row.items() if k.startswith("epoch_") and v
        )
        lines.append(
            f"| {task} | {parallel} | {prune_from} | {study['seconds']:.0f}"
            f"{' (resumed)' if study['resumed'] else ''} | {_states(_trials(out))} | {epochs} | "
            f"{study['seconds'] / max(epochs, 1):.1f} | "
            f"{100 * best['validation'][metric]:.1f} | {_pct(test)} |"
        )
    ratios = [
        f"{task}: the search with K = {k} takes {by_k[k] / by_k[1]:.2f}x the wall time of K = 1"
        for (task, _), by_k in seconds.items()
        for k in sorted(by_k)
        if k != 1 and 1 in by_k
    ]
    lines += [
        "",
        "; ".join(ratios) + "." if ratios else "No task has both K = 1 and K > 1 yet.",
        "",
    ]
    return lines


def write_page(runs: Path, searches: list[Search], trials: int, page: Path, results: Path) -> None:
    """Write the page, and its summary into ``results`` (docs/results.md), from whatever
    runs are recorded."""
    # Every run is a subprocess at torch's default threads, whatever this process has.
    machine = {k: v for k, v in machine_info(torch.get_num_threads()).items() if k != "threads"}
    space = "; ".join(_distribution(name, spec) for name, spec in DEFAULT_SPACE.items())
    lines = [
        "# Search against the defaults",
        "",
        "Generated by `python -m benchmarks.search_study` (see its docstring); one run at a time. "
        f"Machine: {json.dumps(machine)}, torch's default threads.",
        "",
        f"Each search is `adapterkit search` with its built-in space ({space}), TPE and median "
        "pruning, trials at seed 0. Its best trial's options are then retrained alone with "
        "`adapterkit train` at seeds the search never used, beside `adapterkit train`'s defaults "
        "at the same seeds and budget, so the comparison is not the one run the search picked on "
        "validation. Scores in percent; medians with the range over seeds. Train s: the "
        "training loop's seconds (each epoch's validation included).",
        "",
    ]
    summary = [
        "## Search against the defaults",
        "",
        f"From docs/search_study.md (`python -m benchmarks.search_study`): a {trials}-trial "
        "`adapterkit search` per task, its best options retrained at three new seeds.",
        "",
    ]
    for task in dict.fromkeys(task for task, _, _ in searches):
        mine = [search for search in searches if search[0] == task]
        section, short = task_section(runs, task, mine, trials, page.parent)
        lines += section
        summary += short
    variants = variants_section(runs, searches, trials)
    page.write_text("\n".join([*lines, *variants]))
    put_block(results, block("search-study", [*summary, *variants]), title="# Quality results")
