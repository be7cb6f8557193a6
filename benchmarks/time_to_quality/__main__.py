"""Time to quality: ``python -m benchmarks.time_to_quality [--tasks trec conll2003] [--seeds 0 1 2]``.

Trains every contender (adapterkit at its defaults; peft LoRA, AdapterHub Pfeiffer and full
fine-tuning through transformers' Trainer in the speed harness's peer venvs, ``make
bench-venvs``) on the same splits, one run at a time, seeds interleaved, and records each
run's validation score after every epoch against its training seconds. The target of a task
is the final validation score of the best peer adapter (median over seeds); the page gives
each contender's median seconds until its validation first reaches it, and the test score
of the model each run ends with. Finished runs are kept under ``--runs`` and reused (an
adapterkit record of another method than today's default is trained again); run it on a
quiet machine (it warns when another process is busy). Writes docs/time_to_quality.md,
a PNG per task, and the summary between the markers in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from adapterkit.data import load_data
from benchmarks.quality_spec import TASKS
from benchmarks.speed.machine import busy_others, machine_info
from benchmarks.time_to_quality import report
from benchmarks.time_to_quality.contenders import (
    CONTENDERS,
    ROOT,
    Setup,
    curve_of,
    export_data,
    is_stale,
    run_ours,
    run_peer,
    task_of,
)

DOCS = ROOT / "docs"


def _setups(args: argparse.Namespace) -> dict[str, Setup]:
    """The tasks to train (``--tasks``) and to report: those and every other built-in
    task with runs already finished, so a run of one task keeps the others' sections."""
    if args.data:  # a custom set (the tests' tiny one): the peers' budget from the flags
        return {
            "custom": Setup(args.data, args.model, args.batch_size, args.max_length, args.epochs)
        }
    return {
        task: Setup(
            TASKS[task]["data"],
            args.model,
            TASKS[task]["batch_size"],
            TASKS[task]["max_length"],
            TASKS[task]["epochs"],
        )
        for task in TASKS
        if task in args.tasks or (Path(args.runs) / task).is_dir()
    }


def _interpreters(pairs: list[str]) -> dict[str, str]:
    chosen = {
        name: str(ROOT / c.venv / "bin" / "python") for name, c in CONTENDERS.items() if c.venv
    }
    for pair in pairs:
        name, _, python = pair.partition("=")
        if name not in chosen or not python:
            raise SystemExit(
                f"--python: expected CONTENDER=PATH with a peer contender, got {pair!r}"
            )
        chosen[name] = python
    return chosen


def run_task(
    name: str, setup: Setup, args: argparse.Namespace, pythons: dict[str, str]
) -> tuple[str, str]:
    """Train what is missing of one task; its page section and its summary lines."""
    runs = Path(args.runs) / name
    runs.mkdir(parents=True, exist_ok=True)
    splits = load_data(setup.data)  # as `adapterkit train --data` splits it
    data_file = runs / "data.json"
    for seed in args.seeds:
        for contender in args.contenders:
            out = runs / f"{contender}-seed{seed}.json"
            if args.report_only or (name in TASKS and name not in args.tasks):
                continue
            if out.exists():
                if not is_stale(json.loads(out.read_text()), CONTENDERS[contender], splits.task):
                    continue
                print(f"{out}: trained another method than the default now; rerunning", flush=True)
            busy = busy_others()
            if busy:
                print(f"warning: not a quiet machine: {busy}", file=sys.stderr, flush=True)
            print(f"\n### {name} / {contender} / seed {seed}", flush=True)
            try:
                if CONTENDERS[contender].venv is None:
                    run_ours(CONTENDERS[contender], setup, seed, out)
                else:
                    if not data_file.exists():  # the peers' copy of the splits, written once
                        export_data(splits, data_file)
                    run_peer(CONTENDERS[contender], setup, seed, data_file, out, pythons[contender])
            except subprocess.CalledProcessError as failed:  # the others still run; rerun retries
                print(
                    f"{name} / {contender} / seed {seed} failed: {failed}",
                    file=sys.stderr,
                    flush=True,
                )
    task = task_of(splits, setup)
    curves = []
    for out in sorted(runs.glob("*-seed*.json")):
        if out.name.endswith(".spec.json"):
            continue
        contender, seed = out.stem.rsplit("-seed", 1)
        if contender in args.contenders:
            day = time.strftime("%Y-%m-%d", time.gmtime(out.stat().st_mtime))
            curves.append(curve_of(json.loads(out.read_text()), int(seed), task, splits, day))
    return _section(name, setup, curves, task.primary_metric, args)


def _section(
    name: str, setup: Setup, curves: list, metric: str, args: argparse.Namespace
) -> tuple[str, str]:
    found = report.target_of(curves)
    if found is None:
        line = f"### {name}\n\nNo peer adapter run yet: no target.\n"
        return line, line
    target, whose = found
    rows = report.summary(curves, target)
    png = Path(args.docs) / f"time_to_quality_{name}.png"
    report.plot(curves, target, f"{name}: validation {metric} against training time", png)
    head = [
        f"### {name}",
        "",
        f"Target: validation {metric} {target:.1f}, the final validation score of {whose} (median over its "
        f"seeds). Peers' budget: batch {setup.batch_size}, max length {setup.max_length}, "
        f"{setup.epochs} epochs. adapterkit's time to target over the fastest peer adapter's: "
        f"{report.verdict(rows)}.",
        "",
        *report.table(rows, metric),
        "",
        *report.candidate_lines(curves),
        "",
    ]
    full = [
        *head,
        f"![{name}]({png.name})",
        "",
        "Versions: " + "; ".join(f"{k}: {v['version']}" for k, v in rows.items()),
        "",
    ]
    return "\n".join(full), "\n".join(head)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS)
    )
    parser.add_argument("--model", default="minilm")
    parser.add_argument(
        "--data", help="a custom data set instead of --tasks (its budget from the flags below)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--python", nargs="*", default=[], help="CONTENDER=PATH: another interpreter for a peer"
    )
    parser.add_argument("--runs", default="runs/time_to_quality")
    parser.add_argument("--docs", default=str(DOCS), help="where the page and PNGs go")
    parser.add_argument(
        "--report-only", action="store_true", help="only rebuild the page from finished runs"
    )
    args = parser.parse_args(argv)
    pythons = _interpreters(args.python)
    Path(args.docs).mkdir(parents=True, exist_ok=True)
    sections, summaries = [], []
    for name, setup in _setups(args).items():
        section, short = run_task(name, setup, args, pythons)
        sections.append(section)
        summaries.append(short)
    machine = json.dumps(machine_info(torch.get_num_threads()))
    intro = [
        "# Time to quality: adapterkit's defaults against the peers",
        "",
        f"Generated by `python -m benchmarks.time_to_quality` (see its docstring). Machine: {machine}; "
        "one run at a time. Seconds are training seconds (model loading and tokenizing not counted, "
        "each epoch's validation counted as every contender pays it; the test predictions only this "
        "benchmark takes after each peer epoch not counted). Scores in percent, all by adapterkit's metrics "
        "from each run's predictions; medians over seeds. Test: the model each run ends with (adapterkit: "
        "its best validation epoch; Trainer: its last epoch, `load_best_model_at_end` being off by default).",
        "",
        "Contenders: "
        + "; ".join(
            f"**{c.name}**: {c.what}" for c in CONTENDERS.values() if c.name in args.contenders
        )
        + ".",
        "",
    ]
    docs = Path(args.docs)
    report.write_pages(
        [*intro, *sections],
        [
            "## Time to quality",
            "",
            "From docs/time_to_quality.md (`python -m benchmarks.time_to_quality`).",
            "",
            *summaries,
        ],
        docs / "time_to_quality.md",
        docs / "benchmarks.md",
    )
    print(f"wrote {docs / 'time_to_quality.md'}")


if __name__ == "__main__":
    main()
