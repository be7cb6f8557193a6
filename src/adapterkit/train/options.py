"""What ``adapterkit train`` takes besides training hyperparameters: model, data, method, outputs.

Each field is also a flag of ``adapterkit train``/``demo`` and a key of its YAML
``--config`` file; the docstring under a field is that flag's help. ``metadata``
says what cannot be inferred (see :mod:`adapterkit.cli.fields`): ``flag`` for
another spelling (``None``: no flag, a YAML key only), ``dest``, ``choices``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from adapterkit.bundle import check_adapter_name
from adapterkit.checked import check_fields
from adapterkit.errors import AdapterkitError
from adapterkit.files import check_not_over_inputs
from adapterkit.heads import POOLINGS
from adapterkit.methods import AdapterConfig
from adapterkit.models import QUANTIZE_CHOICES
from adapterkit.train.config import TrainConfig

DEFAULT_METHOD = "pfeiffer"
"""The method of a run that gives options of one method but no --method (see
:mod:`adapterkit.train.default_method` for runs that give neither)."""
SHARED_METHOD_FIELDS = frozenset(f.name for f in fields(AdapterConfig))
"""Method options every method has (--layers, --train-bias ...): they name no method."""


@dataclass
class RunOptions:
    """Everything ``adapterkit train`` takes besides training hyperparameters."""

    model: str = "minilm"
    """Base model: a built-in alias (minilm, smollm2), a local path or a hub id."""
    data: str | None = None
    """Built-in data set (trec, conll2003, movie-sentiment, aclsum, tatoeba-en-es), a folder
    or one file."""
    train_file: str | None = field(default=None, metadata={"flag": "--train"})
    """Training file (instead of --data)."""
    validation_file: str | None = field(default=None, metadata={"flag": "--validation"})
    """Validation file."""
    test_file: str | None = field(default=None, metadata={"flag": "--test"})
    """Test file."""
    task: str | None = None
    """Task name; detected from the data when omitted."""
    text_column: str = "text"
    """Text field in CSV/TSV/JSONL."""
    text_pair_column: str | None = None
    """Second-text field for sentence pairs."""
    label_column: str = "label"
    """Label field."""
    method: str | None = None
    """Adapter method or preset: houlsby, pfeiffer, parallel, bottleneck, lora, dora, ia3,
    adalora, prompt, prefix, mam, unipelt, head (frozen base) or full. Default: chosen per
    task type (lora for sequence classification, unipelt for token classification,
    pfeiffer otherwise: docs/default_method.md); pfeiffer when options of one method are
    given; with --init-from, the bundle's; with --stack-on, the new adapter's."""
    # Filled from the method-config fields' own flags and keys, so it is no flag itself.
    method_options: dict[str, Any] = field(default_factory=dict, metadata={"flag": None})
    """Fields of the method's config that were given (the rest keep the method's defaults)."""
    max_length: int = field(default=128, metadata={"min": 1})
    """Token cap per example."""
    max_train_samples: int | None = field(default=None, metadata={"min": 1})
    """Train on a seeded sample of this many examples."""
    max_eval_samples: int | None = field(default=None, metadata={"min": 1})
    """Evaluate on a seeded sample of this many examples per split."""
    output: str = "runs/latest"
    """Run directory."""
    adapter_name: str | None = field(default=None, metadata={"flag": "--name"})
    """Adapter name (default: from the data set's name)."""
    resume: bool = False
    """Continue from the run directory's last checkpoint."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:1 ..."""
    packing: bool = False
    """causal-lm: concatenate training examples into rows of up to max_length tokens."""
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    """Where metrics go besides the run's files: tensorboard, mlflow (pip install
    'adapterkit[mlflow]'), wandb (offline under <output>/wandb unless WANDB_MODE=online; pip
    install 'adapterkit[wandb]'), or none."""
    mlflow_uri: str | None = None
    """MLflow tracking URI (default: a SQLite store in <output>/mlruns)."""
    pooling: str | None = field(default=None, metadata={"choices": POOLINGS})
    """Classification heads: how the head reads the sequence, mean (the default), cls (the
    first token, as transformers' BERT and RoBERTa heads do: such a bundle exports to PEFT
    and to a merged model) or last."""
    head_dropout: float | None = field(default=None, metadata={"min": 0, "below": 1})
    """Dropout of the task head while training; default the head's own (0.1 for the
    classification, token and entity-pair heads; the QA span head has none)."""
    quantize: str | None = field(default=None, metadata={"choices": QUANTIZE_CHOICES})
    """Load the frozen base quantized by bitsandbytes: 4bit (NF4, double quantization, bf16
    compute: QLoRA) or 8bit; adapters and heads stay full precision. The bundle records it,
    and evaluate/predict/serve quantize the base the same way."""
    init_from: str | None = None
    """Continue from this bundle: its adapter, head and method options (a conflicting
    method flag is refused); labels only the new data has join the head."""
    replay: str | None = None
    """With --init-from: old data (built-in name, folder or file) whose training examples are
    mixed into each epoch (rehearsal against forgetting)."""
    replay_ratio: float | None = field(default=None, metadata={"above": 0, "below": 1})
    """Share of each epoch's rows drawn from --replay (default 0.2), a new seeded sample each
    epoch."""
    anchor_weight: float = field(default=0.0, metadata={"min": 0})
    """With --init-from: weight of an L2 pull of the adapter and head towards the bundle's
    weights (0: none)."""
    old_data: str | None = None
    """With --init-from: old data whose validation and test splits are scored before (the
    bundle) and after (the new adapter): the report's forgetting."""
    fuse: list[str] | None = None
    """Train an AdapterFusion of these bundles (2 or more, of one base, of any method): they
    stay frozen; a learned attention over their outputs in each adapted layer and a new head
    for the data's task train."""
    stack_on: list[str] | None = None
    """Train a new adapter of --method that runs on the output of these bundles (frozen,
    applied in order): a stack, e.g. a task adapter over a domain adapter."""
    share_adapter: bool = False
    """A run of several jobs (a ``jobs:`` list) trains one adapter for all of them, each job
    with its own head (hard parameter sharing); every job's bundle holds the shared adapter."""
    sampling_temperature: float = field(default=1.0, metadata={"min": 1})
    """With --share-adapter: each job's share of a batch's rows is proportional to its
    training rows to the power 1/T: 1 samples in proportion to the data; larger values give
    small tasks more (2: the square root)."""

    def __post_init__(self) -> None:
        check_fields(self)
        self.check_continual()
        if self.fuse or self.stack_on:
            from adapterkit.train.compose import composition_method

            self.method, self.method_options = composition_method(self, DEFAULT_METHOD)
        elif self.init_from is not None:
            from adapterkit.train.continual import bundle_method

            self.method, self.method_options = bundle_method(
                self.init_from, self.method, self.method_options
            )
        elif self.method is None and set(self.method_options) - SHARED_METHOD_FIELDS:
            # Options of one method name it: the fallback, as the flags checked them. Without
            # any, the task type picks the method once the data is loaded (default_method.py).
            self.method = DEFAULT_METHOD
        elif self.method in ("composition", "fusion", "stack", "average"):
            raise AdapterkitError(
                f"--method {self.method} composes bundles: train a fusion with --fuse A B, a new "
                "adapter over bundles with --stack-on A, or write an average or a stack with "
                "adapterkit compose"
            )
        if self.adapter_name is not None:
            check_adapter_name(self.adapter_name)
        if self.quantize is not None and self.method == "full":
            raise AdapterkitError(
                "--quantize freezes the base in low precision; full fine-tuning trains it"
            )
        tuned = [
            f"--{k.replace('_', '-')}"
            for k in ("train_bias", "train_norms")
            if self.method_options.get(k)
        ]
        if tuned and self.method == "full":
            raise AdapterkitError(
                f"{' and '.join(tuned)}: full fine-tuning already trains every bias and norm"
            )

    def check_continual(self) -> None:
        """Refuse options against forgetting without the run they belong to."""
        if self.replay_ratio is not None and not self.replay:
            raise AdapterkitError("--replay-ratio needs --replay (the old data to mix in)")
        if self.replay and self.replay_ratio is None:
            self.replay_ratio = 0.2
        needs = {
            "--replay": self.replay,
            "--anchor-weight": self.anchor_weight,
            "--old-data": self.old_data,
        }
        check_not_over_inputs(
            self.output,
            "--output",
            {"--init-from": self.init_from, "--replay": self.replay, "--old-data": self.old_data},
        )
        stray = [flag for flag, value in needs.items() if value]
        if stray and not self.init_from:
            raise AdapterkitError(
                f"{', '.join(stray)} {'needs' if len(stray) == 1 else 'need'} --init-from "
                "(the bundle to continue from)"
            )


@dataclass
class JobSpec:
    """One job of a run as the user gave it: its adapter's name, options and hyperparameters.

    Jobs of one run share the base: options that shape the base (model, device, quantize,
    precision, attention dropout, activation checkpointing) must agree.
    """

    name: str
    options: RunOptions
    config: TrainConfig


@dataclass
class RunHooks:
    """What a program driving runs (the hyperparameter search) changes about one."""

    hold_out_test: bool = False
    """Leave the test split out: the run looks at validation only."""
    nested: bool = False
    """Every job writes into ``output/<job>/``, even alone; no job list or summary."""
    on_epoch: Callable[[str, int, float], bool] | None = None
    """Called with (job, epoch, validation score) after each of a job's epochs; True stops
    the job there (a pruned search trial)."""
    refill: Callable[[str], JobSpec | None] | None = None
    """Called with the name of a job pruned by ``on_epoch`` as it leaves the run; a JobSpec
    returned joins the run in its place (a search's next trial; one process only). Its
    data must have the task of the run's jobs."""
