"""Training hyperparameters, with per-method defaults that work without tuning."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from adapterkit.checked import check_fields
from adapterkit.errors import AdapterkitError
from adapterkit.precision import PRECISIONS

# Learning rates a user gets when passing none, chosen on validation splits only
# (benchmarks/defaults_study.py, docs/defaults_study.md). Adapters and heads start from
# zero or random weights and need far more than the 5e-5 that full fine-tuning of
# pretrained weights takes: bottleneck adapters at 3e-3 gained 6-9 validation F1 over
# 1e-3 on a CoNLL-2003 budget (6e-3 was no better), TREC-6 moved within noise; LoRA on
# every linear layer did best at 1e-3. AdapterHub's documented 1e-4 loses ~4 points on
# TREC-6 at 5 epochs. Caveat: that CoNLL budget was a 4,000-sentence proxy. One check at
# the full 2-epoch budget (Houlsby, length-grouped batches, seed 0; `adapterkit train
# --data conll2003 --method houlsby --epochs 2 --batch-size 16 --max-length 128
# --group-by-length [--lr 1e-3]`) kept 3e-3 ahead on validation, 86.3 vs 84.4 F1.
DEFAULT_LEARNING_RATES: dict[str, float] = {
    "full": 5e-5,
    "head": 1e-3,
    "bottleneck": 3e-3,
    "houlsby": 3e-3,
    "pfeiffer": 3e-3,
    "parallel": 3e-3,
    "lora": 1e-3,
    # IA3 trains one vector per layer and needs a far larger step: on validation, 3e-2 beat
    # 1e-2 and 3e-3 on both sets (CoNLL-2003 proxy F1 80.7 / 79.0 / 72.5; TREC-6 94.7 /
    # 93.4 / 93.4; docs/defaults_study_methods.md). Larger rates were not tried.
    "ia3": 3e-2,
    # DoRA: 3e-3 gained 1.4 CoNLL-2003 proxy F1 over LoRA's 1e-3 (85.5 vs 84.1) and lost 1.1
    # on TREC-6 (93.6 vs 94.7, six questions of 545: about the noise of one seed).
    "dora": 3e-3,
    # Prompt tuning trains k input vectors (and the head) and needs a large step; Lester et
    # al. used 0.3 with Adafactor. AdamW on MiniLM, a 320-question TREC-6 slice, 2 epochs,
    # seed 0 (one run each, so a rough pick): validation accuracy 72.3 at 1e-2, 69.5 at
    # 3e-2, 69.4 at 3e-3.
    "prompt": 1e-2,
    # Prefix tuning (through its MLP): 320 TREC-6 training questions, 2 epochs, seed 0,
    # MiniLM, validation accuracy 84.4 at 3e-3 against 71.0 at 1e-3 and 73.6 at 1e-2; MAM
    # (prefix plus parallel adapter) 82.2 at 1e-3 and 81.7 at 3e-3. One seed of a small
    # slice: a start, not a study.
    "prefix": 3e-3,
    "mam": 1e-3,
    # The gated mix (`adapterkit train --data trec --method unipelt --max-train-samples 320
    # --epochs 2 --max-length 64 --lr R`): 320 TREC-6 training questions, 2 epochs, seed 0, MiniLM, validation
    # accuracy 86.2 at 3e-3, 86.4 at 1e-2 (one question of 545 apart), 74.1 at 1e-3; the
    # lower of the two, as for its bottleneck and prefix parts. A start, not a study.
    "unipelt": 3e-3,
    # AdaLoRA: its update grows through λ, which starts at zero beside orthonormal P and Q,
    # so it takes a far larger step than LoRA. MiniLM, 320 TREC-6 training questions, 2
    # epochs, seed 0 (one run each), validation accuracy: 77.4 at 3e-2, 72.1 at 1e-2, 67.5
    # at 3e-3, 58.5 at 1e-3, diverged at 1e-1 (18.9); 3e-2 held over 5 epochs (78.9). LoRA
    # at its 1e-3 on the same slice: 72.8.
    "adalora": 3e-2,
    # AdapterFusion trains attention over frozen adapters, from weights that already start
    # as their average: AdapterHub's documented 5e-5 (Pfeiffer et al. 2021 searched 1e-4
    # and 5e-5), not measured here. A stack trains a new adapter: its method's rate.
    "fusion": 5e-5,
}
FALLBACK_LEARNING_RATE = 1e-3
DEFAULT_EPOCHS = 5
MAX_AUTO_EPOCHS = 100
"""The most epochs ``min_steps`` may raise a run to (a handful of examples would ask for more)."""

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("linear", "cosine", "constant")
LOSS_WEIGHTINGS = ("batch", "even")


@dataclass
class TrainConfig:
    """How to train one adapter. ``None`` fields take the method's default.

    Each field is also a flag of ``adapterkit train`` and a key of its YAML ``--config``
    file; the docstring under a field is that flag's help (see :mod:`adapterkit.cli.fields`).
    """

    epochs: int | None = field(default=None, metadata={"min": 1})
    """Passes over the training data; default 5, or more on a small data set, so that the run
    takes at least min_steps optimizer steps (the log says how many)."""
    min_steps: int = field(default=300, metadata={"min": 0})
    """Optimizer steps a run takes at least when epochs is not given: 60 steps (5 epochs of
    a 380-example set at batch 32) leave an adapter too little time to start learning."""
    batch_size: int = field(default=32, metadata={"min": 1})
    """Examples per optimizer step (before gradient accumulation)."""
    eval_batch_size: int = field(default=64, metadata={"min": 1})
    """Examples per evaluation forward."""
    # At most 100: no method trains above it, and near float32's range (from about 3e37)
    # AdamW's step size itself overflows.
    lr: float | None = field(default=None, metadata={"above": 0, "max": 100})
    """Peak learning rate; default per method (DEFAULT_LEARNING_RATES): 3e-3 bottleneck
    adapters, 1e-3 LoRA and head, 5e-5 full."""
    optimizer: str = field(default="adamw", metadata={"choices": OPTIMIZERS})
    """adamw or sgd (momentum 0.9)."""
    weight_decay: float = field(default=0.01, metadata={"min": 0})
    """Decoupled weight decay (not applied to biases and norms)."""
    scheduler: str = field(default="linear", metadata={"choices": SCHEDULERS})
    """linear, cosine or constant, after warmup."""
    warmup_ratio: float = field(default=0.06, metadata={"min": 0, "below": 1})
    """Share of all steps spent warming the learning rate up from 0."""
    grad_accumulation: int = field(default=1, metadata={"min": 1})
    """Batches whose gradients are summed before each optimizer step."""
    max_grad_norm: float = field(default=1.0, metadata={"min": 0})
    """Gradient clipping norm (0 disables)."""
    patience: int = field(default=2, metadata={"min": 1})
    """Stop after this many evaluations without improvement of the validation metric. They
    count only once the model beats the trivial predictor (0 F1, majority-class accuracy),
    an equal score with a lower validation loss is an improvement, and no job stops before
    min(200, half its steps) optimizer steps (see adapterkit.train.early_stopping)."""
    seed: int = field(default=0, metadata={"aliases": ("--seeds",), "min": 0, "max": 2**32 - 1})
    """Seed for initialisation, shuffling and dropout."""
    precision: str = field(default="auto", metadata={"choices": PRECISIONS})
    """auto (bf16 autocast on a CUDA GPU that supports it and on a CPU with avx512_bf16 or
    AMX, else fp32: adapterkit.precision.resolve_precision), fp32, bf16 or fp16 (CUDA).
    Validation and the final evaluation run in the same precision."""
    save_steps: int = field(default=0, metadata={"min": 0})
    """Also checkpoint every N optimizer steps (0: at each epoch end only)."""
    attention_dropout: float | None = field(default=None, metadata={"min": 0, "below": 1})
    """Attention-probability dropout of the base while training; None keeps the model's
    own (0.1 in BERT-style models). At 0, PyTorch's attention takes its fused kernel, which
    keeps no attention probabilities: faster and less memory (docs/benchmarks.md,
    no_attn_dropout), but a different regularisation. Not the default: at the default bf16
    training it saves only the dropout pass on short inputs (docs/switches.md)."""
    activation_checkpointing: bool = False
    """Keep only each transformer block's inputs and recompute the block in the backward
    pass: much less activation memory for about one more forward pass of compute."""
    shard_base: bool = False
    """Shard the frozen base's weights over the run's processes (PyTorch FSDP), for a base
    too large for one device; adapters and heads stay whole on each process. Needs several
    processes (torchrun, accelerate launch); ``accelerate launch --use_fsdp`` turns it on
    too. See docs/distributed.md."""
    group_by_length: bool = True
    """Batch training examples of similar length together (as transformers'
    LengthGroupedSampler does), so dynamic padding pads little and training runs faster
    (LoRA: 1.4x fewer train minutes on TREC-6, 2.3x on CoNLL-2003). With the default
    loss_weighting even it cost no quality beyond seed noise (3 seeds, docs/switches.md);
    with ``batch`` weighting it cost CoNLL-2003 0.2-1.5 test F1 per method (docs/results.md).
    ``--no-group-by-length`` draws plain shuffled batches."""
    loss_weighting: str = field(default="even", metadata={"choices": LOSS_WEIGHTINGS})
    """How a batch's loss weighs its items (rows, or labelled tokens for token-level tasks).
    ``batch``: the mean over the batch's own items, so the items of a batch with few of
    them (short sentences) weigh more. ``even``: every item weighs the same whatever batch
    it lands in: the batch's summed loss over the job's mean item count per batch (as
    transformers' ``num_items_in_batch``, across the whole epoch)."""

    def __post_init__(self) -> None:
        check_fields(self)

    def epochs_for(self, rows: int) -> int:
        """The epochs to train ``rows`` training rows for: the given ones, else
        :data:`DEFAULT_EPOCHS` raised to reach ``min_steps`` (at most :data:`MAX_AUTO_EPOCHS`)."""
        if self.epochs is not None:
            return self.epochs
        steps = max(1, self.steps_per_epoch(rows))
        return min(MAX_AUTO_EPOCHS, max(DEFAULT_EPOCHS, math.ceil(self.min_steps / steps)))

    def steps_per_epoch(self, rows: int) -> int:
        """Optimizer steps in one pass over ``rows`` training rows."""
        return math.ceil(math.ceil(rows / self.batch_size) / self.grad_accumulation)

    def learning_rate(self, method: str) -> float:
        """The given lr, or the method's default."""
        return (
            self.lr
            if self.lr is not None
            else DEFAULT_LEARNING_RATES.get(method, FALLBACK_LEARNING_RATE)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring ``None`` values and refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AdapterkitError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in values.items() if v is not None})
