"""N jobs packed in one run vs the same N jobs one after another (docs/packing.md).

Each job is a Pfeiffer adapter with its own head on the same TREC-6 training slice
(seeds 0..N-1), trained for the same epochs on the real MiniLM, through the training
engine itself (:func:`adapterkit.train.engine.fit_jobs`, checkpoints included, no
validation). "Sequential" trains the jobs one at a time on the same base; "packed"
trains all of them in one run, their rows in the same batches. Both modes process the
same tokens, so the ratio of wall times is the speed-up of packing. Each N is measured
``--repeats`` times, the two modes alternating; medians are reported.

    python -m benchmarks.packing                 # N = 1, 2, 4, 8; writes docs/packing.{json,md}
    python -m benchmarks.packing --quick         # a smoke run (tiny slice, N = 1, 2)

It also times one job trained by one process (all cores) against the same job on two
processes (``torchrun --nproc_per_node 2``, one core each), from each run's
``train_seconds``. On the 2-core development machine the default run takes about 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from adapterkit.data import load_data
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer
from adapterkit.tasks import make_task
from adapterkit.tasks.base import encode_examples
from adapterkit.train.config import TrainConfig
from adapterkit.train.engine import fit_jobs
from adapterkit.train.job import TrainJob
from benchmarks.speed.machine import QuietMonitor, machine_info

DOCS = Path(__file__).resolve().parents[1] / "docs"


def build_jobs(
    model: AdaptedModel, task: Any, features: list[dict], n: int, config: TrainConfig, out: Path
) -> list[TrainJob]:
    """N fresh Pfeiffer adapters with heads (seeded 0..N-1) and their jobs."""
    for name in list(model.adapter_names):
        model.delete_adapter(name)
    jobs = []
    for seed in range(n):
        name = f"job{seed}"
        torch.manual_seed(seed)
        model.add_adapter(name, make_config("pfeiffer"), head=task.build_head(384))
        job_config = TrainConfig(**{**config.to_dict(), "seed": seed})
        jobs.append(TrainJob(name, task, features, None, job_config, 3e-3, out / name))
    model.requires_grad_(False)  # the base; then each job's adapter and head train
    for name in model.adapter_names:
        own = [*model.adapter_parameters(name).values(), *model.head_parameters(name).values()]
        for param in own:
            param.requires_grad_(True)
    return jobs


def timed(model: AdaptedModel, groups: list[list[TrainJob]]) -> float:
    """Seconds to train each group of jobs in its own run, one group after another."""
    started = time.perf_counter()
    for group in groups:
        fit_jobs(model, group, log=lambda _: None)
    return time.perf_counter() - started


def measure(args: argparse.Namespace) -> dict[str, Any]:
    tokenizer = load_tokenizer("minilm")
    splits = load_data("trec", seed=0)
    task = make_task("sequence-classification", tokenizer, splits.label_names, 64)
    features = encode_examples(task, splits.train[: args.examples])
    tokens_per_job = args.epochs * sum(len(f["input_ids"]) for f in features)
    model = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size)
    rows = []
    with QuietMonitor() as monitor, tempfile.TemporaryDirectory() as tmp:
        for n in args.jobs:
            times: dict[str, list[float]] = {"sequential": [], "packed": []}
            for repeat in range(args.repeats):
                order = ["sequential", "packed"] if repeat % 2 == 0 else ["packed", "sequential"]
                for mode in order:
                    out = Path(tmp) / f"{n}-{repeat}-{mode}"
                    jobs = build_jobs(model, task, features, n, config, out)
                    groups = [[job] for job in jobs] if mode == "sequential" else [jobs]
                    times[mode].append(timed(model, groups))
            sequential, packed = (statistics.median(times[m]) for m in ("sequential", "packed"))
            rows.append(
                {
                    "jobs": n,
                    "sequential_s": round(sequential, 2),
                    "packed_s": round(packed, 2),
                    "speedup": round(sequential / packed, 2),
                    "sequential_tokens_per_s": round(n * tokens_per_job / sequential),
                    "packed_tokens_per_s": round(n * tokens_per_job / packed),
                    "times": times,
                }
            )
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "times"}), flush=True)
    return {
        "machine": machine_info(torch.get_num_threads()),
        "quiet": monitor.quiet,
        "busy_others": monitor.busy[:10],
        "settings": {
            "model": "minilm",
            "method": "pfeiffer",
            "data": f"trec, first {len(features)} training questions, max_length 64",
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "tokens_per_job": tokens_per_job,
        },
        "command": "python -m benchmarks.packing " + " ".join(args.argv),
        "rows": rows,
    }


def measure_processes(args: argparse.Namespace) -> dict[str, Any]:
    """Median ``train_seconds`` of one job on one process vs two (gloo), same global batch."""
    threads = torch.get_num_threads()
    bin_dir = Path(sys.executable).parent
    launchers = {
        "1 process": ([sys.executable], threads),
        "2 processes": ([str(bin_dir / "torchrun"), "--nproc_per_node", "2"], max(1, threads // 2)),
    }
    train = ["train", "--model", "minilm", "--data", "trec", "--max-length", "64", "--epochs", "1"]
    train += ["--max-train-samples", str(2 * args.examples), "--max-eval-samples", "64"]
    train += ["--batch-size", str(args.batch_size), "--report-to", "none"]
    seconds: dict[str, list[float]] = {name: [] for name in launchers}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, (launcher, per_process) in launchers.items():
                out = Path(tmp) / f"{repeat}-{name.replace(' ', '-')}"
                env = {**os.environ, "OMP_NUM_THREADS": str(per_process), "HF_HUB_OFFLINE": "1"}
                done = subprocess.run(
                    [*launcher, "-m", "adapterkit", *train, "--output", str(out)],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"{name} failed: {done.stderr[-500:]}")
                seconds[name].append(
                    json.loads((out / "metrics.json").read_text())["train_seconds"]
                )
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "examples": 2 * args.examples,
        "threads_per_process": {name: per for name, (_, per) in launchers.items()},
        "train_seconds": seconds,
        "median_s": medians,
        "speedup": round(medians["1 process"] / medians["2 processes"], 2),
    }


def page(result: dict[str, Any]) -> str:
    """docs/packing.md from the measured result."""
    m, s = result["machine"], result["settings"]
    lines = [
        "# Packed jobs vs one job after another",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['threads']} threads), "
        f"Python {m['python']}{', GPU ' + m['gpu'] if 'gpu' in m else ''}. "
        f"{'Quiet' if result['quiet'] else 'NOT quiet (other processes were busy)'} while measuring.",
        "",
        f"Each job: {s['method']} adapter + head on {s['model']}, {s['data']}, batch {s['batch_size']}, "
        f"{s['epochs']} epoch(s), {s['tokens_per_job']:,} real tokens; median of {s['repeats']} "
        "runs per mode, modes alternating.",
        "",
        f"Command: `{result['command']}`",
        "",
        "| jobs | sequential s | packed s | speed-up | sequential tokens/s | packed tokens/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['jobs']} | {row['sequential_s']} | {row['packed_s']} | {row['speedup']}x | "
            f"{row['sequential_tokens_per_s']:,} | {row['packed_tokens_per_s']:,} |"
        )
    speedups = [row["speedup"] for row in result["rows"]]
    lines += [
        "",
        f"On this machine packing is not faster: {min(speedups)}x to {max(speedups)}x of one job "
        "after another. A CPU has no idle capacity for a larger batch to fill (a batch of 32",
        "questions already keeps its cores busy), so the same tokens take the same arithmetic;",
        "what packing adds is padding every job's rows to the longest batch of the step and",
        "running each job's head and adapter on its own slice. Packing pays where one job",
        "leaves the device idle, a GPU under a small model; that is not measured here.",
    ]
    processes = result.get("processes")
    if processes:
        one, two = processes["median_s"]["1 process"], processes["median_s"]["2 processes"]
        lines += [
            "",
            "## One process or two",
            "",
            f"One job ({processes['examples']} questions, same global batch) on one process "
            f"with {processes['threads_per_process']['1 process']} threads: {one:.1f} s of "
            f"training (median); on two processes (torchrun, gloo) with "
            f"{processes['threads_per_process']['2 processes']} thread each: {two:.1f} s, "
            f"{processes['speedup']}x.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--examples", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run; writes nothing")
    parser.add_argument("--out", type=Path, default=DOCS, help="where packing.{json,md} go")
    parser.add_argument(
        "--page-only", action="store_true", help="rebuild packing.md from packing.json"
    )
    parser.add_argument(
        "--processes-only",
        action="store_true",
        help="measure only one process vs two, into the existing packing.json",
    )
    args = parser.parse_args(argv)
    if args.page_only:
        result = json.loads((args.out / "packing.json").read_text())
        (args.out / "packing.md").write_text(page(result))
        return 0
    args.argv = argv if argv is not None else __import__("sys").argv[1:]
    if args.quick:
        args.jobs, args.examples, args.repeats = [1, 2], 64, 1
    if args.processes_only:
        result = json.loads((args.out / "packing.json").read_text())
        result["processes"] = measure_processes(args)
        (args.out / "packing.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "packing.md").write_text(page(result))
        return 0
    result = measure(args)
    if not args.quick:
        result["processes"] = measure_processes(args)
        print(json.dumps({k: v for k, v in result["processes"].items() if k != "train_seconds"}))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "packing.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "packing.md").write_text(page(result))
        print(f"wrote {args.out / 'packing.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
