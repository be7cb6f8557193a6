"""Which SDPA kernel to train with on the CPU: ``python -m benchmarks.attention_kernels``.

PyTorch's scaled-dot-product attention has two CPU kernels: the fused (flash) one, chosen
whenever attention dropout is 0 (evaluation, or ``--attention-dropout 0`` in training),
and the math one, which any dropout above 0 falls back to. This benchmark times a
training step (forward and backward of the whole model, attention dropout 0) and an
evaluation forward under each kernel, in fp32 and in bf16 autocast, at a few sequence
lengths, side by side in one run (interleaved repeats, medians), with dropout 0.1 on the
math kernel beside them as the default's reference. The ratios decide what
``optim.autocast_context`` trains with. Writes its block in docs/benchmarks.md; run it on
a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmarks.doc_blocks import block, put_block
from benchmarks.speed.machine import machine_info

PAGE = Path("docs/benchmarks.md")
KERNELS = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION}


def _model(name: str, dropout: float) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModel

    from adapterkit.models import resolve_model, set_attention_dropout

    path = resolve_model(name)
    config = AutoConfig.from_pretrained(path)
    set_attention_dropout(config, dropout)
    config.hidden_dropout_prob = 0.0  # the attention kernel is what is timed, nothing else
    return AutoModel.from_pretrained(path, config=config)


def _step(
    model: torch.nn.Module, ids: torch.Tensor, train: bool, bf16: bool, kernel: SDPBackend
) -> Callable[[], None]:
    """One timed call: a training step's forward and backward, or an evaluation forward."""

    def run() -> None:
        model.train(train)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
        with autocast, sdpa_kernel(kernel), torch.set_grad_enabled(train):
            hidden = model(input_ids=ids).last_hidden_state
        if train:
            hidden.float().sum().backward()
            model.zero_grad(set_to_none=True)

    return run


def measure(model_name: str, lengths: list[int], batch: int, repeats: int) -> list[dict]:
    """Median milliseconds of every (mode, precision, length, arm); arms interleaved."""
    models = {p: _model(model_name, p) for p in (0.0, 0.1)}
    vocab = models[0.0].config.vocab_size
    rows = []
    for train in (True, False):
        for bf16 in (False, True):
            for length in lengths:
                ids = torch.randint(1000 % vocab, vocab, (batch, length))
                arms = {
                    f"dropout 0, {k}": _step(models[0.0], ids, train, bf16, KERNELS[k])
                    for k in KERNELS
                }
                if train:  # the default's own step: dropout 0.1 can only run the math kernel
                    arms["dropout 0.1, math"] = _step(models[0.1], ids, True, bf16, SDPBackend.MATH)
                times: dict[str, list[float]] = {arm: [] for arm in arms}
                for run in arms.values():  # warm-up
                    run()
                for _ in range(repeats):
                    for arm, run in arms.items():
                        started = time.perf_counter()
                        run()
                        times[arm].append(1000 * (time.perf_counter() - started))
                for arm, values in times.items():
                    rows.append(
                        {
                            "mode": "train step" if train else "evaluation forward",
                            "precision": "bf16" if bf16 else "fp32",
                            "length": length,
                            "arm": arm,
                            "ms": statistics.median(values),
                        }
                    )
    return rows


def table(rows: list[dict]) -> list[str]:
    """One line per (mode, precision, length): each arm's ms and flash over math."""
    lines = [
        "| mode | precision | length | dropout 0, math (ms) | dropout 0, flash (ms) "
        "| flash / math | dropout 0.1, math (ms) | dropout 0.1 / dropout 0 on math |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["mode"], r["precision"], r["length"]) for r in rows}, reverse=True)
    for mode, precision, length in keys:
        ms = {
            r["arm"]: r["ms"]
            for r in rows
            if (r["mode"], r["precision"], r["length"]) == (mode, precision, length)
        }
        math_ms, flash_ms = ms["dropout 0, math"], ms["dropout 0, flash"]
        default = ms.get("dropout 0.1, math")  # training only
        reference = "– | –" if default is None else f"{default:.1f} | {default / math_ms:.2f}"
        lines.append(
            f"| {mode} | {precision} | {length} | {math_ms:.1f} | {flash_ms:.1f} | "
            f"{flash_ms / math_ms:.2f} | {reference} |"
        )
    return lines


def write(rows: list[dict], args: argparse.Namespace, page: Path = PAGE) -> None:
    """The block in docs/benchmarks.md, and the raw rows beside it."""
    machine = json.dumps(machine_info(torch.get_num_threads()))
    lines = [
        "## Attention kernels on the CPU",
        "",
        f"From `python -m benchmarks.attention_kernels --model {args.model} --batch {args.batch} "
        f"--repeats {args.repeats}` (see its docstring). Machine: {machine}. The whole "
        "model's training step (forward + backward) and evaluation forward, median ms, "
        "arms interleaved. Hidden dropout off in every arm, so only attention differs.",
        "",
        *table(rows),
        "",
        "Read: flash / math above 1 means the fused kernel is slower. Training in bf16, "
        "adapterkit runs attention on the math kernel (`optim.autocast_context`); fp32 "
        "training and evaluation keep PyTorch's own choice.",
    ]
    put_block(page, block("attention-kernels", lines))
    page.with_name("attention_kernels.json").write_text(json.dumps(rows, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--page", default=str(PAGE))
    args = parser.parse_args(argv)
    rows = measure(args.model, args.lengths, args.batch, args.repeats)
    write(rows, args, Path(args.page))
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
