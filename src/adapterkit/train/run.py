"""One call from a model name and a data set to a trained, evaluated bundle.

``train_adapter_run`` is what ``adapterkit train`` runs: load data and base, build
the task and adapter, train with early stopping, evaluate the best checkpoint on
validation and test, and write the run directory::

    run_dir/config.yaml  metrics.json  report.md  validation_metrics.json
    run_dir/curves.png   tensorboard/  checkpoints/{last,best}/  adapter/
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from adapterkit.checkpointing import enable_activation_checkpointing
from adapterkit.data import load_data
from adapterkit.errors import AdapterkitError
from adapterkit.methods import make_config
from adapterkit.metrics import format_summary, plot_curves, write_metrics
from adapterkit.model import AdaptedModel
from adapterkit.models import base_kind, load_base, load_tokenizer
from adapterkit.tasks import Task, make_task
from adapterkit.tasks.base import encode_examples
from adapterkit.train.config import TrainConfig
from adapterkit.train.evaluate import evaluate_examples
from adapterkit.train.loop import fit


@dataclass
class RunOptions:
    """Everything ``adapterkit train`` takes besides training hyperparameters."""

    model: str = "minilm"
    data: str | None = None
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    task: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    method: str = "pfeiffer"
    method_options: dict[str, Any] = field(default_factory=dict)
    max_length: int = 128
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    output: str = "runs/latest"
    adapter_name: str | None = None
    resume: bool = False
    device: str = "auto"
    packing: bool = False
    """causal-lm: concatenate training examples into rows of up to max_length tokens."""


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def default_adapter_name(options: RunOptions) -> str:
    """A bundle name from the data set's name (letters, digits, '-', '_')."""
    source = options.data or options.train_file or "adapter"
    stem = Path(source).stem if Path(source).suffix else Path(source).name
    if stem.lower() in (
        "train",
        "training",
        "data",
    ):  # a generic file name says nothing of the task
        stem = "adapter"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:64] or "adapter"


def _sample(examples: list[dict] | None, k: int, seed: int) -> list[dict] | None:
    """A seeded sample of at most ``k`` examples, in their original order."""
    if not examples or len(examples) <= k:
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), k))
    return [examples[i] for i in keep]


def encode_all(task: Task, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tokenise and align labels for every example: its rows (QA windows), in order."""
    return encode_examples(task, examples)


def _bundle_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def train_adapter_run(options: RunOptions, config: TrainConfig, log=print) -> dict[str, Any]:
    """Train, evaluate and save; returns the final metrics dict (test split when there is one)."""
    run_dir = Path(options.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    device = pick_device(options.device)

    splits = load_data(
        options.data,
        train=options.train_file,
        validation=options.validation_file,
        test=options.test_file,
        # seq2seq reads the same prompt/response data as causal-lm
        task="causal-lm" if options.task == "seq2seq" else options.task,
        text_column=options.text_column,
        text_pair_column=options.text_pair_column,
        label_column=options.label_column,
        seed=config.seed,
        max_train_samples=options.max_train_samples,
    )
    if options.max_eval_samples:
        splits.validation, splits.test = (
            _sample(examples, options.max_eval_samples, config.seed)
            for examples in (splits.validation, splits.test)
        )
        splits.notes.append(
            f"max_eval_samples: evaluating on at most {options.max_eval_samples} examples per split"
        )
    for note in splits.notes:
        log(f"data: {note}")
    log(
        f"data: {splits.source or options.data}: task {splits.task}, "
        f"{len(splits.train)} train / {len(splits.validation or [])} validation / {len(splits.test or [])} test"
    )

    # Head tasks run a headless encoder; generation runs the base with its own LM head.
    kind = base_kind(options.model, splits.task)
    tokenizer = load_tokenizer(options.model)
    base = load_base(options.model, kind, attention_dropout=config.attention_dropout).to(device)
    task_type = "seq2seq" if kind == "seq2seq" else splits.task
    task = make_task(task_type, tokenizer, splits.label_names, options.max_length)
    name = options.adapter_name or default_adapter_name(options)
    model = AdaptedModel(base, name_or_path=options.model)
    adapter_config = make_config(options.method, **options.method_options)
    model.add_adapter(
        name, adapter_config, head=task.build_head(base.config.hidden_size), task=task.task_info()
    )
    model.train_adapter(name)
    full = options.method == "full"
    if full:
        base.requires_grad_(True)
    if config.activation_checkpointing:
        enable_activation_checkpointing(base)
    report = model.parameter_report(name) if not full else model.parameter_report()
    if report.trainable == 0:  # e.g. "head" on a causal LM, whose head is the frozen LM head
        raise AdapterkitError(
            f"method '{options.method}' leaves nothing to train for {task.task_type}"
        )
    log(f"model: {options.model} + {options.method} '{name}': {report}")

    lr = config.learning_rate(options.method)
    if options.resume:
        check_resume_matches(run_dir / "config.yaml", {**config.to_dict(), "lr": lr})
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "run": {**options.__dict__},
                "train": {**config.to_dict(), "lr": lr},
                "adapter": {"method": adapter_config.method, **adapter_config.to_dict()},
            },
            sort_keys=False,
        )
    )

    train_features = encode_all(task, splits.train)
    for note in getattr(task, "pop_notes", list)():  # e.g. how many examples were truncated
        log(f"data: train: {note}")
    if options.packing and hasattr(task, "pack"):
        before, train_features = len(train_features), task.pack(train_features)
        log(f"data: packing: {before} training examples into {len(train_features)} rows")
    validation = None
    if splits.validation:
        validation = (encode_all(task, splits.validation), task.references(splits.validation))
        for note in getattr(task, "pop_notes", list)():
            log(f"data: validation: {note}")
    result = fit(
        model,
        name,
        task,
        train_features,
        validation,
        config,
        lr,
        run_dir,
        resume=options.resume,
        include_base=full,
        log=log,
        group_by_length=config.group_by_length,
    )
    if result.state.history:
        plot_curves(
            result.state.history,
            run_dir / "curves.png",
            title=f"{options.method} on {options.data}",
        )

    bundle_path = model.save_adapter(name, run_dir / "adapter", include_base=full)
    extra = {
        "method": options.method,
        "model": options.model,
        "data": options.data or options.train_file,
        "trainable_params": report.trainable,
        "trainable_percent": report.percent,
        "bundle_bytes": _bundle_bytes(bundle_path),
        "train_seconds": round(result.train_seconds, 1),
        "epochs_run": result.state.epoch,
        "best_epoch": result.state.best_epoch,
        "lr": lr,
    }
    final: dict[str, Any] = {}
    for split_name, examples in (("validation", splits.validation), ("test", splits.test)):
        if not examples:
            continue
        # Generation tasks decode only the split reported last (decoding is the slow part).
        decode = {} if split_name == "test" or not splits.test else {"generate": False}
        metrics, loss = evaluate_examples(
            model, name, task, examples, config.eval_batch_size, **decode
        )
        metrics = {**metrics, "loss": loss}
        stem = None if split_name == "test" or not splits.test else "validation"
        write_metrics(
            run_dir,
            metrics,
            split=split_name,
            title=f"{options.method} on {options.data}",
            extra=extra,
            stem=stem,
        )
        log(f"{split_name}:\n{format_summary({**metrics, 'split': split_name})}")
        final = {**metrics, "split": split_name, **extra}
    if not final:
        raise AdapterkitError("nothing to evaluate on: the data has no validation or test split")
    log(
        f"bundle: {bundle_path} ({extra['bundle_bytes'] / 1024:.0f} KiB); report: {run_dir / 'report.md'}"
    )
    return final


# Options that decide which batches come next and what a step does: a resumed run that
# changed one of them would silently continue as a different run.
RESUME_MUST_MATCH = (
    "batch_size",
    "grad_accumulation",
    "epochs",
    "lr",
    "optimizer",
    "scheduler",
    "warmup_ratio",
    "seed",
    "group_by_length",
    "attention_dropout",
)


def check_resume_matches(config_path: Path, train: dict[str, Any]) -> None:
    """Refuse ``--resume`` with training options other than the interrupted run's."""
    if not config_path.exists() or not (config_path.parent / "checkpoints" / "last").exists():
        return  # nothing to resume: the run starts from scratch anyway
    try:
        before = (yaml.safe_load(config_path.read_text()) or {}).get("train", {})
    except yaml.YAMLError as error:
        raise AdapterkitError(f"--resume: cannot read {config_path}: {error}") from None
    changed = [
        f"{key} {before[key]!r} -> {train.get(key)!r}"
        for key in RESUME_MUST_MATCH
        if key in before and before[key] != train.get(key)
    ]
    if changed:
        raise AdapterkitError(
            f"--resume: {config_path.parent} was started with other training options "
            f"({'; '.join(changed)}); pass the same options, or train into a new --output"
        )
