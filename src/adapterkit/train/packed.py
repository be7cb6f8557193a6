"""One forward of the frozen base over the rows of several jobs, and each job's loss.

Rows of one job stay one contiguous block (so adapter layers run each job on a slice,
see :attr:`adapterkit.routing.Routing.runs`). Head tasks: the base runs once with one
adapter per row, and each job's head sees its own rows, cut back to its own width
(right padding puts a job's tokens first). Generation tasks: one merged batch through
the base's own LM head, then each job's rows. A job's loss is its task's mean over its
own rows or tokens, whatever else shares the step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from adapterkit.model import AdaptedModel
from adapterkit.padding import pad_token_id
from adapterkit.tasks.base import MODEL_INPUT_KEYS
from adapterkit.train.evaluate import task_forward
from adapterkit.train.job import TrainJob

IGNORE = -100  # label padding of token-level tasks


def packed_losses(
    model: AdaptedModel,
    jobs: list[TrainJob],
    rows: list[list[dict[str, Any]]],
    device: torch.device,
) -> tuple[list[torch.Tensor], list[int]]:
    """Each job's mean loss on its rows, from one forward of the base over all of them,
    and how many rows or tokens each mean is over (see ``Task.loss_count``)."""
    batches = [
        {k: v.to(device) for k, v in job.task.collate(features).items()}
        for job, features in zip(jobs, rows, strict=True)
    ]
    counts = [job.task.loss_count(batch) for job, batch in zip(jobs, batches, strict=True)]
    return _losses(model, jobs, batches), counts


def _losses(
    model: AdaptedModel, jobs: list[TrainJob], batches: list[dict[str, torch.Tensor]]
) -> list[torch.Tensor]:
    if not jobs:
        return []
    if len(jobs) == 1:  # the single-adapter path, unchanged
        job, batch = jobs[0], batches[0]
        return [job.task.loss(task_forward(model, job.name, job.task, batch), batch)]
    names = [
        job.name
        for job, batch in zip(jobs, batches, strict=True)
        for _ in range(len(batch["input_ids"]))
    ]
    spans = _spans([len(batch["input_ids"]) for batch in batches])
    pad = pad_token_id(jobs[0].task.tokenizer)
    if all(hasattr(job.task, "forward") for job in jobs):
        # Text generation: the base's LM head; one merged batch, then each job's rows.
        merged = _concat(batches, sorted(batches[0]), pad)
        logits = jobs[0].task.forward(model, names, merged)
        return [
            job.task.loss(logits[a:b], {k: v[a:b] for k, v in merged.items()})
            for job, (a, b) in zip(jobs, spans, strict=True)
        ]
    keys = [k for k in MODEL_INPUT_KEYS if all(k in batch for batch in batches)]
    inputs = _concat(batches, keys, pad)
    hidden = model(**inputs, adapter=names).last_hidden_state  # (B, T, C)
    losses = []
    for job, batch, (a, b) in zip(jobs, batches, spans, strict=True):
        width = batch["input_ids"].shape[1]  # right padding: the job's tokens come first
        logits = model.head_logits(job.name, hidden[a:b, :width], batch["attention_mask"])
        losses.append(job.task.loss(logits, batch))
    return losses


def _spans(sizes: list[int]) -> list[tuple[int, int]]:
    ends = torch.tensor(sizes).cumsum(0).tolist()
    return [(end - size, end) for size, end in zip(sizes, ends, strict=True)]


def _concat(batches: list[dict[str, torch.Tensor]], keys: list[str], pad: int) -> dict:
    """Stack the jobs' (B_j, T_j) tensors of each key into (sum B_j, max T_j), right-padded.

    Each key gets its own width: a seq2seq batch's labels are not as long as its inputs.
    """
    fill = {"input_ids": pad, "labels": IGNORE}
    merged = {}
    for key in keys:
        parts = [batch[key] for batch in batches]
        if parts[0].dim() == 2:
            width = max(part.shape[1] for part in parts)
            value = fill.get(key, 0)
            parts = [F.pad(part, (0, width - part.shape[1]), value=value) for part in parts]
        merged[key] = torch.cat(parts)
    return merged
