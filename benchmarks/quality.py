"""Quality benchmark: TREC-6 accuracy and CoNLL-2003 F1 per method on the real MiniLM.

Every number in docs/results.md comes from this script:

    .venv/bin/python -m benchmarks.quality                       # everything (~3 CPU hours: ~1.5 h as two shards)
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.quality --shard 0/2 &   # or two halves
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.quality --shard 1/2     # side by side
    .venv/bin/python -m benchmarks.quality --tasks trec --methods lora
    .venv/bin/python -m benchmarks.quality --variant grouped     # length-grouped, batch-weighted
    .venv/bin/python -m benchmarks.quality --variant no-attn-dropout --methods pfeiffer
    .venv/bin/python -m benchmarks.quality --report-only          # rebuild the table from runs/quality

Rows named in quality_spec.RECIPES are a method plus options: ``bitfit`` is ``--method head
--train-bias``, ``houlsby-norms`` is ``--method houlsby --train-norms``.

docs/results_methods.md (IA3, DoRA, BitFit ..., the same budget; two processes side by side):

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.quality --tasks trec --methods ia3 \
        --seeds 0 1 2 --out docs/results_methods.md &    # then --tasks conll2003 --methods ia3
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.quality --tasks trec --methods dora \
        --seeds 0 1 2 --out docs/results_methods.md      # then --tasks conll2003 --methods dora
    .venv/bin/python -m benchmarks.quality --report-only --out docs/results_methods.md \
        --title "Quality results: IA3 and DoRA"

Each (task, method) run uses the method's default hyperparameters (what a user who
passes no --lr gets), seed 0, and the budget of the peer reference runs quoted in
the issue: TREC batch 32, max length 64, 5 epochs; CoNLL batch 16, max length 128,
2 epochs. Runs land in runs/quality/<task>-<method>/ (metrics.json, report.md,
curves, bundle); finished runs are reused unless --rerun is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adapterkit.train.config import TrainConfig
from adapterkit.train.options import RunOptions
from adapterkit.train.run import train_adapter_run
from benchmarks.quality_report import write_report
from benchmarks.quality_spec import MEASURED_AS, METHODS, RECIPES, TASKS, VARIANTS, run_dir


def run_one(task: str, method: str, rerun: bool, seed: int = 0, variant: str | None = None) -> dict:
    """Train and evaluate one (task, method, seed[, variant]), or reuse its finished run."""
    spec = TASKS[task]
    out = run_dir(task, method, seed, variant)
    metrics_path = out / "metrics.json"
    if metrics_path.exists() and not rerun:
        return json.loads(metrics_path.read_text())
    base_method, method_options = RECIPES.get(method, (method, {}))
    options = RunOptions(
        data=spec["data"],
        method=base_method,
        method_options=dict(method_options),
        max_length=spec["max_length"],
        output=str(out),
    )
    switches = VARIANTS[variant].switches if variant else {}
    config = TrainConfig(
        epochs=spec["epochs"], batch_size=spec["batch_size"], seed=seed, **MEASURED_AS | switches
    )
    print(
        f"\n### {task} / {method} / seed {seed}" + (f" / {variant}" if variant else ""), flush=True
    )
    return train_adapter_run(options, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument(
        "--rerun", action="store_true", help="train again even when a finished run exists"
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild docs/results.md")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="seeds to run (default: 0 only)"
    )
    parser.add_argument(
        "--shard",
        default="0/1",
        help="I/N: run every N-th (task, method) pair from I, to run N processes side by side",
    )
    parser.add_argument(
        "--variant",
        choices=list(VARIANTS),
        help="train with a switch on (runs/quality/<task>-<method>-<variant>): "
        + "; ".join(f"{name}: {v.flag}" for name, v in VARIANTS.items()),
    )
    parser.add_argument("--out", default="docs/results.md")
    parser.add_argument("--title", default="Quality results", help="the page's heading")
    args = parser.parse_args()
    index, count = (int(x) for x in args.shard.split("/"))
    if not args.report_only:
        runs = [(t, m, seed) for seed in args.seeds for t in args.tasks for m in args.methods]
        for task, method, seed in runs[index::count]:
            run_one(task, method, args.rerun, seed, args.variant)
            write_report(Path(args.out), title=args.title)
    write_report(Path(args.out), title=args.title)


if __name__ == "__main__":
    main()
