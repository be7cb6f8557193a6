"""--loss-weighting even: every labelled token weighs the same whatever batch it lands in.

With the whole epoch accumulated into one optimizer step, the step is the sum of the
batches' gradients at one point, so batching must not matter under ``even``; under
``batch`` (each batch's mean) grouping short sentences together changes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.tasks.conftest import build_tokenizer
from tests.train.test_packed_equivalence import _sentence, no_dropout, tiny_bert, weights

from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.tasks import make_task
from adapterkit.tasks.base import encode_examples
from adapterkit.train.config import TrainConfig
from adapterkit.train.engine import fit_jobs
from adapterkit.train.job import TrainJob


def _tagging_examples() -> list[dict]:
    # Lengths from 2 to 11 words: grouped batches hold very different token counts.
    return [
        {
            "tokens": _sentence(i, 2 + i % 10),
            "tags": ["B-PER" if k == 0 else "O" for k in range(2 + i % 10)],
        }
        for i in range(20)
    ]


def _one_step(weighting: str, grouped: bool, tmp_path: Path) -> tuple[dict, TrainJob]:
    tokenizer = build_tokenizer()
    task = make_task("token-classification", tokenizer, ["O", "B-PER", "I-PER"], 64)
    model = AdaptedModel(tiny_bert(len(tokenizer)))
    model.requires_grad_(False)
    torch.manual_seed(0)
    model.add_adapter("a", make_config("lora"), head=task.build_head(32), task=task.task_info())
    model.train_adapter("a")
    no_dropout(model)
    config = TrainConfig(
        epochs=1,
        batch_size=4,
        grad_accumulation=100,  # one optimizer step, at the end of the epoch
        optimizer="sgd",
        scheduler="constant",
        warmup_ratio=0.0,
        max_grad_norm=0.0,
        group_by_length=grouped,
        loss_weighting=weighting,
        seed=3,
    )
    features = encode_examples(task, _tagging_examples())
    job = TrainJob("a", task, features, None, config, 0.1, tmp_path / f"{weighting}-{grouped}")
    before = weights(model, "a")
    fit_jobs(model, [job], log=lambda _: None)
    return {k: v - before[k] for k, v in weights(model, "a").items()}, job


def _largest_gap(first: dict, second: dict) -> float:
    return max((first[k] - second[k]).abs().max().item() for k in first)


def test_even_weighting_makes_the_step_independent_of_batching(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    even_grouped, job = _one_step("even", True, tmp_path)
    even_shuffled, _ = _one_step("even", False, tmp_path)
    batch_grouped, _ = _one_step("batch", True, tmp_path)
    batch_shuffled, _ = _one_step("batch", False, tmp_path)
    size = max(v.abs().max().item() for v in even_grouped.values())
    assert size > 1e-4  # the step moved the weights
    assert _largest_gap(even_grouped, even_shuffled) < 1e-6 * max(size, 1.0) + 1e-7
    assert _largest_gap(batch_grouped, batch_shuffled) > 1e-3 * size  # the old weighting differs

    tokens = sum(job.task.loss_count(job.task.collate([f])) for f in job.train_features)
    assert job.items_per_batch == pytest.approx(tokens / len(job.train_features) * 4)


def test_an_unknown_weighting_is_refused() -> None:
    from adapterkit.errors import AdapterkitError

    with pytest.raises(AdapterkitError, match="loss_weighting"):
        TrainConfig(loss_weighting="tokens")
