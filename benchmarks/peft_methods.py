"""Each method beside peft's version of it: same model, data and budget, three seeds.

docs/peft_methods.md comes from this script::

    python -m benchmarks.peft_methods                            # every method, both tasks
    OMP_NUM_THREADS=1 python -m benchmarks.peft_methods --shard 0/2 &   # or two halves
    OMP_NUM_THREADS=1 python -m benchmarks.peft_methods --shard 1/2     # side by side
    python -m benchmarks.peft_methods --report-only

peft's side trains through transformers' ``Trainer`` in the speed harness's peer venv
(``make bench-venvs``; ``--python`` names another interpreter) with the same runner as
benchmarks.time_to_quality: the budget of the quality sweep (quality_spec.TASKS: TREC-6
batch 32, max length 64, 5 epochs; CoNLL-2003 batch 16, max length 128, 2 epochs), fp32,
shuffled batches, the peft config class's defaults and the learning rate of peft's own
example for the method (PEFT_VERSIONS says which). Trainer ends with its last epoch's
model, so that is the one scored. Every score is adapterkit's metric on the run's
predictions. A run that peft cannot train is recorded with its error's one line.

Our side is each method at its defaults in docs/results_sweep.json
(``python -m benchmarks.quality_sweep --set methods``: the same budget and numerics, early
stopping on validation, its best epoch scored). docs/peft_methods.json keeps every finished
peft run, so runs of earlier sessions count after their files are gone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from adapterkit.data import load_data
from benchmarks.quality_spec import TASKS
from benchmarks.quality_sweep import JSON_OUT as SWEEP_JSON
from benchmarks.quality_sweep_report import (
    machine_label,
    median_cell,
    recorded_runs,
    summarize,
    this_machine,
)
from benchmarks.time_to_quality.contenders import (
    ROOT,
    Contender,
    Setup,
    curve_of,
    export_data,
    run_peer,
    task_of,
)

RUNS = Path("runs/peft_methods")
JSON_OUT = Path("docs/peft_methods.json")
PAGE_OUT = Path("docs/peft_methods.md")
SEEDS = (0, 1, 2)
MODEL = "minilm"
# Our method -> peft's version: its learning rate and what the page says of its settings.
PEFT_VERSIONS: dict[str, tuple[float, str]] = {
    "lora": (5e-4, "LoraConfig's defaults (r 8, alpha 8, query/value), lr 5e-4"),
    "dora": (5e-4, "LoraConfig(use_dora=True), LoRA's defaults otherwise, lr 5e-4"),
    "ia3": (1e-3, "IA3Config's defaults (key, value, FFN output), lr 1e-3 (peft's IA3 example)"),
    "adalora": (
        1e-3,
        "AdaLoraConfig's defaults (rank 12 -> 8) with total_step, `update_and_allocate` after "
        "every optimizer step as peft's docs say, lr 1e-3 (peft's AdaLoRA example)",
    ),
    "prompt": (
        1e-3,
        "PromptTuningConfig, 10 virtual tokens, random init, lr 1e-3 (peft's example)",
    ),
    "prefix": (1e-2, "PrefixTuningConfig, 20 virtual tokens, lr 1e-2 (peft's example)"),
}
# peft LoRA at this budget is also a time-to-quality contender: its finished runs count here.
SHARED_RUNS = {"lora": Path("runs/time_to_quality")}


def setup_of(task: str) -> Setup:
    """The quality sweep's budget for a built-in task, on MiniLM."""
    spec = TASKS[task]
    return Setup(spec["data"], MODEL, spec["batch_size"], spec["max_length"], spec["epochs"])


def jobs(tasks: list[str], methods: list[str]) -> list[tuple[str, str, int]]:
    """(task, method, seed), every method's seed 0 first."""
    return [(t, m, s) for s in SEEDS for t in tasks for m in methods]


def _record_path(task: str, method: str, seed: int, runs: Path) -> Path:
    shared = SHARED_RUNS.get(method)
    if shared is not None and (shared / task / f"peft-{method}-seed{seed}.json").exists():
        return shared / task / f"peft-{method}-seed{seed}.json"
    return runs / task / f"peft-{method}-seed{seed}.json"


def error_line(log: Path) -> str:
    """The one line that says why a run failed: its exception's last line."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error: " in line or "Exception: " in line]
    return (errors or lines or ["no output"])[-1].strip()


def run_one(task: str, method: str, seed: int, runs: Path, python: str) -> None:
    """Train peft's version of ``method`` on ``task``, unless it finished or failed before
    (remove its ``.failed.json`` to try again)."""
    out = _record_path(task, method, seed, runs)
    failed = out.with_suffix(".failed.json")
    if out.exists() or failed.exists():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    setup = setup_of(task)
    data_file = runs / task / "data.json"
    if not data_file.exists():  # the peers' copy of the splits, written once per task
        export_data(load_data(setup.data), data_file)
    lr, what = PEFT_VERSIONS[method]
    contender = Contender(f"peft-{method}", what, ".venv-peft", lr)
    print(f"\n### {task} / peft-{method} / seed {seed}", flush=True)
    log = out.with_suffix(".log")
    try:
        run_peer(contender, setup, seed, data_file, out, python, log)
    except subprocess.CalledProcessError as error:
        if error.returncode < 0:  # killed by a signal (Ctrl-C, a deadline): not peft failing
            raise
        line = error_line(log)
        print(f"peft-{method} on {task} failed: {line}", flush=True)
        failed.write_text(json.dumps({"error": line}))


def collect(runs: Path, out: Path) -> list[dict[str, Any]]:
    """``out``'s records with every finished or failed peft run added, scored."""
    machine = this_machine()
    fresh = []
    for task in TASKS:
        splits = scorer = None
        for method in PEFT_VERSIONS:
            for seed in SEEDS:
                path = _record_path(task, method, seed, runs)
                row = {"task": task, "method": method, "seed": seed, "machine": machine}
                failed = path.with_suffix(".failed.json")
                if failed.exists():
                    fresh.append(row | json.loads(failed.read_text()))
                if not path.exists():
                    continue
                if splits is None:
                    splits = load_data(setup_of(task).data)
                    scorer = task_of(splits, setup_of(task))
                curve = curve_of(json.loads(path.read_text()), seed, scorer, splits)
                fresh.append(
                    row
                    | {
                        "validation": round(curve.validation[-1], 2),
                        "test": None if curve.test is None else round(curve.test, 2),
                        "trainable_percent": curve.trainable_percent,
                        "train_seconds": curve.run_seconds,
                        "version": curve.version,
                    }
                )
    key = ("task", "method", "seed", "machine")
    recorded = json.loads(out.read_text()) if out.exists() else []
    rows = {tuple(r[k] for k in key): r for r in recorded}
    rows |= {tuple(r[k] for k in key): r for r in fresh}
    out.write_text(json.dumps(list(rows.values()), indent=1) + "\n")
    return list(rows.values())


def write_page(peft_json: Path, page: Path, sweep_json: Path = SWEEP_JSON) -> None:
    """Per task: each method's validation and test medians, ours beside peft's."""
    peft_rows = json.loads(peft_json.read_text()) if peft_json.exists() else []
    ours = summarize(recorded_runs(sweep_json))
    lines = [
        "# Each method beside peft's version of it",
        "",
        "Generated by `python -m benchmarks.peft_methods` (see its docstring; `--report-only` "
        f"rebuilds it from {peft_json} and {sweep_json}). Same model (MiniLM), data and "
        "budget on both sides: fp32, shuffled batches, TREC-6 batch 32 / max length 64 / 5 "
        "epochs, CoNLL-2003 batch 16 / max length 128 / 2 epochs. adapterkit: the method at "
        "its defaults, early stopping on validation, its best epoch scored "
        "(docs/results_sweep.md). peft: transformers' Trainer, its last epoch scored. Medians "
        "(range, seeds) in percent; every score is adapterkit's metric.",
        "",
        "peft's settings: "
        + "; ".join(f"**{m}**: {what}" for m, (_, what) in PEFT_VERSIONS.items())
        + ".",
        "",
    ]
    for task, spec in TASKS.items():
        metric = spec["metric"]
        lines += [
            f"## {task} ({metric})",
            "",
            "| method | adapterkit validation | adapterkit test | trainable % | peft validation "
            "| peft test | trainable % | ran on (adapterkit / peft) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method in PEFT_VERSIONS:
            mine = ours.get((task, method))
            theirs = [r for r in peft_rows if r["task"] == task and r["method"] == method]
            if mine is None and not theirs:
                continue
            done = [r for r in theirs if "error" not in r]
            errors = [r["error"] for r in sorted(theirs, key=lambda r: r["seed"]) if "error" in r]
            if done:
                peft_cells = [
                    median_cell([r["validation"] for r in done]),
                    median_cell([r["test"] for r in done if r["test"] is not None]),
                    f"{statistics.median(r['trainable_percent'] for r in done):.2f}",
                ]
            elif errors:
                # The first seed's error: the others differ in their numbers at most.
                failed = f"fails ({len(errors)} of {len(theirs)} seeds): `{errors[0]}`"
                peft_cells = [failed, "–", "–"]
            else:
                peft_cells = ["not run", "–", "–"]
            ours_cells = (
                [
                    f"{mine['validation']:.1f} (n={mine['n']})",
                    median_cell(mine["tests"]),
                    f"{mine['trainable_percent']:.2f}",
                ]
                if mine
                else ["not run", "–", "–"]
            )
            where = [
                ", ".join(sorted({machine_label(m) for m in machines})) or "–"
                for machines in (mine["machines"] if mine else [], [r["machine"] for r in theirs])
            ]
            lines.append(
                f"| {method} | {' | '.join(ours_cells)} | {' | '.join(peft_cells)} | "
                f"{' / '.join(where)} |"
            )
        lines.append("")
    page.write_text("\n".join(lines))
    print(f"wrote {page}")


def _peer_python() -> str:
    venv = ROOT / ".venv-peft" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument(
        "--methods", nargs="+", default=list(PEFT_VERSIONS), choices=list(PEFT_VERSIONS)
    )
    parser.add_argument("--shard", default="0/1", help="I/N: this worker's share of the runs")
    parser.add_argument("--python", default=_peer_python(), help="the peer venv's interpreter")
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--json", type=Path, default=JSON_OUT)
    parser.add_argument("--page", type=Path, default=PAGE_OUT)
    parser.add_argument("--sweep", type=Path, default=SWEEP_JSON, help="our side's records")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    index, _, count = args.shard.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        parser.error(f"--shard: expected I/N with 0 <= I < N, got {args.shard!r}")
    if not args.report_only:
        for task, method, seed in jobs(args.tasks, args.methods)[int(index) :: int(count)]:
            run_one(task, method, seed, args.runs, args.python)
        collect(args.runs, args.json)
    write_page(args.json, args.page, args.sweep)


if __name__ == "__main__":
    main()
