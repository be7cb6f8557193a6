"""What a run builds before it trains: every job's data, the base they share, each job's
adapter and head, and the encoded rows (the setup steps of
:func:`adapterkit.train.run.train_jobs`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from adapterkit.data import DataSplits, load_data, sample_examples
from adapterkit.errors import AdapterkitError
from adapterkit.heads import ClassificationHead, Head, build_head
from adapterkit.methods import AdapterConfig, make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import base_kind, context_length, load_base, load_tokenizer
from adapterkit.tasks import Task, make_task
from adapterkit.tasks.base import encode_examples
from adapterkit.train.compose import load_parts
from adapterkit.train.config import TrainConfig
from adapterkit.train.continual import Lineage, head_config, start_weights
from adapterkit.train.options import JobSpec, RunOptions
from adapterkit.train.run_report import RunModel

Log = Callable[[str], None]


def default_adapter_name(options: RunOptions) -> str:
    """A bundle name from the data set's name (letters, digits, '-', '_')."""
    source = options.data or options.train_file or "adapter"
    stem = Path(source).stem if Path(source).suffix else Path(source).name
    if stem.lower() in ("train", "training", "data"):  # a generic file name says nothing
        stem = "adapter"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:64] or "adapter"


def load_run_data(options: RunOptions, config: TrainConfig, log: Log) -> DataSplits:
    """The run's splits (validation carved when missing), sampled as the options ask."""
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
            sample_examples(examples, options.max_eval_samples, config.seed)
            for examples in (splits.validation, splits.test)
        )
        splits.notes.append(
            f"max_eval_samples: evaluating on at most {options.max_eval_samples} examples per split"
        )
    for note in splits.notes:
        log(f"data: {note}")
    log(
        f"data: {splits.source or options.data}: task {splits.task}, {len(splits.train)} train / "
        f"{len(splits.validation or [])} validation / {len(splits.test or [])} test"
    )
    return splits


def base_kind_of(specs: list[JobSpec], splits: dict[str, DataSplits]) -> str:
    """The kind of base every job needs (one run, one base).

    Head tasks run a headless encoder; generation runs the base with its own LM head, so
    the two cannot share a run.
    """
    kinds = {spec.name: base_kind(spec.options.model, splits[spec.name].task) for spec in specs}
    if len(set(kinds.values())) > 1:
        raise AdapterkitError(
            "jobs of one run share one base, but these need different ones: "
            + ", ".join(f"{name} ({kind})" for name, kind in kinds.items())
            + "; train text generation and task heads in separate runs"
        )
    return kinds[specs[0].name]


def load_run_base(spec: JobSpec, kind: str, device: torch.device) -> tuple[AdaptedModel, Any]:
    """The frozen base every job of the run shares (shaped by options they all agree on),
    and its tokenizer."""
    options, config = spec.options, spec.config
    tokenizer = load_tokenizer(options.model)
    base = load_base(
        options.model, kind, attention_dropout=config.attention_dropout, quantize=options.quantize
    )
    # bitsandbytes places a quantized model itself (and refuses .to() on 8-bit layers).
    model = AdaptedModel(base if options.quantize else base.to(device), name_or_path=options.model)
    return model, tokenizer


def _fitted_max_length(options: RunOptions, config: AdapterConfig, limit: int, log: Log) -> int:
    """``--max-length``, lowered when it is past the model's context (longer rows would
    index past the position embeddings): to the context less the soft tokens the method
    puts in front of every input. A length within the context is the user's to keep: when
    the soft tokens do not fit beside it, the method's ``prepare`` refuses the run."""
    if options.max_length <= limit:
        return options.max_length
    soft = config.soft_tokens()
    fit = limit - soft if limit > soft else limit
    why = f"{options.model}'s context of {limit} tokens"
    if fit < limit:
        why += f" less the {soft} soft tokens of method {config.method!r}"
    log(f"max_length {options.max_length} lowered to {fit}: {why}")
    return fit


def add_job_adapter(
    model: AdaptedModel,
    tokenizer: Any,
    spec: JobSpec,
    splits: DataSplits,
    log: Log,
    lineage: Lineage | None = None,
) -> RunModel:
    """Add the job's adapter and head (seeded with the job's seed) and make them trainable;
    a job that continues from a bundle starts from its weights (see
    :mod:`adapterkit.train.continual`)."""
    options = spec.options
    kind = base_kind(options.model, splits.task)
    task_type = "seq2seq" if kind == "seq2seq" else splits.task
    adapter_config = make_config(options.method, **options.method_options)
    limit = context_length(model.base, tokenizer)
    max_length = _fitted_max_length(options, adapter_config, limit, log)
    task = make_task(task_type, tokenizer, splits.label_names, max_length)
    # Refuses what cannot fit the run (soft tokens that do not fit beside --max-length).
    adapter_config = adapter_config.prepare(tokenizer, max_length, limit)
    # Seeded here, so a job starts from the same weights whatever else shares its run.
    torch.manual_seed(spec.config.seed)
    head = job_head(task, model.base.config.hidden_size, options, lineage)
    model.add_adapter(spec.name, adapter_config, head=head, task=task.task_info())
    own = {**model.adapter_parameters(spec.name), **model.head_parameters(spec.name)}
    parents = [] if lineage is None else [lineage.parent]
    try:
        if lineage is not None:
            model.load_weights(spec.name, start_weights(lineage, own), lineage.path)
        parents += load_parts(model, spec.name, options)  # a composition's frozen parts
    except BaseException:
        model.delete_adapter(spec.name)
        raise
    # What the adapter's modules keep frozen (a composition's parts) stays out.
    trained = {**model.adapter_parameters(spec.name, True), **model.head_parameters(spec.name)}
    for param in trained.values():
        param.requires_grad_(True)
    full = options.method == "full"
    if full:
        model.base.requires_grad_(True)
    report = model.parameter_report() if full else model.parameter_report(spec.name)
    if report.trainable == 0:  # e.g. "head" on a causal LM, whose head is the frozen LM head
        raise AdapterkitError(
            f"method '{options.method}' leaves nothing to train for {task.task_type}"
        )
    log(f"model: {options.model} + {options.method} '{spec.name}': {report}")
    return RunModel(model, spec.name, task, adapter_config, report, full, parents)


def job_head(
    task: Task, hidden_size: int, options: RunOptions, lineage: Lineage | None
) -> Head | None:
    """The job's head: the task's fresh one, or its parent's widened to the task's labels
    (whose pooling another ``--pooling`` may not change: see ``load_lineage``), with the
    options' pooling and dropout."""
    pooling = options.pooling
    head = task.build_head(hidden_size)
    if lineage is not None and head is not None:
        stored = lineage.record.get("head") or {}
        if stored.get("type") != head.head_type:
            raise AdapterkitError(
                f"--init-from {lineage.path}: its head is {stored.get('type')}, but "
                f"{task.task_type} takes {head.head_type}"
            )
        head = build_head(head.head_type, head_config(lineage, task.label_names))
    if pooling is not None:
        if not isinstance(head, ClassificationHead):
            raise AdapterkitError(
                f"--pooling applies to classification heads; a {task.task_type} task has none"
            )
        head.set_pooling(pooling)
    if options.head_dropout is not None:
        if head is None:
            raise AdapterkitError(f"--head-dropout: a {task.task_type} task has no head")
        head.set_dropout(options.head_dropout)
    return head


def encode_rows(task: Task, examples: list[dict[str, Any]], packing: bool) -> list[dict[str, Any]]:
    """Training rows of ``examples`` (packed when asked and the task can)."""
    features = encode_examples(task, examples)
    getattr(task, "pop_notes", list)()  # the new data's notes were logged; these would repeat
    return task.pack(features) if packing and hasattr(task, "pack") else features


def encode_splits(
    task: Task, splits: DataSplits, packing: bool, log: Log
) -> tuple[list[dict[str, Any]], tuple[list[dict[str, Any]], list[Any]] | None]:
    """Training rows (packed when asked and the task can), and (rows, references) of validation."""
    train_features = encode_examples(task, splits.train)
    for note in getattr(task, "pop_notes", list)():  # e.g. how many examples were truncated
        log(f"data: train: {note}")
    if packing and hasattr(task, "pack"):
        before, train_features = len(train_features), task.pack(train_features)
        log(f"data: packing: {before} training examples into {len(train_features)} rows")
    if not splits.validation:
        return train_features, None
    validation = (encode_examples(task, splits.validation), task.references(splits.validation))
    for note in getattr(task, "pop_notes", list)():
        log(f"data: validation: {note}")
    return train_features, validation
