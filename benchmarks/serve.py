"""Serving benchmark: mixed-adapter batching versus a naive one-request-at-a-time server.

    .venv/bin/python -m benchmarks.serve                 # full run, writes docs/benchmarks.md
    .venv/bin/python -m benchmarks.serve --smoke         # a few requests, writes nothing in docs/

For each of ``--methods`` (LoRA, the default method for classification, and Pfeiffer),
builds ``max(--counts)`` bundles with random weights on the base (speed does not
depend on the weights' values), starts ``adapterkit serve`` twice on a loopback
port (batched, then ``--naive``), and for each adapter count N sends ``--requests``
one-input requests from ``--concurrency`` client threads, each naming one of N
adapters at random. Reports requests/s and p50/p95 latency per (mode, N). The row
with 0 adapters serves a ``head`` bundle (the task head on the frozen base, no
adapter modules): what the server does without adapters, so the table shows what
adapters cost at all.

Goals from the issues: with 16 adapters, batched >= 3x naive throughput, and
>= 0.9x the batched throughput with 1 adapter. Client threads share the machine's
cores with the server, as a local load test does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import torch

from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer
from adapterkit.serve.launch import running_server
from adapterkit.tasks import make_task
from benchmarks.doc_blocks import put_block

TEXTS = [
    "Who wrote Hamlet?",
    "How far is the Moon from the Earth?",
    "What does NASA stand for?",
    "Where is the Eiffel Tower?",
    "Why is the sky blue?",
    "When did the Berlin Wall fall?",
    "What is the capital of Australia?",
    "How many bones are in the human body?",
    "Which planet has the most moons?",
    "What is the boiling point of water in Fahrenheit?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What language is spoken in Brazil?",
]
LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
HEAD_ONLY = "head-only"  # the 0-adapter row's bundle: a task head, no adapter modules
DOCS = Path("docs/benchmarks.md")
START, END = "<!-- serve-benchmark:start -->", "<!-- serve-benchmark:end -->"


def build_bundles(model_name: str, count: int, method: str, folder: Path) -> list[str]:
    """``count`` classification bundles with random adapter and head weights, and the
    :data:`HEAD_ONLY` bundle (not in the returned names)."""
    shutil.rmtree(folder, ignore_errors=True)
    tokenizer = load_tokenizer(model_name)
    model = AdaptedModel(load_base(model_name), name_or_path=model_name)
    task = make_task("sequence-classification", tokenizer, LABELS, 64)
    names = [f"a{i:02d}" for i in range(count)]
    for seed, name in enumerate([*names, HEAD_ONLY]):
        torch.manual_seed(seed)
        model.add_adapter(
            name,
            make_config("head" if name == HEAD_ONLY else method),
            head=task.build_head(model.base.config.hidden_size),
            task=task.task_info(),
        )
        with torch.no_grad():
            for param in model.adapter_parameters(name).values():
                param.normal_(std=0.02)
        model.save_adapter(name, folder / name)
    return names


def load_test(url: str, names: list[str], requests: int, concurrency: int, seed: int) -> dict:
    """Send ``requests`` one-input requests over ``names`` from ``concurrency`` threads."""
    rng = random.Random(seed)
    plan = [(rng.choice(names), rng.choice(TEXTS)) for _ in range(requests)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, timeout=300, limits=limits) as client:

        def one(item: tuple[str, str]) -> float:
            start = time.perf_counter()
            response = client.post("/v1/predict", json={"adapter": item[0], "inputs": [item[1]]})
            response.raise_for_status()
            return time.perf_counter() - start

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, plan[: 2 * concurrency]))  # warm-up: connections, allocator
            before = client.get("/health").json()
            start = time.perf_counter()
            latencies = sorted(pool.map(one, plan))
            wall = time.perf_counter() - start
        after = client.get("/health").json()
    batches = max(after["batches"] - before["batches"], 1)
    return {
        "adapters": 0 if names == [HEAD_ONLY] else len(names),
        "requests": requests,
        "seconds": round(wall, 3),
        "requests_per_s": round(requests / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        "mean_batch_rows": round((after["rows"] - before["rows"]) / batches, 1),
        "precision": after["precision"],
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median request rate, with every run's rate beside it."""
    ranked = sorted(runs, key=lambda run: run["requests_per_s"])
    return {
        **ranked[(len(ranked) - 1) // 2],
        "requests_per_s_runs": [run["requests_per_s"] for run in runs],
    }


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(server_threads: int | None) -> dict:
    """What the numbers were measured on."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "server_threads": server_threads or f"torch default ({torch.get_num_threads()})",
    }


def table(results: dict) -> list[str]:
    """Markdown rows: one per adapter count, batched next to naive."""
    lines = [
        "| adapters | batched req/s | p50 ms | p95 ms | mean batch | naive req/s | p50 ms | p95 ms | speed-up |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b, n in zip(results["batched"], results["naive"], strict=True):
        speedup = b["requests_per_s"] / n["requests_per_s"]
        label = b["adapters"] or "0 (head only)"
        lines.append(
            f"| {label} | {b['requests_per_s']} | {b['p50_ms']} | {b['p95_ms']} "
            f"| {b['mean_batch_rows']} | {n['requests_per_s']} | {n['p50_ms']} | {n['p95_ms']} "
            f"| {speedup:.1f}x |"
        )
    return lines


def goals(results: dict) -> list[str]:
    """The issues' two targets, checked against the largest and smallest adapter counts, and
    what one adapter costs against the head-only row."""
    batched = {r["adapters"]: r["requests_per_s"] for r in results["batched"]}
    naive = {r["adapters"]: r["requests_per_s"] for r in results["naive"]}
    base = batched.pop(0, None)
    most, least = max(batched), min(batched)
    ratio, kept = batched[most] / naive[most], batched[most] / batched[least]
    lines = [
        f"- {most} adapters, batched vs naive: {ratio:.1f}x (goal >= 3x): "
        + ("met" if ratio >= 3 else "NOT met"),
        f"- {most} adapters vs {least}, batched: {kept:.2f}x the request rate (goal >= 0.9x): "
        + ("met" if kept >= 0.9 else "NOT met"),
    ]
    if base:
        lines.append(
            f"- {least} adapter vs head only, batched: {batched[least] / base:.2f}x the request "
            f"rate; {most} adapters: {batched[most] / base:.2f}x"
        )
    return lines


def write_section(results: dict, command: str, docs: Path = DOCS) -> None:
    """Replace (or add) the Serving section of ``docs`` (docs/benchmarks.md), keeping the rest."""
    m = results["machine"]
    body = [
        START,
        "## Serving",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, device {m['device']}, torch {m['torch']} "
        f"({m['server_threads']} server threads), Python {m['python']}. "
        f"Server precision: {_precisions(results)} (`--precision {results['precision']}`). "
        f"Model: {results['model']}, classification bundles with random weights, "
        f"{results['requests']} one-input requests per load test from {results['concurrency']} "
        f"client threads on the same machine, {results['repeats']} load tests per row, "
        f"interleaved (the median's row is shown), server flags `{results['server_flags']}`.",
        "",
        f"Command: `{command}`",
        "",
        "Model forwards alone (no HTTP), one adapter against the base and 16 mixed against "
        "one: docs/inference_add.md (`python -m benchmarks.inference_add`).",
        "",
    ]
    for method, rows in results["methods"].items():
        body += [f"### {method}", "", *table(rows), "", *goals(rows), ""]
    body += [
        "<details><summary>JSON</summary>",
        "",
        "```json",
        json.dumps(results, indent=2),
        "```",
        "</details>",
        END,
    ]
    put_block(docs, "\n".join(body))


def _precisions(results: dict) -> str:
    """What the servers' ``--precision`` resolved to, as their /health said."""
    seen = {
        row.get("precision", "fp32")  # runs from before the flag existed were fp32
        for rows in results["methods"].values()
        for mode in rows.values()
        for row in mode
    }
    return ", ".join(sorted(seen))


def serve_and_load(
    args: argparse.Namespace, folder: Path, names: list[str], flags: list[str], mode: str
) -> list[dict]:
    """Start the server on ``folder``'s bundles in ``mode`` and load-test every adapter
    count (0: the head-only bundle); one median row per count."""
    serve_args = ["--model", args.model, "--adapters", str(folder / "adapters"), *flags]
    serve_args += ["--naive"] if mode == "naive" else []
    log = folder / f"server-{mode}.log"
    with running_server(serve_args, log, threads=args.threads, timeout=300) as url:
        # Rows interleaved (every count once, then again): drift hits them alike.
        runs: dict[int, list[dict]] = {count: [] for count in [0, *args.counts]}
        for _ in range(args.repeats):
            for count, done in runs.items():
                served = names[:count] if count else [HEAD_ONLY]
                done.append(load_test(url, served, args.requests, args.concurrency, seed=count))
    rows = [median_run(done) for done in runs.values()]
    for row in rows:
        print(f"{mode:8s} {json.dumps(row)}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="minilm")
    p.add_argument(
        "--methods",
        nargs="+",
        default=["lora", "pfeiffer"],
        help="one table each (lora: the default method for classification)",
    )
    p.add_argument("--counts", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--requests", type=int, default=512, help="timed requests per row")
    p.add_argument("--concurrency", type=int, default=32, help="client threads")
    p.add_argument("--repeats", type=int, default=5, help="load tests per row; the median counts")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--threads", type=int, help="server torch threads (default: torch's)")
    p.add_argument("--precision", default="auto", help="the servers' --precision")
    p.add_argument("--work", default="runs/bench/serve", help="bundles, logs and JSON go here")
    p.add_argument("--docs", type=Path, default=DOCS, help="markdown file to update")
    p.add_argument("--smoke", action="store_true", help="16 requests, counts 1 and 4, no docs")
    args = p.parse_args(argv)
    if args.smoke:
        args.requests, args.counts, args.concurrency, args.repeats = 16, [1, 4], 8, 1
    work = Path(args.work)
    flags = ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    flags += ["--precision", args.precision]
    results: dict = {
        "precision": args.precision,
        "model": args.model,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "server_flags": " ".join(flags),
        "machine": machine(args.threads),
        "methods": {},
    }
    for method in args.methods:
        folder = work / method
        names = build_bundles(args.model, max(args.counts), method, folder / "adapters")
        results["methods"][method] = {
            mode: serve_and_load(args, folder, names, flags, mode) for mode in ("batched", "naive")
        }
    (work / "serve.json").write_text(json.dumps(results, indent=2) + "\n")
    for method, rows in results["methods"].items():
        print("\n".join(["", method, *table(rows), "", *goals(rows)]))
    if not args.smoke:
        write_section(
            results, "python -m benchmarks.serve " + " ".join(argv or sys.argv[1:]), args.docs
        )
        print(f"wrote {args.docs} and {work / 'serve.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
