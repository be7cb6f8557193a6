"""Timing, peak memory and FLOP counting shared by every runner (torch only).

Peak memory on CPU is the process's resident high-water mark (``VmHWM``), reset
with ``/proc/self/clear_refs`` just before training starts, minus the resident
size the process had before it built the model (torch and Python themselves).
On CUDA it is ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.speed.workload import PoolHead, Spec, loss_of, make_batches

Forward = Callable[[dict[str, torch.Tensor]], torch.Tensor]
"""A tool's forward: batch -> last hidden states (B, T, C)."""


@contextmanager
def swapped(targets: tuple[Any, ...], name: str, value: Any) -> Iterator[None]:
    """Within the block, ``name`` on every one of ``targets`` is ``value`` (an A/B switch)."""
    saved = [getattr(target, name) for target in targets]
    for target in targets:
        setattr(target, name, value)
    try:
        yield
    finally:
        for target, original in zip(targets, saved, strict=True):
            setattr(target, name, original)


def _proc_status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB -> MiB
    return float("nan")


def rss_mb() -> float:
    """Current resident set size in MiB (CPU)."""
    return _proc_status_mb("VmRSS")


def reset_peak(device: str) -> None:
    """Start a new peak-memory window."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def peak_mb(device: str, baseline: float) -> float:
    """Peak memory (MiB) since :func:`reset_peak`, less ``baseline`` on CPU."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return _proc_status_mb("VmHWM") - baseline


def sync(device: str) -> None:
    """Wait for queued kernels (CUDA) so wall-clock times are real."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def autocast(spec: Spec):
    """bf16 autocast when asked for, else nothing."""
    if spec.precision == "bf16":
        return torch.autocast(device_type=spec.device.split(":")[0], dtype=torch.bfloat16)
    return nullcontext()


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matmul-like ops that ``fn`` runs (forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(device: str, dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """Achieved FLOP/s of a large square ``torch.matmul``: the machine's practical peak."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(2):
        torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def train_benchmark(
    spec: Spec,
    base: nn.Module,
    forward: Forward,
    trainable: list[nn.Parameter],
    baseline_mb: float,
    vocab_size: int,
    batches: list[dict[str, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Time ``spec.steps`` AdamW steps after ``spec.warmup``; the same loop for every tool.

    Args:
        spec: The configuration.
        base: The (possibly wrapped) model; its hidden size sizes the head.
        forward: Batch -> last hidden states.
        trainable: The tool's trainable parameters (the head's are added here).
        baseline_mb: Resident MiB before the model was built (CPU memory baseline).
        vocab_size: Token ids are drawn below this.
        batches: The batches to use (default: :func:`make_batches`).
    """
    hidden = base.config.hidden_size
    torch.manual_seed(spec.seed + 1)  # the same head for every tool, whatever RNG they used
    head = PoolHead(hidden).to(spec.device)
    params = [p for p in trainable if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    batches = batches if batches is not None else make_batches(spec, vocab_size)

    def loss_on(batch: dict[str, torch.Tensor], fn: Forward) -> torch.Tensor:
        with autocast(spec):
            return loss_of(head(fn(batch), batch["attention_mask"]), batch)

    reset_peak(spec.device)
    times, tokens, padded, losses = [], [], [], []
    for index, batch in enumerate(batches):
        sync(spec.device)
        start = time.perf_counter()
        loss = loss_on(batch, forward)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(spec.device)
        elapsed = time.perf_counter() - start
        losses.append(loss.item())
        if index >= spec.warmup:
            times.append(elapsed)
            tokens.append(int(batch["attention_mask"].sum()))
            padded.append(batch["attention_mask"].numel())
    memory = peak_mb(spec.device, baseline_mb)

    # FLOPs of one step (forward + backward) on the timed batch of median padded size,
    # counted on the plain (uncompiled) forward; the optimizer's elementwise work is left out.
    timed = batches[spec.warmup :]
    pick = sorted(range(len(timed)), key=lambda i: padded[i])[len(timed) // 2]
    flops = count_flops(lambda: loss_on(timed[pick], forward).backward())
    optimizer.zero_grad(set_to_none=True)
    flops_per_padded_token = flops / padded[pick]
    per_step_tps = [n / t for n, t in zip(tokens, times, strict=True)]
    median_step = statistics.median(times)
    padded_per_s = statistics.median(p / t for p, t in zip(padded, times, strict=True))
    return {
        "tokens_per_s": statistics.median(per_step_tps),
        "step_ms": 1000 * median_step,
        "step_ms_all": [round(1000 * t, 2) for t in times],
        "nonpad_share": sum(tokens) / sum(padded),
        "peak_mb": memory,
        "trainable_params": sum(p.numel() for p in params),
        "total_params": sum(p.numel() for p in base.parameters())
        + sum(p.numel() for p in head.parameters()),
        "flops_per_padded_token": flops_per_padded_token,
        "achieved_flops": flops_per_padded_token * padded_per_s,
        "losses": [round(x, 5) for x in losses],
    }


def run_main(argv: list[str] | None, runner: Callable[[Spec], dict[str, Any]]) -> int:
    """Common CLI of the runners: ``--spec JSON --out FILE``."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True, help="a Spec as JSON")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    spec = Spec(**json.loads(args.spec))
    torch.set_num_threads(spec.threads)
    result = runner(spec)
    result.update({"spec": spec.to_dict(), "torch": torch.__version__})
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}))
    return 0


if __name__ == "__main__":
    sys.exit("run a runner module, not this one")
