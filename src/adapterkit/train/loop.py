"""Training one adapter: :func:`fit`, a run of one job on :mod:`adapterkit.train.engine`.

Why our own loop rather than ``transformers.Trainer``: Trainer checkpoints and
resumes the whole model state (90 MB per checkpoint for MiniLM, gigabytes for an
LLM) and knows nothing of heads that live beside the base, nor of several adapters
trained in the same batches; adapter-only, pickle-free checkpoints would mean
overriding most of its saving and loading.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapterkit.model import AdaptedModel
from adapterkit.tasks.base import Task
from adapterkit.train.config import TrainConfig
from adapterkit.train.engine import FitResult, fit_jobs
from adapterkit.train.job import TrainJob


def fit(
    model: AdaptedModel,
    adapter: str,
    task: Task,
    train_features: list[dict[str, Any]],
    validation: tuple[list[dict[str, Any]], list[Any]] | None,
    config: TrainConfig,
    lr: float,
    run_dir: Path,
    resume: bool = False,
    include_base: bool = False,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Train adapter ``adapter`` (already made trainable) and keep the best checkpoint by validation.

    ``validation`` is (encoded features, references) or None (then the last epoch is kept).
    Checkpoints and TensorBoard logs go under ``run_dir``.
    """
    job = TrainJob(
        adapter, task, train_features, validation, config, lr, run_dir, include_base=include_base
    )
    return fit_jobs(model, [job], resume=resume, log=log)[adapter]
