"""What the interop tests share: a tiny vocabulary, texts, labels, a bundle with random
weights, and adapterkit's own logits for it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch
import transformers

from adapterkit.cli import main
from adapterkit.heads import ClassificationHead
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer
from adapterkit.tasks import make_task

WORDS = ["john", "lives", "in", "paris", "good", "movie", "bad", "plot", "the", "cat"]
TEXTS = ["john lives in paris", "good movie", "the cat lives in the bad plot"]
LABELS = {
    "token-classification": ["O", "B-PER", "B-LOC"],
    "sequence-classification": ["pos", "neg"],
}
AUTO = {
    "token-classification": transformers.AutoModelForTokenClassification,
    "sequence-classification": transformers.AutoModelForSequenceClassification,
    "question-answering": transformers.AutoModelForQuestionAnswering,
    "causal-lm": transformers.AutoModelForCausalLM,
}


def run(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


def make_bundle(model_dir: Path, task: str, method: str, out: Path) -> AdaptedModel:
    """A bundle of ``method`` with random weights (and a head for head tasks) at ``out``."""
    kind = "causal-lm" if task == "causal-lm" else "encoder"
    model = AdaptedModel(load_base(str(model_dir), kind), name_or_path=str(model_dir))
    head, info = None, {"type": task}
    if kind == "encoder":
        spec = make_task(task, load_tokenizer(str(model_dir)), LABELS.get(task), 64)
        head = (
            ClassificationHead(32, 2, pooling="cls")
            if task == "sequence-classification"
            else spec.build_head(32)
        )
        info = spec.task_info()
    torch.manual_seed(1)
    model.add_adapter("a", make_config(method), head=head, task=info)
    with torch.no_grad():
        for param in [
            *model.adapter_parameters("a").values(),
            *model.head_parameters("a").values(),
        ]:
            param.add_(torch.randn(param.shape) * 0.3)
    model.save_adapter("a", out)
    return model


def our_logits(model: AdaptedModel, task: str, inputs: dict, adapter: str = "a") -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs, adapter=adapter)
        if task == "causal-lm":
            return out.logits
        return model.head_logits(adapter, out.last_hidden_state, inputs["attention_mask"])


def base_logits(model: AdaptedModel, task: str, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs, adapter=None)
        if task == "causal-lm":
            return out.logits
        return model.head_logits("a", out.last_hidden_state, inputs["attention_mask"])


def peft_logits(model_dir: Path, task: str, peft_dir: Path, inputs: dict) -> torch.Tensor:
    """What peft itself computes with the PEFT folder ``peft_dir`` on the transformers
    model of ``task`` (a test-only dependency, imported here)."""
    import peft

    extra = {"num_labels": len(LABELS[task])} if task in LABELS else {}
    base = AUTO[task].from_pretrained(model_dir, **extra)
    loaded = peft.PeftModel.from_pretrained(base, peft_dir).eval()
    with torch.no_grad():
        out = loaded(**inputs)
    if task == "question-answering":
        return torch.stack([out.start_logits, out.end_logits], dim=-1)
    return out.logits
