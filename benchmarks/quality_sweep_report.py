"""docs/results_sweep.{json,md} from the finished runs of benchmarks.quality_sweep."""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from benchmarks.quality_spec import (
    BEST_PEER_ADAPTER,
    FULL_GAP,
    FULL_MODEL_BYTES,
    MAX_TRAINABLE_PERCENT,
    TASKS,
)
from benchmarks.quality_sweep import BUDGET, DEFAULTS, SECOND_WAVE, SETS, Candidate, jobs

TASK_TITLES = {"trec": "TREC-6 test accuracy", "conll2003": "CoNLL-2003 test F1"}


def this_machine() -> str:
    """The machine a run is recorded on: architecture, GPU or CPU cores, torch."""
    import torch

    where = (
        f"GPU {torch.cuda.get_device_name(0)}"
        if torch.cuda.is_available()
        else f"no GPU, {os.cpu_count()} cores"
    )
    return f"{platform.machine()}, {where}, torch {torch.__version__}"


def collect(runs: Path, out: Path) -> list[dict[str, Any]]:
    """Every recorded run: ``out``'s records with the finished runs under ``runs`` added
    (test and validation scores x100, the machine they ran on), written back to ``out``.

    Runs of other machines and sessions live on in ``out`` after their folders are gone; a
    run collected again on the same machine replaces its earlier record.
    """
    machine = this_machine()
    fresh = []
    for metrics_path in sorted(runs.glob("*/metrics.json")):
        run = metrics_path.parent
        task = next((t for t in TASKS if run.name.startswith(f"{t}-")), None)
        validation_path = run / "validation_metrics.json"
        if task is None or "-seed" not in run.name or not validation_path.exists():
            continue
        metric = TASKS[task]["metric"]
        test = json.loads(metrics_path.read_text())
        validation = json.loads(validation_path.read_text())
        candidate, _, seed = run.name[len(task) + 1 :].rpartition("-seed")
        fresh.append(
            {
                "task": task,
                "candidate": candidate,
                "method": test["method"],
                "seed": int(seed),
                "machine": machine,
                "lr": test["lr"],
                "test": round(100 * test[metric], 2),
                "validation": round(100 * validation[metric], 2),
                "trainable_percent": test["trainable_percent"],
                "bundle_bytes": test["bundle_bytes"],
                "train_seconds": test["train_seconds"],
                "best_epoch": test.get("best_epoch"),
                **_by_epoch(run, metric),
            }
        )
    rows = {_key(r): r for r in recorded_runs(out)} | {_key(r): r for r in fresh}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": list(rows.values())}, indent=1) + "\n")
    return list(rows.values())


def _by_epoch(run: Path, metric: str) -> dict[str, list[float]]:
    """``validation_by_epoch``: the validation score after each epoch (x100), from the
    run's last checkpoint; nothing when the run left none."""
    state = run / "checkpoints" / "last" / "trainer_state.json"
    if not state.exists():
        return {}
    history = json.loads(state.read_text())["trainer"]["history"]
    scores = [round(100 * row[f"eval_{metric}"], 2) for row in history if f"eval_{metric}" in row]
    return {"validation_by_epoch": scores} if scores else {}


def _key(row: dict[str, Any]) -> tuple[str, str, int, str]:
    return row["task"], row["candidate"], row["seed"], row["machine"]


def recorded_runs(path: Path) -> list[dict[str, Any]]:
    """The runs recorded in a sweep JSON, each with its machine (none when there is no file;
    a file of the first sweeps names one machine for all its runs)."""
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [{"machine": data.get("machine"), **row} for row in data["runs"]]


def machine_label(machine: str) -> str:
    """A machine in a table cell: its GPU's name, or ``CPU (N cores)``."""
    parts = machine.split(", ")
    if parts[1].startswith("GPU "):
        return parts[1].removeprefix("GPU ").removeprefix("NVIDIA ")
    return f"CPU ({parts[2]})"


def summarize(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (task, candidate): seeds, test and validation medians, ranges, trainable %."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["candidate"]), []).append(row)
    summary = {}
    for key, group in groups.items():
        group.sort(key=lambda r: r["seed"])
        tests = [r["test"] for r in group]
        summary[key] = {
            "method": group[0]["method"],
            "lr": group[0]["lr"],
            "n": len(group),
            "seeds": [r["seed"] for r in group],
            "tests": tests,
            "test": statistics.median(tests),
            "validation": statistics.median(r["validation"] for r in group),
            "trainable_percent": max(r["trainable_percent"] for r in group),
            "bundle_bytes": max(r["bundle_bytes"] for r in group),
            "train_seconds": statistics.median(r["train_seconds"] for r in group),
            "machines": sorted({r["machine"] for r in group}),
        }
    return summary


def pick_on_validation(summary: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str]:
    """Per method: the candidate with the best mean over tasks of its validation median.

    Only candidates that ran on every task with at least as many seeds as the method's
    default compete, so a lucky single seed cannot win.
    """
    picks: dict[str, str] = {}
    methods = {s["method"] for s in summary.values()} - {"full", "head"}
    for method in sorted(methods):
        names = {c for (_, c), s in summary.items() if s["method"] == method}
        default_n = min((summary.get((t, method), {}).get("n", 0) for t in TASKS), default=0)
        scored = []
        for name in names:
            cells = [summary.get((t, name)) for t in TASKS]
            if all(cells) and min(c["n"] for c in cells) >= min(default_n, 3):
                scored.append((statistics.mean(c["validation"] for c in cells), name))
        if scored:
            picks[method] = max(scored)[1]
    return picks


def median_cell(values: list[float]) -> str:
    """``median (worst–best, n=N)`` of scores, the range left out for one; – for none."""
    if not values:
        return "–"
    spread = f"{min(values):.1f}–{max(values):.1f}, " if len(values) > 1 else ""
    return f"{statistics.median(values):.1f} ({spread}n={len(values)})"


def _cell(s: dict[str, Any] | None) -> str:
    return median_cell(s["tests"] if s else [])


def write_page(json_path: Path, page: Path) -> None:
    """The sweep page: every candidate per task, the validation picks, and the targets."""
    rows = recorded_runs(json_path)
    summary = summarize(rows)
    machines = {
        m: sum(r["machine"] == m for r in rows) for m in sorted({r["machine"] for r in rows})
    }
    names = sorted(
        {c for _, c in summary}, key=lambda c: (c.split("-")[0], c != c.split("-")[0], c)
    )
    lines = [
        "# Quality sweep: seeds and default candidates at the full budget",
        "",
        "Generated by `python -m benchmarks.quality_sweep` (see its docstring); "
        "`--report-only` rebuilds this page from docs/results_sweep.json.",
        "Machines: "
        + "; ".join(f"{m} ({n} runs)" for m, n in machines.items())
        + ". fp32 (no autocast), several runs side by side on each. "
        "Same tasks, budgets and data as docs/results.md (TREC-6: batch 32, max length 64, "
        "5 epochs; CoNLL-2003: batch 16, max length 128, 2 epochs; early stopping on "
        "validation, best epoch evaluated). A GPU draws other dropout and initialisation "
        "numbers than the CPU for the same seed, so seed 0 here is not seed 0 of "
        "docs/results.md, nor seed 0 of another machine: compare medians, not single runs.",
        "",
        "Test median (range, seeds) and validation median per candidate. A candidate is "
        "`<method>[-rf<reduction factor>][-lr<learning rate>]`; the bare method name is "
        "its default.",
        "",
        "| candidate | lr | "
        + " | ".join(f"{TASK_TITLES[t]} | validation" for t in TASKS)
        + " | trainable % (max) | train s (median) | ran on |",
        "|---|---|" + "---|---|" * len(TASKS) + "---|---|---|",
    ]
    for name in names:
        cells = [summary.get((t, name)) for t in TASKS]
        first = next(c for c in cells if c)
        lines.append(
            f"| {name} | {first['lr']:g} | "
            + " | ".join(f"{_cell(c)} | {c['validation']:.1f}" if c else "– | –" for c in cells)
            + f" | {max(c['trainable_percent'] for c in cells if c):.2f}"
            + " | "
            + " / ".join(f"{c['train_seconds']:.0f}" for c in cells if c)
            + f" | {', '.join(sorted({machine_label(m) for c in cells if c for m in c['machines']}))} |"
        )
    lines += ["", *_last_epoch_lines(rows), "", *_target_lines(summary)]
    lines += ["", *closest_to_full_lines(summary), *budget_lines(summary)]
    page.write_text("\n".join(lines) + "\n")


def budget_lines(summary: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """``--set budget``'s rows beside the same methods at the task's budget, each against
    full fine-tuning at the same budget: does more training close the gap? Nothing until
    one such run is recorded."""
    cells = []
    for candidate in BUDGET:
        task = next(t for t, c, _ in jobs("budget") if c == candidate)
        longer = summary.get((task, candidate.name))
        if longer is not None:
            cells.append((task, candidate, summary.get((task, candidate.method)), longer))
    if not cells:
        return []
    lines = [
        "",
        "## A longer budget",
        "",
        "Test median (range, seeds) of each method at the task's budget and at "
        "`--set budget`'s, and its difference to full fine-tuning's median at the same "
        "budget (fewer than 3 seeds on either side: not a claim).",
        "",
        "| task | method | epochs | test | vs full | epochs | test | vs full |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, candidate, default, longer in cells:
        longer_full = summary.get((task, f"full-epochs{candidate.switches['epochs']}"))
        row = [task, candidate.method]
        for cell, full, epochs in (
            (default, summary.get((task, "full")), TASKS[task]["epochs"]),
            (longer, longer_full, candidate.switches["epochs"]),
        ):
            gap = "–" if cell is None or full is None else f"{cell['test'] - full['test']:+.2f}"
            tests = median_cell(cell["tests"] if cell else [])
            row += [str(epochs), tests, "–" if candidate.method == "full" else gap]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _target_lines(summary: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    picks = pick_on_validation(summary)
    lines = [
        "## The issue's targets, for the defaults and for the validation picks",
        "",
        "The pick of each method is the candidate with the best mean (over the two tasks) "
        "of its validation median, among candidates with as many seeds as the default "
        "(at least 3). Test medians are judged: at least the best peer adapter row "
        f"({', '.join(f'{t} {v}' for t, v in BEST_PEER_ADAPTER.items())}), within "
        f"{FULL_GAP} of `full`'s median here, at most {MAX_TRAINABLE_PERCENT} % trainable.",
        "",
        "| method | candidate | "
        + " | ".join(f"{t} test (vs full)" for t in TASKS)
        + " | trainable % | all met |",
        "|---|---|" + "---|" * len(TASKS) + "---|---|",
    ]
    full = {t: summary.get((t, "full")) for t in TASKS}
    for method in sorted({s["method"] for s in summary.values()} - {"full", "head"}):
        for label, name in (("default", method), ("validation pick", picks.get(method))):
            cells = [summary.get((t, name)) if name else None for t in TASKS]
            if not all(cells) or (label != "default" and name == method):
                continue  # no pick, or the default itself: its row is already there
            ok, texts = True, []
            for task, cell in zip(TASKS, cells, strict=True):
                gap = cell["test"] - full[task]["test"] if full[task] else None
                good = (
                    cell["test"] >= BEST_PEER_ADAPTER[task] and gap is not None and gap >= -FULL_GAP
                )
                ok &= good
                gap_text = f"{gap:+.2f}" if gap is not None else "no full run"
                texts.append(f"{cell['test']:.1f} ({gap_text})" + ("" if good else " **not met**"))
            trainable = max(c["trainable_percent"] for c in cells)
            ok &= trainable <= MAX_TRAINABLE_PERCENT
            lines.append(
                f"| {method} ({label}) | {name} | {' | '.join(texts)} | {trainable:.2f} | "
                f"{'yes' if ok else 'no'} |"
            )
    return [*lines, "", *_ahead_lines(summary)]


def closest_to_full_lines(summary: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """Every method's default against full fine-tuning, task by task: the issue's goal of an
    adapter within FULL_GAP of `full` at no more than MAX_TRAINABLE_PERCENT trainable.

    A method counts on each task it ran on (the targets table above needs both); the closest
    method is named per task among defaults with at least 3 seeds, so one lucky seed does not
    lead.
    """
    full = {t: summary.get((t, "full")) for t in TASKS}
    method_rows = {c.name for c in DEFAULTS + SECOND_WAVE} - {"full"}
    methods = sorted({name for _, name in summary} & method_rows)
    rows, closest = [], []
    for method in methods:
        cells = {t: summary.get((t, method)) for t in TASKS}
        trainable = max(c["trainable_percent"] for c in cells.values() if c)
        texts = []
        for task, cell in cells.items():
            if cell is None or full[task] is None:
                texts.append("– | –")
                continue
            gap = cell["test"] - full[task]["test"]
            met = gap >= -FULL_GAP and trainable <= MAX_TRAINABLE_PERCENT
            texts.append(f"{median_cell(cell['tests'])} | {gap:+.2f}{'' if met else ' **no**'}")
            if cell["n"] >= 3:
                closest.append((task, gap, trainable, method))
        bundle = max(c["bundle_bytes"] for c in cells.values() if c) / FULL_MODEL_BYTES
        rows.append(f"| {method} | {' | '.join(texts)} | {trainable:.2f} | {100 * bundle:.1f} |")
    lines = [
        f"## Closest to full fine-tuning (within {FULL_GAP} point at <= {MAX_TRAINABLE_PERCENT} "
        "% trainable)",
        "",
        "Each method's default (head-bias: BitFit, `--method head --train-bias`) on each "
        "task it ran on: the test median and its difference to "
        f"`full`'s median here (**no**: more than {FULL_GAP} behind, or more than "
        f"{MAX_TRAINABLE_PERCENT} % trainable). Trainable % and bundle: the larger of the "
        "tasks; trainable % counts what trains (prefix tuning's reparameterisation MLP, "
        "AdaLoRA's initial rank), the bundle what is saved (the MLP folded away, AdaLoRA's "
        "final ranks), as a % of the full model's file.",
        "",
        "| method | "
        + " | ".join(f"{TASK_TITLES[t]} | vs full" for t in TASKS)
        + " | trainable % | bundle % |",
        "|---|" + "---|---|" * len(TASKS) + "---|---|",
        *rows,
        "",
    ]
    for task in TASKS:
        ranked = sorted((c for c in closest if c[0] == task), key=lambda c: -c[1])
        small = [c for c in ranked if c[2] <= MAX_TRAINABLE_PERCENT]
        lines.append(
            f"- {task}, defaults with 3 or more seeds: "
            + (
                f"closest at <= {MAX_TRAINABLE_PERCENT} % trainable {small[0][3]} "
                f"({small[0][1]:+.2f}, {small[0][2]:.2f} %)"
                if small
                else f"none at <= {MAX_TRAINABLE_PERCENT} % trainable"
            )
            + (
                f"; closest at any size {ranked[0][3]} ({ranked[0][1]:+.2f}, {ranked[0][2]:.2f} %)."
                if ranked
                else "."
            )
        )
    return lines


def _ahead_lines(summary: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """Candidates ahead of their method's default on validation, per task: what to seed next."""
    parts = []
    for task in TASKS:
        ahead = []
        for (t, name), cell in sorted(summary.items()):
            default = summary.get((task, cell["method"]))
            if t != task or name == cell["method"] or default is None:
                continue
            delta = cell["validation"] - default["validation"]
            if delta > 0:
                ahead.append(f"{name} ({delta:+.1f}, n={cell['n']})")
        parts.append(f"{task}: {', '.join(ahead) or 'none'}")
    return [
        "Candidates ahead of their method's default on the validation median (the difference, "
        f"and the candidate's seeds): {'; '.join(parts)}. A candidate needs as many seeds as "
        "the default on both tasks before it can be picked."
    ]


@functools.cache
def _every_candidate() -> dict[str, Candidate]:
    """Every set's candidates by name (built once: budget_of runs per recorded run)."""
    return {c.name: c for which in SETS for _, c, _ in jobs(which)}


def budget_of(task: str, candidate: str) -> int:
    """The epochs a candidate trains on ``task``: the task's budget, unless the candidate
    changes it (``--set budget``)."""
    known = _every_candidate()
    switches = known[candidate].switches if candidate in known else {}
    return int(switches.get("epochs", TASKS[task]["epochs"]))


def _last_epoch_lines(rows: list[dict[str, Any]]) -> list[str]:
    """How often the best validation score came at the budget's last epoch, per task."""
    parts, gains = [], []
    for task, spec in TASKS.items():
        ran = [r for r in rows if r["task"] == task and r.get("best_epoch") is not None]
        last = sum(r["best_epoch"] == budget_of(task, r["candidate"]) for r in ran)
        parts.append(f"{task} {last} of {len(ran)} ({spec['epochs']} epochs or the candidate's)")
        # What the last epoch still added, from the runs that recorded every epoch.
        curves = [
            r["validation_by_epoch"]
            for r in rows
            if r["task"] == task and len(r.get("validation_by_epoch") or []) >= 2
        ]
        if curves:
            added = statistics.median(c[-1] - c[-2] for c in curves)
            gains.append(f"{task} {added:+.1f} (median of {len(curves)} runs)")
    lines = [
        "Runs whose best validation score came at the last epoch of the budget (still "
        f"improving when it ran out): {'; '.join(parts)}."
    ]
    if gains:
        lines[0] += (
            " Validation points the last epoch added over the one before, where a run "
            f"recorded every epoch: {'; '.join(gains)}."
        )
    return lines
