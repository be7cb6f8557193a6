"""Batched evaluation of one adapter on encoded examples."""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from adapterkit.model import AdaptedModel
from adapterkit.precision import inference_context
from adapterkit.tasks import GENERATION_TASKS
from adapterkit.tasks.base import Task, head_forward, merge_windows


def task_forward(
    model: AdaptedModel, adapter: str | None, task: Task, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """The logits a task's loss and decoding take.

    Tasks with a head run the base and that head; a task that defines ``forward`` (the
    language-modelling tasks, whose head is the base's own LM head) computes them itself.
    """
    forward = getattr(task, "forward", None)
    if forward is not None:
        return forward(model, adapter, batch)
    return head_forward(model, adapter, batch)


@torch.no_grad()
def predict_features(
    model: AdaptedModel,
    adapter: str,
    task: Task,
    features: list[dict[str, Any]],
    batch_size: int = 64,
    precision: str = "fp32",
) -> tuple[list[Any], float | None]:
    """Decoded predictions in input order (one per row), and the mean loss when features
    carry labels.

    Rows are batched in order of length so padding stays small, then put back. The
    forwards of task-head tasks run in ``precision``
    (:func:`adapterkit.precision.inference_context`; the loss and decoding read fp32
    logits); generation tasks' perplexity stays fp32, as their decoding does.
    """
    model.eval()
    device = next(model.parameters()).device
    generative = task.task_type in GENERATION_TASKS
    autocast = inference_context("fp32" if generative else precision, device)
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    predictions: list[Any] = [None] * len(features)
    total_loss, counted = 0.0, 0
    for start in tqdm(
        range(0, len(order), batch_size),
        desc="evaluate",
        unit="batch",
        leave=False,
        mininterval=2.0,
        disable=len(order) <= batch_size,
    ):
        chunk = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in task.collate([features[i] for i in chunk]).items()}
        with autocast:
            logits = task_forward(model, adapter, task, batch).float()
        if "labels" in batch or "start_positions" in batch:
            total_loss += task.loss(logits, batch).item() * len(chunk)
            counted += len(chunk)
        for i, prediction in zip(chunk, task.decode(logits, batch), strict=True):
            predictions[i] = prediction
    return predictions, (total_loss / counted if counted else None)


def evaluate_features(
    model: AdaptedModel,
    adapter: str,
    task: Task,
    features: list[dict[str, Any]],
    references: list[Any],
    batch_size: int = 64,
    precision: str = "fp32",
) -> tuple[dict[str, Any], float | None, list[Any]]:
    """(metrics, mean loss, predictions) of ``adapter`` on encoded examples.

    ``features`` are the rows of :func:`~adapterkit.tasks.base.encode_examples`;
    ``references`` and the returned predictions have one entry per example (the windows
    of a long QA context are merged into one answer).
    """
    predictions, loss = predict_features(model, adapter, task, features, batch_size, precision)
    predictions = merge_windows(task, features, predictions)
    return task.metrics(references, predictions), loss, predictions
