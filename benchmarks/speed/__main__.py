"""Run the whole speed benchmark: ``python -m benchmarks.speed [--quick]`` (see the package doc)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.speed import report
from benchmarks.speed.machine import QuietMonitor, busy_others, machine_info
from benchmarks.speed.measure import matmul_peak
from benchmarks.speed.plot import plot_scaling
from benchmarks.speed.workload import Spec

ROOT = Path(__file__).resolve().parents[2]
RUNNERS = {
    "ours": ("benchmarks.speed.ours", None),
    "peft": ("benchmarks.speed.peft_runner", ".venv-peft"),
    "adapterhub": ("benchmarks.speed.adapterhub_runner", ".venv-adapters"),
}
# (tool, method, spec overrides): the comparison, identical batches for every row.
MATRIX: list[tuple[str, str, dict[str, Any]]] = [
    ("ours", "full", {}),
    ("ours", "houlsby", {}),
    ("ours", "pfeiffer", {}),
    ("ours", "lora", {}),
    ("ours", "floor", {}),  # frozen base, backward from block 0 on, no adapter: a speed bound
    ("peft", "lora", {}),
    ("adapterhub", "pfeiffer", {}),
    ("adapterhub", "houlsby", {}),
]
# Optimisation attempts (variant name, tool, method, spec overrides), each judged against
# the plain row of the same tool and method.
VARIANTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("group_by_length", "ours", "pfeiffer", {"group_by_length": True}),
    ("group_by_length", "ours", "full", {"group_by_length": True}),
    ("no_attn_dropout", "ours", "pfeiffer", {"attention_dropout": 0.0}),
    ("no_attn_dropout", "ours", "full", {"attention_dropout": 0.0}),
    ("checkpointing", "ours", "pfeiffer", {"activation_checkpointing": True}),
    ("checkpointing", "ours", "lora", {"activation_checkpointing": True}),
    ("checkpointing", "ours", "full", {"activation_checkpointing": True}),
    ("bf16", "ours", "pfeiffer", {"precision": "bf16"}),
    ("bf16", "ours", "lora", {"precision": "bf16"}),
    ("bf16", "ours", "full", {"precision": "bf16"}),
    ("bf16+bf16_base", "ours", "pfeiffer", {"precision": "bf16", "base_dtype": "bf16"}),
    ("bf16+bf16_base", "ours", "lora", {"precision": "bf16", "base_dtype": "bf16"}),
    ("bf16", "peft", "lora", {"precision": "bf16"}),
    ("bf16", "adapterhub", "pfeiffer", {"precision": "bf16"}),
    (
        "all",
        "ours",
        "pfeiffer",
        {"precision": "bf16", "base_dtype": "bf16", "group_by_length": True},
    ),
    ("all", "ours", "lora", {"precision": "bf16", "base_dtype": "bf16", "group_by_length": True}),
    ("compile", "ours", "pfeiffer", {"compile": True}),
]
SCALE_MODELS = ("bert-base", "llama-150m")


def settings(args: argparse.Namespace, model: str) -> Spec:
    """The shared spec of one model's rows."""
    device = args.device
    precision = args.precision or ("bf16" if device.startswith("cuda") else "fp32")
    if args.quick:
        return Spec(
            model=model,
            batch_size=8,
            max_length=64,
            examples=64,
            warmup=1,
            steps=3,
            threads=1,
            device=device,
            precision=precision,
        )
    big = model in SCALE_MODELS
    return Spec(
        model=model,
        model_path=_model_path(model),
        batch_size=16 if big else 32,
        max_length=128,
        examples=1024,
        warmup=2 if big else 3,
        steps=args.steps or (6 if big else 12),
        threads=args.threads,
        device=device,
        precision=precision,
    )


def _model_path(model: str) -> str | None:
    if model != "minilm":
        return None
    from adapterkit.models import resolve_model

    return resolve_model("minilm")


def run_one(
    tool: str, spec: Spec, work: Path, label: str, timeout: int, in_process: bool = False
) -> dict[str, Any]:
    """One runner subprocess; returns its JSON, or a row saying why there is none.

    ``in_process`` runs our rows in this process instead (fast start, for the tests;
    peak memory then includes everything before it, so it means nothing).
    """
    module, venv = RUNNERS[tool]
    if in_process and tool == "ours":
        from benchmarks.speed.ours import dispatch

        return {**dispatch(spec), "spec": spec.to_dict(), "in_process": True}
    python = Path(sys.executable) if venv is None else ROOT / venv / "bin" / "python"
    if not python.exists():
        return {"error": f"{venv} is missing: run `make bench-venvs`"}
    out = work / f"{label}.json"
    log = work / "logs" / f"{label}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [str(python), "-m", module, "--spec", json.dumps(spec.to_dict()), "--out", str(out)]
    started = time.perf_counter()
    with log.open("w") as sink:
        try:
            code = subprocess.run(
                command,
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s (log: {log})"}
    if code != 0 or not out.exists():
        tail = log.read_text().strip().splitlines()[-1:] or [""]
        return {"error": f"exit {code}: {tail[0][:200]} (log: {log})"}
    result = json.loads(out.read_text())
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def run_model(args: argparse.Namespace, model: str, work: Path) -> dict[str, Any]:
    """Training rows, optimisation variants and inference for one model."""
    base = settings(args, model)
    rows = []
    variants = VARIANTS if (args.quick or model == "minilm" or args.all_variants) else []
    variants = [] if args.no_variants else variants
    jobs = [("plain", *row) for row in MATRIX] + variants
    for variant, tool, method, overrides in jobs:
        if tool not in args.tools:
            continue
        if overrides.get("compile") and not args.compile:
            continue
        spec = replace(base, method=method, **overrides)
        label = f"{model}-{tool}-{method}" + ("" if variant == "plain" else f"+{variant}")
        result = run_one(tool, spec, work, label, args.timeout, args.in_process)
        row = {"tool": tool, "method": method, "variant": variant, **result}
        rows.append(row)
        shown = (
            result.get("error")
            or f"{result['tokens_per_s']:.0f} tok/s, {result['peak_mb']:.0f} MiB"
        )
        print(f"{label:45s} {shown}", flush=True)
    spec = replace(
        base,
        extra={
            "mode": "inference",
            "repeats": 3 if args.quick else (5 if model in SCALE_MODELS else 20),
        },
    )
    inference = run_one("ours", spec, work, f"{model}-inference", args.timeout, args.in_process)
    return {"settings": base.to_dict(), "training": rows, "inference": inference}


def run_scaling(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Step cost against sequence length and adapted layers, on the scaling model."""
    model = "tiny" if args.quick else args.scaling_model
    extra: dict[str, Any] = {"mode": "scaling"}
    if args.quick:
        extra.update(lengths=[16, 32], layer_counts=[1, 2], layer_length=32)
    spec = replace(
        settings(args, model), batch_size=8, warmup=1, steps=2 if args.quick else 4, extra=extra
    )
    return run_one("ours", spec, work, f"{model}-scaling", args.timeout * 4, args.in_process)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny config, seconds; no docs")
    p.add_argument("--models", nargs="+", default=["minilm", *SCALE_MODELS])
    p.add_argument("--tools", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    p.add_argument("--steps", type=int, help="timed steps per row (default 12; 6 for scale models)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        help="of every row (default: bf16 on CUDA, else fp32)",
    )
    p.add_argument("--compile", action="store_true", help="also try torch.compile (slow to build)")
    p.add_argument("--no-variants", action="store_true", help="skip the optimisation rows")
    p.add_argument("--in-process", action="store_true", help="run our rows in this process (tests)")
    p.add_argument("--all-variants", action="store_true", help="optimisation rows on every model")
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--scaling-model", default="minilm")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per runner")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "speed")
    p.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--no-docs", action="store_true", help="write JSON and PNG only")
    p.add_argument("--merge", action="store_true", help="keep other models from the last JSON")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the docs from the last JSON, run nothing",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.models = ["tiny"]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run everything, then print the ratio table and write JSON (+ docs unless --quick)."""
    args = parse(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        # The work folder's JSON if this machine ran the harness, else the committed copy.
        source = args.work / "speed.json"
        source = source if source.exists() else report.json_path(args.docs)
        results = json.loads(source.read_text())
        plot = args.docs.parent / "benchmarks_speed_scaling.png"
        if plot.exists():
            results["plot"] = str(plot)
        report.write_section(results, args.docs, plot if plot.exists() else None)
        print(f"wrote {args.docs}")
        return 0
    threads = 1 if args.quick else args.threads
    torch.set_num_threads(threads)
    results: dict[str, Any] = {
        "command": " ".join(
            ["python -m benchmarks.speed", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(threads),
        "busy_before": busy_others(),
    }
    with QuietMonitor() as monitor:
        size = 256 if args.quick else (8192 if args.device.startswith("cuda") else 2048)
        results["matmul_peak"] = {
            "fp32": matmul_peak(args.device, torch.float32, size),
            "bf16": matmul_peak(args.device, torch.bfloat16, size),
        }
        results["models"] = {}
        for model in args.models:
            seen = len(monitor.busy)
            results["models"][model] = run_model(args, model, args.work)
            results["models"][model]["busy"] = monitor.busy[seen:]
        if not args.no_scaling:
            seen = len(monitor.busy)
            results["scaling"] = {**run_scaling(args, args.work), "busy": monitor.busy[seen:]}
    results["busy_during"] = monitor.busy
    path = args.work / "speed.json"
    if args.merge and path.exists():  # keep models (and the curve) measured in earlier runs
        earlier = json.loads(path.read_text())
        results["models"] = {**earlier.get("models", {}), **results["models"]}
        if "scaling" not in results and "scaling" in earlier:
            results["scaling"] = earlier["scaling"]
        results["command"] = f"{earlier['command']}` then `{results['command']}"
        results["busy_during"] = earlier.get("busy_during", []) + monitor.busy
        results["busy_before"] = earlier.get("busy_before", []) + results["busy_before"]
    results["quiet"] = not results["busy_during"] and not results["busy_before"]
    path.write_text(json.dumps(results, indent=2) + "\n")
    plot = (
        args.work / "speed_scaling.png"
        if (args.quick or args.no_docs)
        else args.docs.parent / "benchmarks_speed_scaling.png"
    )
    if "scaling" in results and "error" not in results["scaling"]:
        plot_scaling(results["scaling"], plot)
        results["plot"] = str(plot)
    print("\n".join(report.summary_lines(results)))
    if not (args.quick or args.no_docs):
        report.write_section(results, args.docs, plot)
        print(f"wrote {args.docs}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
