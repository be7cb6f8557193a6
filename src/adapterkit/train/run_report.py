"""What a run leaves for each job when training ends: its bundle, its curves, and its
metrics on validation and test (``metrics.json``, ``report.md``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterkit.data import DataSplits
from adapterkit.errors import AdapterkitError
from adapterkit.generation.evaluate import evaluate_generation
from adapterkit.methods import AdapterConfig
from adapterkit.metrics import format_summary, plot_curves, write_metrics
from adapterkit.model import AdaptedModel, ParameterReport
from adapterkit.tasks import GENERATION_TASKS, Task, task_from_info
from adapterkit.tasks.base import encode_examples
from adapterkit.train.continual import Lineage
from adapterkit.train.early_stopping import learned_nothing
from adapterkit.train.engine import FitResult
from adapterkit.train.evaluate import evaluate_features
from adapterkit.train.job import TrainJob
from adapterkit.train.options import JobSpec, RunOptions

Log = Callable[[str], None]


@dataclass
class RunModel:
    """One job's side of a run: the shared adapted base, the job's adapter, task and config."""

    model: AdaptedModel
    name: str
    task: Task
    adapter_config: AdapterConfig
    report: ParameterReport
    full: bool
    """Full fine-tuning: the base trains too and the bundle holds it."""
    parents: list[dict[str, Any]] = field(default_factory=list)
    """The bundle(s) this adapter continues from, as its bundle records them."""
    old: DataSplits | None = None
    """Old data to score after training (``--old-data``), beside ``old_before``."""
    old_before: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The parent's metrics on ``old`` by split, scored before training."""


def finish_job(
    spec: JobSpec,
    built: RunModel,
    job: TrainJob,
    result: FitResult,
    splits: DataSplits,
    log: Log,
) -> dict[str, Any]:
    """Plot, save the bundle, evaluate on validation and test, write the job's metrics files."""
    options, job_dir = spec.options, job.out_dir
    title = f"{options.method} on {data_name(options)}"
    if result.state.history:
        state = result.state
        plot_curves(
            state.history,
            job_dir / "curves.png",
            title=title,
            primary=f"eval_{built.task.primary_metric}",
            step_losses=state.step_losses,
            best_epoch=state.best_epoch,
        )
    calibrate(built, job, spec.config.eval_batch_size, log)
    lineage = {"parents": built.parents} if built.parents else None
    bundle_path = built.model.save_adapter(
        built.name, job_dir / "adapter", extra=lineage, include_base=built.full
    )
    extra = run_summary(options, built, result, bundle_path, job.lr)
    if built.old is not None:
        after = score_old(
            built.model,
            built.name,
            built.task,
            built.old,
            spec.config.eval_batch_size,
            spec.config.precision,
        )
        extra["forgetting"] = forgetting(built.old_before, after, built.task.primary_metric)
        for split, row in extra["forgetting"].items():
            log(
                f"old data ({split}): {row['metric']} {row['before']:.4f} before, "
                f"{row['after']:.4f} after (forgetting {row['forgetting']:+.4f})"
            )
    warning = nothing_learned(job)
    if warning:
        log(f"WARNING: {warning}")
        extra |= {"learned_nothing": True, "warning": warning}
    final = evaluate_run(
        job_dir,
        built,
        splits,
        spec.config.eval_batch_size,
        title,
        extra,
        log,
        spec.config.precision,
    )
    log(
        f"bundle: {bundle_path} ({extra['bundle_bytes'] / 1024:.0f} KiB); report: {job_dir / 'report.md'}"
    )
    return final


def calibrate(built: RunModel, job: TrainJob, batch_size: int, log: Log) -> None:
    """Let the task settle its decisions on validation (SQuAD 2.0's no-answer threshold)
    before the bundle is saved; what it chose joins the bundle's task record."""
    if job.validation is None:
        return
    features, references = job.validation

    def predict() -> list[Any]:
        model, name, task = built.model, built.name, built.task
        return evaluate_features(
            model, name, task, features, references, batch_size, job.config.precision
        )[2]

    chosen = built.task.calibrate(references, predict)
    if chosen:
        built.model.task_info[built.name].update(chosen)
        log(f"calibrated on validation: {', '.join(f'{k} {v}' for k, v in chosen.items())}")


def data_name(options: RunOptions) -> str:
    """How reports name the data: the built-in name, folder or file, else the train file."""
    return str(options.data or options.train_file)


def nothing_learned(job: TrainJob) -> str | None:
    """The warning for a job whose best validation score is no better than the trivial
    predictor's (None when it learned something, or had no validation split)."""
    state, task = job.state, job.task
    greater = getattr(task, "greater_is_better", True)
    if job.validation is None or not learned_nothing(state.best_metric, job.floor, greater):
        return None
    return (
        f"{job.name} learned nothing: its best validation {task.primary_metric} "
        f"{state.best_metric:.4f} is no better than {task.trivial_predictor} "
        f"({job.floor:.4f}). The bundle is kept for inspection; do not ship it (more epochs, "
        "another --lr or --method may help)"
    )


def run_summary(
    options: RunOptions, built: RunModel, result: FitResult, bundle_path: Path, lr: float
) -> dict[str, Any]:
    """What every metrics file of the run records beside the metrics."""
    return {
        "method": options.method,
        "model": options.model,
        "data": options.data or options.train_file,
        "trainable_params": built.report.trainable,
        "trainable_percent": built.report.percent,
        "bundle_bytes": sum(f.stat().st_size for f in bundle_path.iterdir() if f.is_file()),
        "train_seconds": round(result.train_seconds, 1),
        "epochs_run": result.state.epoch,
        "best_epoch": result.state.best_epoch,
        "pruned": result.state.pruned,
        "diverged": result.state.diverged,
        "lr": lr,
    }


def evaluate_split(
    model: AdaptedModel,
    name: str,
    task: Task,
    examples: list[dict[str, Any]],
    batch_size: int,
    decode: bool = True,
    precision: str = "fp32",
) -> tuple[dict[str, Any], float | None]:
    """(metrics, mean loss) of adapter ``name`` on raw examples of one split.

    Generation tasks score perplexity and, with ``decode``, generate and score the text
    (ROUGE/BLEU/...), in fp32; every other task is encoded and scored from its logits,
    its forwards in ``precision`` (:func:`adapterkit.precision.inference_context`).
    """
    if task.task_type in GENERATION_TASKS:
        return evaluate_generation(  # type: ignore[arg-type]
            model, name, task, examples, batch_size=batch_size, generate=decode
        )
    features = encode_examples(task, examples)
    metrics, loss, _ = evaluate_features(
        model, name, task, features, task.references(examples), batch_size, precision
    )
    return metrics, loss


def score_old(
    model: AdaptedModel,
    name: str,
    task: Task,
    old: DataSplits,
    batch_size: int,
    precision: str = "fp32",
) -> dict[str, dict[str, Any]]:
    """Adapter ``name``'s metrics on the validation and test splits of old data, by split."""
    scores = {}
    for split, examples in (("validation", old.validation), ("test", old.test)):
        if examples:
            scores[split] = evaluate_split(
                model, name, task, examples, batch_size, precision=precision
            )[0]
    return scores


PARENT_SLOT = "init-from-parent"
"""The name the parent bundle has while it is scored beside the run's adapters."""


def score_parent(
    model: AdaptedModel,
    tokenizer: Any,
    lineage: Lineage,
    batch_size: int,
    precision: str = "fp32",
) -> dict[str, dict[str, Any]]:
    """The parent bundle's metrics, as it was saved, on the lineage's old data by split,
    in the precision the run scores its own adapter in (forgetting compares the two).

    The parent is loaded beside the run's adapters for the scoring and removed after.
    """
    assert lineage.old is not None
    model.load_contents(lineage.record, lineage.tensors, lineage.path, PARENT_SLOT)
    try:
        task = task_from_info(lineage.record["task"], tokenizer)
        return score_old(model, PARENT_SLOT, task, lineage.old, batch_size, precision)
    finally:
        model.delete_adapter(PARENT_SLOT)


def forgetting(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], metric: str
) -> dict[str, dict[str, Any]]:
    """Per old split: the primary metric before and after, and how much was lost (positive:
    forgotten; negative: the old task got better)."""
    return {
        split: {
            "metric": metric,
            "before": float(before[split][metric]),
            "after": float(after[split][metric]),
            "forgetting": float(before[split][metric]) - float(after[split][metric]),
        }
        for split in before
        if split in after
    }


def evaluate_run(
    run_dir: Path,
    built: RunModel,
    splits: DataSplits,
    batch_size: int,
    title: str,
    extra: dict[str, Any],
    log: Log,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Evaluate on validation and test, write their metrics files; the last split's metrics."""
    final: dict[str, Any] = {}
    for split_name, examples in (("validation", splits.validation), ("test", splits.test)):
        if not examples:
            continue
        reported_last = split_name == "test" or not splits.test
        # Generation tasks decode only the split reported last (decoding is the slow part).
        metrics, loss = evaluate_split(
            built.model,
            built.name,
            built.task,
            examples,
            batch_size,
            decode=reported_last,
            precision=precision,
        )
        metrics = {**metrics, "loss": loss}
        stem = None if reported_last else "validation"
        write_metrics(run_dir, metrics, split=split_name, title=title, extra=extra, stem=stem)
        log(f"{split_name}:\n{format_summary({**metrics, 'split': split_name})}")
        final = {**metrics, "split": split_name, **extra}
    if not final:
        raise AdapterkitError("nothing to evaluate on: the data has no validation or test split")
    return final
