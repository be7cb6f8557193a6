"""Tiny bases and random-weight bundles for the server tests, built once per session.

Bundles get random adapter weights (LoRA's B starts at zero, so without noise an
adapter would change nothing and a routing mix-up would go unseen).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.tiny import save_tiny_bert, tiny_tokenizer

from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer
from adapterkit.tasks import make_task

WORDS = [
    *("the", "a", "my", "was", "great", "today", "very", "ball", "goal", "team"),
    *("bread", "cheese", "apple", "code", "robot", "john", "paris", "london"),
]
TOPICS = ["sport", "food", "tech"]
NER_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def add_random_adapter(
    model: AdaptedModel,
    name: str,
    method: str,
    task: Any | None,
    seed: int,
    out: Path | None = None,
    **options: Any,
) -> None:
    """Add adapter ``name`` with random weights (and ``task``'s head), saving it to ``out/name``."""
    hidden = model.base.config.hidden_size
    head = task.build_head(hidden) if task is not None else None
    info = task.task_info() if task is not None else {"type": "causal-lm"}
    torch.manual_seed(seed)
    model.add_adapter(name, make_config(method, **options), head=head, task=info)
    with torch.no_grad():
        for param in model.adapter_parameters(name).values():
            param.normal_(std=0.3)
        for param in model.head_parameters(name).values():
            param.normal_(std=0.5)
    if out is not None:
        model.save_adapter(name, out / name)


@dataclass
class Served:
    """A base on disk, its bundles folder, and the in-process model that wrote them."""

    model_dir: Path
    adapters: Path
    model: AdaptedModel
    tokenizer: Any


@pytest.fixture(scope="session")
def encoder_bundles(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """Tiny BERT + bundles: topic (classification), ner, qa, tags (multi-label), plain (no head).

    Also two bundles that must be skipped at start: ``foreign`` (another base) and
    ``broken`` (not valid JSON).
    """
    root = tmp_path_factory.mktemp("serve-encoder")
    model_dir = save_tiny_bert(root / "bert", WORDS, seed=0)
    tokenizer = load_tokenizer(str(model_dir))
    model = AdaptedModel(load_base(str(model_dir)), name_or_path=str(model_dir))
    adapters = root / "adapters"
    add_random_adapter(
        model,
        "topic",
        "pfeiffer",
        make_task("sequence-classification", tokenizer, TOPICS, 48),
        1,
        adapters,
    )
    add_random_adapter(
        model,
        "ner",
        "lora",
        make_task("token-classification", tokenizer, NER_TAGS, 48),
        2,
        adapters,
    )
    add_random_adapter(
        model, "qa", "houlsby", make_task("question-answering", tokenizer, None, 48), 3, adapters
    )
    tags = make_task("multi-label-classification", tokenizer, TOPICS, 48)
    add_random_adapter(model, "tags", "parallel", tags, 4, adapters)
    add_random_adapter(model, "plain", "lora", None, 5, adapters)
    other = AdaptedModel(load_base(str(save_tiny_bert(root / "bert2", WORDS, seed=1))))
    add_random_adapter(
        other,
        "foreign",
        "pfeiffer",
        make_task("sequence-classification", tokenizer, TOPICS, 48),
        6,
        adapters,
    )
    (adapters / "broken").mkdir()
    (adapters / "broken" / "adapterkit.json").write_text("{not json")
    return Served(model_dir, adapters, model.eval(), tokenizer)


def save_tiny_gpt2(directory: Path) -> Path:
    """A tiny random GPT-2 whose tokenizer has a pad token, a BOS and a chat template."""
    from tokenizers import processors
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_tokenizer(WORDS)
    cls_id, sep_id, pad_id = (
        tokenizer.convert_tokens_to_ids(t) for t in ("[CLS]", "[SEP]", "[PAD]")
    )
    # A decoder prompt must not end in an end-of-sequence token: BOS ([CLS]) only.
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", pair="[CLS] $A $B", special_tokens=[("[CLS]", cls_id)]
    )
    tokenizer.eos_token = "[SEP]"
    tokenizer.chat_template = (
        "[CLS]{% for m in messages %} {{ m['role'] }} : {{ m['content'] }}{% endfor %} assistant :"
    )
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=64,
        bos_token_id=cls_id,
        eos_token_id=sep_id,
        pad_token_id=pad_id,
    )
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def decoder_bundles(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """Tiny GPT-2 + LoRA bundles A and B (generation) + ``cls`` (classification head)."""
    root = tmp_path_factory.mktemp("serve-decoder")
    model_dir = save_tiny_gpt2(root / "gpt2")
    tokenizer = load_tokenizer(str(model_dir))
    model = AdaptedModel(load_base(str(model_dir), "causal-lm"), name_or_path=str(model_dir))
    adapters = root / "adapters"
    add_random_adapter(model, "A", "lora", None, 11, adapters, r=4)
    add_random_adapter(model, "B", "lora", None, 12, adapters, r=4)
    add_random_adapter(
        model,
        "cls",
        "lora",
        make_task("sequence-classification", tokenizer, TOPICS, 48),
        13,
        adapters,
    )
    return Served(model_dir, adapters, model.eval(), tokenizer)


def close(got: Any, want: Any, tol: float = 1e-4) -> bool:
    """Equal JSON answers, floats within ``tol`` (batches pad differently than alone)."""
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, int | float) and abs(got - want) <= tol
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and got.keys() == want.keys()
            and all(close(got[k], want[k], tol) for k in want)
        )
    if isinstance(want, list | tuple):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(close(g, w, tol) for g, w in zip(got, want, strict=True))
        )
    return got == want


def dumps(value: Any) -> str:
    """Compact JSON for assertion messages."""
    return json.dumps(value)[:400]


def alone(served_model: Served, adapter: str | None, ids: list[int], new: int = 6) -> str:
    """Greedy continuation of one prompt, computed in-process without the server."""
    model, tokenizer = served_model.model, served_model.tokenizer
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            adapter=adapter,
            max_new_tokens=new,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )[0, len(ids) :].tolist()
    if tokenizer.eos_token_id in out:
        out = out[: out.index(tokenizer.eos_token_id)]
    return tokenizer.decode(out, skip_special_tokens=True)
