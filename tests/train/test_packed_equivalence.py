"""A job trained packed with others equals the same job trained alone.

Same seed, fp32, dropout off (dropout masks are drawn for the whole batch): every job's
per-epoch training losses and final adapter and head weights match within 1e-5, for
every method and task type, with jobs of different batch sizes, epochs and lengths
leaving the batches at different times.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.generation.conftest import lm_model, word_tokenizer
from tests.tasks.conftest import build_tokenizer
from transformers import BertConfig, BertModel

from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.tasks import make_task
from adapterkit.tasks.base import encode_examples
from adapterkit.train.config import TrainConfig
from adapterkit.train.engine import fit_jobs
from adapterkit.train.job import TrainJob

WORDS = ["john", "smith", "visited", "paris", "mary", "lives", "in", "london", "bob"]
WORDS += ["likes", "tea", "cats", "eat", "fish"]


def _sentence(i: int, n: int) -> list[str]:
    return [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)]


def head_jobs_data() -> list[tuple[str, list[str] | None, list[dict]]]:
    """(task type, labels, examples) of the four head tasks, of different sizes and lengths."""
    classification = [
        {"text": " ".join(_sentence(i, 3 + i % 5)), "text_pair": None, "label": "ab"[i % 2]}
        for i in range(12)
    ]
    multi = [
        {
            "text": " ".join(_sentence(i, 2 + i % 4)),
            "text_pair": None,
            "labels": ["x", "y"][: i % 3],
        }
        for i in range(10)
    ]
    tags = [
        {
            "tokens": _sentence(i, 4 + i % 6),
            "tags": ["B-PER" if k == 0 else "O" for k in range(4 + i % 6)],
        }
        for i in range(9)
    ]
    qa = []
    for i in range(8):
        context = " ".join(_sentence(i, 8))
        answer = context.split()[2]
        qa.append(
            {
                "question": f"who {answer} ?",
                "context": context,
                "answers": {"text": [answer], "answer_start": [context.index(answer)]},
            }
        )
    return [
        ("sequence-classification", ["a", "b"], classification),
        ("multi-label-classification", ["x", "y"], multi),
        ("token-classification", ["O", "B-PER", "I-PER"], tags),
        ("question-answering", None, qa),
    ]


def no_dropout(model: torch.nn.Module) -> torch.nn.Module:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for attr in ("attention_dropout", "dropout_prob", "dropout"):  # floats some layers read
            if isinstance(getattr(module, attr, None), float):
                setattr(module, attr, 0.0)
    return model


def tiny_bert(vocab: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertModel(config).eval()


def make_jobs(
    model: AdaptedModel, specs: list, out: Path, method: str, indices: list[int]
) -> list[TrainJob]:
    """Add each spec's adapter (seeded per job, so alone and packed start equal) and its job."""
    jobs = []
    for index, (task, examples, validation) in zip(indices, specs, strict=True):
        name = f"job{index}"
        torch.manual_seed(100 + index)
        head = task.build_head(model.base.config.hidden_size)
        model.add_adapter(name, make_config(method), head=head, task=task.task_info())
        for param in model.adapter_parameters(name).values():
            param.requires_grad_(True)
        for param in model.head_parameters(name).values():
            param.requires_grad_(True)
        config = TrainConfig(
            epochs=2 + index % 2, batch_size=3 + index, seed=index, warmup_ratio=0.2, lr=5e-3
        )
        features = encode_examples(task, examples)
        checked = None
        if validation:
            checked = (encode_examples(task, validation), task.references(validation))
        jobs.append(TrainJob(name, task, features, checked, config, 5e-3, out / name))
    return jobs


def weights(model: AdaptedModel, name: str) -> dict[str, torch.Tensor]:
    params = {**model.adapter_parameters(name), **model.head_parameters(name)}
    return {k: v.detach().clone() for k, v in params.items()}


def compare(make_model, specs, method: str, tmp_path: Path) -> None:
    alone = []
    for index, spec in enumerate(specs):
        model = make_model()
        model.requires_grad_(False)
        (job,) = make_jobs(model, [spec], tmp_path / f"alone{index}", method, [index])
        no_dropout(model)  # the heads' dropout too
        fit_jobs(model, [job], log=lambda _: None)
        alone.append((job, weights(model, job.name)))

    model = make_model()
    model.requires_grad_(False)
    packed = make_jobs(model, specs, tmp_path / "packed", method, list(range(len(specs))))
    no_dropout(model)
    fit_jobs(model, packed, log=lambda _: None)
    for (single, expected), job in zip(alone, packed, strict=True):
        got = [row["train_loss"] for row in job.state.history]
        want = [row["train_loss"] for row in single.state.history]
        assert got == pytest.approx(want, abs=1e-5), job.name
        assert job.state.best_epoch == single.state.best_epoch
        for key, value in weights(model, job.name).items():
            if job.task.task_type == "question-answering" and key == "head.out.bias":
                # Softmax over positions ignores a bias shared by every position, so its
                # gradient is 0 up to rounding noise, which Adam scales up to full steps.
                continue
            torch.testing.assert_close(
                value, expected[key], rtol=0, atol=1e-5, msg=f"{job.name} {key}"
            )


@pytest.mark.parametrize(
    "method", ["houlsby", "pfeiffer", "parallel", "lora", "ia3", "dora", "head"]
)
def test_head_tasks_packed_equal_alone(method: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    specs = []
    for index, (task_type, labels, examples) in enumerate(head_jobs_data()):
        task = make_task(task_type, tokenizer, labels, 64)
        validation = examples[:4] if index % 2 == 0 else None  # some jobs validate, some not
        specs.append((task, examples, validation))
    compare(lambda: AdaptedModel(tiny_bert(len(tokenizer))), specs, method, tmp_path)


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_generation_tasks_packed_equal_alone(arch: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    tokenizer = word_tokenizer(eos_suffix=arch == "t5")
    task_type = "seq2seq" if arch == "t5" else "causal-lm"
    words = ["the cat", "a dog", "the red house", "a big cat", "the small dog"]
    specs = []
    for index in range(3):
        task = make_task(task_type, tokenizer, None, 64)
        examples = [
            {"prompt": f"translate to spanish : {words[(i + index) % 5]}", "response": words[i % 5]}
            for i in range(6 + 2 * index)
        ]
        specs.append((task, examples, examples[:3] if index == 0 else None))
    compare(lambda: AdaptedModel(no_dropout(lm_model(arch, tokenizer))), specs, "lora", tmp_path)
