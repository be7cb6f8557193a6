"""Serving benchmark: mixed-adapter batching versus a naive one-request-at-a-time server.

    .venv/bin/python -m benchmarks.serve                 # full run, writes docs/benchmarks.md
    .venv/bin/python -m benchmarks.serve --smoke         # a few requests, writes nothing in docs/

Builds ``max(--counts)`` bundles with random weights on the base (speed does not
depend on the weights' values), starts ``adapterkit serve`` twice on a loopback
port (batched, then ``--naive``), and for each adapter count N sends ``--requests``
one-input requests from ``--concurrency`` client threads, each naming one of N
adapters at random. Reports requests/s and p50/p95 latency per (mode, N).

Goals from the issue: with 16 adapters, batched >= 3x naive throughput, and at most
20 % below batched throughput with 1 adapter. Client threads share the machine's
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
DOCS = Path("docs/benchmarks.md")
START, END = "<!-- serve-benchmark:start -->", "<!-- serve-benchmark:end -->"


def build_bundles(model_name: str, count: int, method: str, folder: Path) -> list[str]:
    """``count`` classification bundles with random adapter and head weights."""
    shutil.rmtree(folder, ignore_errors=True)
    tokenizer = load_tokenizer(model_name)
    model = AdaptedModel(load_base(model_name), name_or_path=model_name)
    task = make_task("sequence-classification", tokenizer, LABELS, 64)
    names = [f"a{i:02d}" for i in range(count)]
    for seed, name in enumerate(names):
        torch.manual_seed(seed)
        model.add_adapter(
            name,
            make_config(method),
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
        "adapters": len(names),
        "requests": requests,
        "seconds": round(wall, 3),
        "requests_per_s": round(requests / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        "mean_batch_rows": round((after["rows"] - before["rows"]) / batches, 1),
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
        lines.append(
            f"| {b['adapters']} | {b['requests_per_s']} | {b['p50_ms']} | {b['p95_ms']} "
            f"| {b['mean_batch_rows']} | {n['requests_per_s']} | {n['p50_ms']} | {n['p95_ms']} "
            f"| {speedup:.1f}x |"
        )
    return lines


def goals(results: dict) -> list[str]:
    """The issue's two targets, checked against the largest and smallest adapter counts."""
    batched = {r["adapters"]: r["requests_per_s"] for r in results["batched"]}
    naive = {r["adapters"]: r["requests_per_s"] for r in results["naive"]}
    most, least = max(batched), min(batched)
    ratio, drop = batched[most] / naive[most], 1 - batched[most] / batched[least]
    return [
        f"- {most} adapters, batched vs naive: {ratio:.1f}x (goal >= 3x): "
        + ("met" if ratio >= 3 else "NOT met"),
        f"- {most} adapters vs {least}, batched: {100 * drop:.0f} % slower (goal <= 20 %): "
        + ("met" if drop <= 0.2 else "NOT met"),
    ]


def write_section(results: dict, command: str, docs: Path = DOCS) -> None:
    """Replace (or add) the Serving section of ``docs`` (docs/benchmarks.md), keeping the rest."""
    m = results["machine"]
    body = [
        START,
        "## Serving",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, device {m['device']}, torch {m['torch']} "
        f"({m['server_threads']} server threads), Python {m['python']}. "
        f"Model: {results['model']}, {results['method']} bundles with random weights, "
        f"{results['requests']} one-input requests per row from {results['concurrency']} client "
        f"threads on the same machine, server flags `{results['server_flags']}`.",
        "",
        f"Command: `{command}`",
        "",
        *table(results),
        "",
        *goals(results),
        "",
        "<details><summary>JSON</summary>",
        "",
        "```json",
        json.dumps(results, indent=2),
        "```",
        "</details>",
        END,
    ]
    section = "\n".join(body) + "\n"
    text = docs.read_text() if docs.exists() else "# Benchmarks\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="minilm")
    p.add_argument("--method", default="pfeiffer")
    p.add_argument("--counts", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--requests", type=int, default=512, help="timed requests per row")
    p.add_argument("--concurrency", type=int, default=32, help="client threads")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--threads", type=int, help="server torch threads (default: torch's)")
    p.add_argument("--work", default="runs/bench/serve", help="bundles, logs and JSON go here")
    p.add_argument("--docs", type=Path, default=DOCS, help="markdown file to update")
    p.add_argument("--smoke", action="store_true", help="16 requests, counts 1 and 4, no docs")
    args = p.parse_args(argv)
    if args.smoke:
        args.requests, args.counts, args.concurrency = 16, [1, 4], 8
    work = Path(args.work)
    names = build_bundles(args.model, max(args.counts), args.method, work / "adapters")
    flags = ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    results: dict = {
        "model": args.model,
        "method": args.method,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "server_flags": " ".join(flags),
        "machine": machine(args.threads),
    }
    for mode in ("batched", "naive"):
        serve_args = ["--model", args.model, "--adapters", str(work / "adapters"), *flags]
        serve_args += ["--naive"] if mode == "naive" else []
        log = work / f"server-{mode}.log"
        with running_server(serve_args, log, threads=args.threads, timeout=300) as url:
            results[mode] = []
            for count in args.counts:
                row = load_test(url, names[:count], args.requests, args.concurrency, seed=count)
                results[mode].append(row)
                print(f"{mode:8s} {json.dumps(row)}", flush=True)
    (work / "serve.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(["", *table(results), "", *goals(results)]))
    if not args.smoke:
        write_section(
            results, "python -m benchmarks.serve " + " ".join(argv or sys.argv[1:]), args.docs
        )
        print(f"wrote {args.docs} and {work / 'serve.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
