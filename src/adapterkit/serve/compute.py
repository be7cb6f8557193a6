"""The model work of a batch, run on the single model worker thread.

Batched path (:func:`run_batch`): every predict row of the batch goes through ONE
base forward with one adapter name per row; each adapter's head then sees only its
own rows' hidden states, and its task formats them. Generation rows are grouped by
sampling parameters, each group one ``generate`` call with per-row adapters.

Naive path (:func:`run_naive`): one request at a time, switching the model's
active adapter for it, the way a single-adapter server works. Benchmarks compare
the two; the naive path is only safe because the worker runs one job at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from adapterkit.serve.generation import generate_rows
from adapterkit.serve.jobs import GenerateJob, Job, PredictJob
from adapterkit.serve.registry import AdapterRegistry
from adapterkit.serve.settings import ServeError
from adapterkit.tasks import Task
from adapterkit.tasks.base import finite_logits, merge_windows, pad_model_inputs

Row = tuple[str, Task, dict[str, Any], dict[str, Any]]  # adapter, task, example, features


def last_hidden(outputs: Any) -> torch.Tensor:
    """(B, T, C) final hidden states of an encoder or (with hidden states on) a decoder."""
    hidden = getattr(outputs, "last_hidden_state", None)
    return hidden if hidden is not None else outputs.hidden_states[-1]


def predict_rows(registry: AdapterRegistry, rows: list[Row]) -> list[dict]:
    """One base forward for rows of any adapters, then each adapter's head on its rows."""
    model = registry.model
    batch = pad_model_inputs([row[3] for row in rows], registry.pad_id, registry.device)
    names = [row[0] for row in rows]
    extra = {} if registry.kind == "encoder" else {"output_hidden_states": True}
    answers: list[dict] = [{} for _ in rows]
    with registry.autocast():
        hidden = last_hidden(model(**batch, adapter=names, **extra))  # (B, T, C)
        for name in dict.fromkeys(names):  # distinct, in order
            index = [i for i, row_name in enumerate(names) if row_name == name]
            take = torch.tensor(index, device=hidden.device)
            logits = model.head_logits(name, hidden[take], batch["attention_mask"][take])
            logits = finite_logits(name, logits.float().cpu())  # this adapter's rows only
            for j, i in enumerate(index):
                _, task, example, features = rows[i]
                answers[i] = task.format_prediction(example, logits[j], features)
    return answers


def _predict_jobs(registry: AdapterRegistry, jobs: list[PredictJob], max_batch: int) -> list:
    rows: list[Row] = [
        (job.adapter, job.task, example, features)
        for job in jobs
        for example, features in zip(job.examples, job.features, strict=True)
    ]
    answers: list[dict] = []
    for start in range(0, len(rows), max_batch):  # only a request above max_batch splits
        answers.extend(predict_rows(registry, rows[start : start + max_batch]))
    per_job, start = [], 0
    for job in jobs:  # one answer per input: the windows of a long input merge into one
        per_job.append(merge_windows(job.task, job.features, answers[start : start + job.rows]))
        start += job.rows
    return per_job


def _isolated(run: Callable[[list[int]], list], indices: list[int], results: list) -> None:
    """Run jobs together; if that fails, run each alone, so a bad job fails by itself."""
    if not indices:
        return
    try:
        for i, result in zip(indices, run(indices), strict=True):
            results[i] = result
        return
    except Exception as exc:
        if len(indices) == 1:
            results[indices[0]] = exc
            return
    for i in indices:
        try:
            results[i] = run([i])[0]
        except Exception as exc:
            results[i] = exc


@torch.no_grad()
def run_batch(registry: AdapterRegistry, jobs: list[Job], max_batch: int) -> list[Any]:
    """Answer a batch of jobs; each result is the job's answer or the exception it raised."""
    results: list[Any] = [None] * len(jobs)
    for i, job in enumerate(jobs):
        if job.adapter is not None and job.adapter not in registry.entries:
            results[i] = ServeError(404, f"adapter '{job.adapter}' was deleted")  # while queued
    predict = [
        i for i, job in enumerate(jobs) if isinstance(job, PredictJob) and results[i] is None
    ]
    _isolated(
        lambda idx: _predict_jobs(registry, [jobs[i] for i in idx], max_batch), predict, results
    )
    groups: dict[Any, list[int]] = {}
    for i, job in enumerate(jobs):
        if isinstance(job, GenerateJob) and results[i] is None:
            groups.setdefault(job.sampling, []).append(i)

    def generate(idx: list[int]) -> list:
        chosen: list[GenerateJob] = [jobs[i] for i in idx]  # type: ignore[misc]
        names = [job.adapter for job in chosen]
        return generate_rows(registry.model, registry.decode_tokenizer, chosen, names)

    for indices in groups.values():
        for start in range(0, len(indices), max_batch):
            _isolated(generate, indices[start : start + max_batch], results)
    return results


@torch.no_grad()
def run_naive(registry: AdapterRegistry, job: Job, max_batch: int) -> Any:
    """Answer one job alone, with the adapter made active for the whole model."""
    if job.adapter is not None and job.adapter not in registry.entries:
        raise ServeError(404, f"adapter '{job.adapter}' was deleted")
    model = registry.model
    model.activate(job.adapter)  # the global switch the batched path never uses
    try:
        if isinstance(job, GenerateJob):
            return generate_rows(model, registry.decode_tokenizer, [job], None)[0]
        extra = {} if registry.kind == "encoder" else {"output_hidden_states": True}
        answers: list[dict] = []
        for start in range(0, job.rows, max_batch):
            examples = job.examples[start : start + max_batch]
            features = job.features[start : start + max_batch]
            # Not task.collate: it asks the tokenizer for its pad id, and the tokenizer
            # belongs to the event loop thread.
            inputs = pad_model_inputs(features, registry.pad_id, registry.device)
            with registry.autocast():  # no adapter argument below: the active one
                hidden = last_hidden(model(**inputs, **extra))
                logits = model.head_logits(job.adapter, hidden, inputs["attention_mask"])
            logits = finite_logits(job.adapter, logits.float().cpu())
            answers.extend(
                job.task.format_prediction(example, logits[row], feats)
                for row, (example, feats) in enumerate(zip(examples, features, strict=True))
            )
        return merge_windows(job.task, job.features, answers)
    finally:
        model.activate(None)
