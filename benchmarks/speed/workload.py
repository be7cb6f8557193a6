"""The shared workload: models, synthetic batches, the head and the loss.

Imports only torch and transformers (any version from 4.57 on), because every
runner, in every virtual environment, builds exactly the same model and batches
from the same spec.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

# Random-weight configurations: speed does not depend on the weights' values.
RANDOM_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {  # for --quick and the tests: seconds on one core
        "kind": "bert",
        "vocab_size": 120,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
    },
    "tiny-llama": {
        "kind": "llama",
        "vocab_size": 120,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
    },
    "bert-base": {  # BERT-base: 12 layers, hidden 768, 110M parameters
        "kind": "bert",
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
    },
    "llama-150m": {  # SmolLM2-135M's shape: 30 layers, hidden 576, GQA 9/3 heads, tied vocab
        "kind": "llama",
        "vocab_size": 49152,
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "intermediate_size": 1536,
        "max_position_embeddings": 2048,
    },
}

# Where bottleneck adapters and LoRA go, per family (the same names for every tool).
LORA_TARGETS = {"bert": ["query", "value"], "llama": ["q_proj", "v_proj"]}


@dataclass
class Spec:
    """One benchmark configuration, passed to a runner as JSON."""

    model: str = "tiny"
    """``minilm`` (real weights from ``model_path``) or a key of RANDOM_CONFIGS."""
    model_path: str | None = None
    """Local directory of the real model (resolved by the orchestrator)."""
    method: str = "pfeiffer"
    """full, floor, or an adapter method (houlsby, pfeiffer, parallel and lora at the sizes
    below; the other families at their defaults)."""
    reduction_factor: int = 16
    lora_r: int = 8
    lora_alpha: float = 16.0
    batch_size: int = 32
    max_length: int = 128
    examples: int = 512
    warmup: int = 3
    steps: int = 10
    seed: int = 0
    threads: int = 1
    precision: str = "fp32"
    """fp32, or bf16 (autocast)."""
    base_dtype: str = "fp32"
    """fp32, or bf16: frozen base weights stored in bf16, adapters kept in fp32 (ours only)."""
    group_by_length: bool = False
    attention_dropout: float | None = None
    """Override the model's attention-probability dropout (None: the model's own). At 0,
    SDPA can run its fused flash kernel, which keeps no (B, H, T, T) probabilities."""
    activation_checkpointing: bool = False
    """Recompute each block in the backward pass (ours: adapterkit.checkpointing)."""
    compile: bool = False
    device: str = "cpu"
    fixed_length: int | None = None
    """Every example exactly this long (the scaling curve); else a skewed length mix."""
    layers: list[int] | None = None
    """Adapt only these layer indices (the scaling curve); None: all."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def family(spec: Spec) -> str:
    """``bert`` or ``llama``."""
    return "bert" if spec.model == "minilm" else RANDOM_CONFIGS[spec.model]["kind"]


def build_base(spec: Spec) -> tuple[nn.Module, float]:
    """The headless base model (AutoModel), seeded, in train mode, with SDPA attention.

    Also returns the resident MiB just before the weights were made (after the model
    classes were imported): the baseline that peak training memory is measured from.
    """
    from transformers import (
        AutoConfig,
        AutoModel,
        BertConfig,
        BertModel,
        LlamaConfig,
        LlamaModel,
    )

    from benchmarks.speed.measure import rss_mb

    torch.manual_seed(spec.seed)
    baseline = rss_mb()
    if spec.model == "minilm":
        config = AutoConfig.from_pretrained(spec.model_path)
        _set_attention_dropout(config, spec.attention_dropout)
        model = AutoModel.from_pretrained(
            spec.model_path, config=config, attn_implementation="sdpa"
        )
    else:
        values = dict(RANDOM_CONFIGS[spec.model])
        kind = values.pop("kind")
        config_class, model_class = (
            (BertConfig, BertModel) if kind == "bert" else (LlamaConfig, LlamaModel)
        )
        config = config_class(**values, pad_token_id=0)
        config._attn_implementation = "sdpa"
        _set_attention_dropout(config, spec.attention_dropout)
        model = model_class(config)
    return model.to(spec.device).train(), baseline


def _set_attention_dropout(config: Any, value: float | None) -> None:
    if value is None:
        return
    # The library's own switch (adapterkit train --attention-dropout); imported here because
    # the peer runners build their models with this module in venvs without adapterkit.
    from adapterkit.models import set_attention_dropout

    set_attention_dropout(config, value, "benchmark model")


def example_lengths(spec: Spec) -> list[int]:
    """Token counts per example: a right-skewed mix (log-normal, median ~ max/4) or fixed."""
    if spec.fixed_length is not None:
        return [spec.fixed_length] * spec.examples
    rng = random.Random(spec.seed)
    low = min(8, spec.max_length)
    median = spec.max_length / 4
    return [
        max(low, min(spec.max_length, round(rng.lognormvariate(math.log(median), 0.6))))
        for _ in range(spec.examples)
    ]


def make_examples(spec: Spec, vocab_size: int) -> list[tuple[list[int], int]]:
    """(token ids, label) pairs; ids avoid 0, the pad id."""
    rng = random.Random(spec.seed + 1)
    return [
        ([rng.randrange(1, vocab_size) for _ in range(n)], rng.randrange(NUM_LABELS))
        for n in example_lengths(spec)
    ]


NUM_LABELS = 6


def batch_order(spec: Spec, lengths: list[int]) -> list[list[int]]:
    """Example indices per batch: shuffled, or length-grouped (sorted within megabatches).

    Length grouping follows transformers' LengthGroupedSampler: shuffle, cut into
    megabatches of 50 batches, sort each by length, then shuffle the batch order.
    """
    rng = random.Random(spec.seed + 2)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if spec.group_by_length:
        mega = 50 * spec.batch_size
        order = [
            i
            for start in range(0, len(order), mega)
            for i in sorted(order[start : start + mega], key=lambda j: -lengths[j])
        ]
    batches = [order[i : i + spec.batch_size] for i in range(0, len(order), spec.batch_size)]
    if spec.group_by_length:
        rng.shuffle(batches)
    return batches


def collate(
    examples: list[tuple[list[int], int]], indices: list[int], device: str
) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example of the batch (dynamic padding)."""
    rows = [examples[i] for i in indices]
    width = max(len(ids) for ids, _ in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for r, (tokens, _) in enumerate(rows):
        ids[r, : len(tokens)] = torch.tensor(tokens)
        mask[r, : len(tokens)] = 1
    labels = torch.tensor([label for _, label in rows])
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "labels": labels.to(device),
    }


def make_batches(
    spec: Spec, vocab_size: int, order: list[list[int]] | None = None
) -> list[dict[str, torch.Tensor]]:
    """Enough collated batches for warm-up plus timed steps (cycled if data runs out).

    ``order`` (example indices per batch) overrides :func:`batch_order`.
    """
    examples = make_examples(spec, vocab_size)
    if order is None:
        order = batch_order(spec, [len(ids) for ids, _ in examples])
    needed = spec.warmup + spec.steps
    return [collate(examples, order[i % len(order)], spec.device) for i in range(needed)]


class PoolHead(nn.Module):
    """Mask-weighted mean pooling, then one linear layer: (B, T, C) -> (B, labels)."""

    def __init__(self, hidden: int, labels: int = NUM_LABELS) -> None:
        super().__init__()
        self.out = nn.Linear(hidden, labels)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, C)
        return self.out(pooled)


def loss_of(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy in fp32."""
    return nn.functional.cross_entropy(logits.float(), batch["labels"])
