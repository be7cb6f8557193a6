"""What the quality benchmark runs, where its runs land, and the targets it is judged by."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

# Each task at the budget of the peer reference runs quoted in the issue.
TASKS: dict[str, dict[str, Any]] = {
    "trec": {"data": "trec", "metric": "accuracy", "batch_size": 32, "max_length": 64, "epochs": 5},
    "conll2003": {
        "data": "conll2003",
        "metric": "f1",
        "batch_size": 16,
        "max_length": 128,
        "epochs": 2,
    },
}
# Rows that are a method plus options (what a user passes as flags): name -> (method, options).
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "bitfit": ("head", {"train_bias": True}),  # --method head --train-bias
    "houlsby-norms": ("houlsby", {"train_norms": True}),  # as Houlsby et al. trained theirs
    # Other sizes of some methods (the frontier page draws quality_sweep.SIZES instead).
    "lora-r2": ("lora", {"r": 2}),
    "lora-r32": ("lora", {"r": 32}),
    "pfeiffer-rf64": ("pfeiffer", {"reduction_factor": 64}),
    "pfeiffer-rf4": ("pfeiffer", {"reduction_factor": 4}),
    "prefix-p5": ("prefix", {"prefix_length": 5}),
    "prompt-p5": ("prompt", {"num_virtual_tokens": 5}),
    "adalora-r4": ("adalora", {"r": 6, "target_r": 4}),
}
SECOND_WAVE = ["prompt", "prefix", "adalora", "mam", "unipelt"]
METHODS = ["head", "full", "houlsby", "pfeiffer", "lora", "ia3", "dora", *SECOND_WAVE, *RECIPES]
ADAPTERS = ["houlsby", "pfeiffer", "lora", "ia3", "dora", *SECOND_WAVE, *RECIPES]
RUNS = Path("runs/quality")
FULL_MODEL_BYTES = 90_868_376  # MiniLM's model.safetensors in the wheel

# Peer reference points quoted in the issue (same MiniLM, seed 0): not produced here.
PEERS = [
    ("full fine-tuning, lr 5e-5 (HF Trainer)", "96.8", "85.0", "100"),
    ("head only, lr 1e-3", "41.0", "—", "0.01"),
    ("peft LoRA r=8 query/value, lr 5e-4", "93.0", "77.5", "0.33"),
    ("AdapterHub Pfeiffer rf 16, lr 1e-3", "96.4", "81.5", "1.15"),
    ("AdapterHub Houlsby rf 16, lr 1e-3", "96.4", "—", "1.63"),
]
# The targets for every adapter row: at least the best peer adapter row of each
# task, within FULL_GAP points of `full`, at most MAX_TRAINABLE_PERCENT trainable and a
# bundle at most MAX_BUNDLE_PERCENT of the full model's file.
BEST_PEER_ADAPTER = {"trec": 96.4, "conll2003": 81.5}
FULL_GAP = 0.5
MAX_TRAINABLE_PERCENT = 2.0
MAX_BUNDLE_PERCENT = 3.0


# The trainer defaults every quality table was measured with: plain shuffled batches, each
# a mean over its own items, in fp32. They were the defaults until grouped batches with even
# item weights and, on CPUs with native bf16, bf16 autocast replaced them (docs/switches.md);
# pinned here so that the tables reproduce.
MEASURED_AS: dict[str, Any] = {
    "group_by_length": False,
    "loss_weighting": "batch",
    "precision": "fp32",
}


class Variant(NamedTuple):
    """A variant of the default runs: a switch a user can pass to adapterkit train."""

    switches: dict[str, Any]
    """TrainConfig fields the variant sets."""
    flag: str
    """The adapterkit train flag that does the same."""
    what: str
    """What the report says of it (one sentence, ends with a full stop)."""


VARIANTS: dict[str, Variant] = {
    "grouped": Variant(
        {"group_by_length": True},
        "--group-by-length --loss-weighting batch",
        "training batches grouped by length, each a mean over its own tokens. Grouping pads "
        "less, so it trains faster; weighted so, it costs quality (the default pairs it with "
        "even token weights: docs/switches.md).",
    ),
    "even": Variant(
        {"loss_weighting": "even"},
        "--no-group-by-length --loss-weighting even",
        "every labelled token (or row) weighing the same whatever batch it lands in, with "
        "shuffled batches.",
    ),
    "grouped-even": Variant(
        {"group_by_length": True, "loss_weighting": "even"},
        "--group-by-length --loss-weighting even",
        "training batches grouped by length, every labelled token weighing the same: the "
        "pair that would make grouping's speed free of its quality cost.",
    ),
    "bf16": Variant(
        {"precision": "bf16"},
        "--precision bf16",
        "bf16 autocast (on a CPU with avx512_bf16 or AMX, 1.5-1.8x faster: docs/benchmarks.md); "
        "``--precision auto`` picks it on such CPUs since docs/switches.md found it costs nothing.",
    ),
    "no-attn-dropout": Variant(
        {"attention_dropout": 0.0},
        "--attention-dropout 0",
        "no attention-probability dropout in the base. Training then takes PyTorch's fused "
        "attention kernel (faster, less memory: docs/benchmarks.md); it is off by default "
        "because it changes the regularisation.",
    ),
}


def run_dir(
    task: str, method: str, seed: int, variant: str | None = None, runs: Path = RUNS
) -> Path:
    """runs/quality/<task>-<method> for seed 0 (the headline run), ...-seed<N> for others;
    ``-<variant>`` before the seed for runs of a VARIANTS entry."""
    name = f"{task}-{method}" + (f"-{variant}" if variant else "")
    return runs / (name if seed == 0 else f"{name}-seed{seed}")
