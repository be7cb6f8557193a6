"""What the merge tests share: bundles with random weights on the tiny BERT, the CLI run
quietly, per-layer LoRA deltas, and a model's logits."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import torch
from tests.tiny import tiny_inputs, tiny_model

from adapterkit.cli import main
from adapterkit.heads import ClassificationHead
from adapterkit.host import AdapterHost
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel

LABELS = ["pos", "neg"]


def run(*argv: str | Path) -> tuple[int, str, str]:
    """``adapterkit ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's refusals exit from inside main
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def other_base() -> torch.nn.Module:
    """The tiny BERT with every weight moved: the same shapes, another checkpoint."""
    base = tiny_model("bert")
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in base.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.01)
    return base


def make_bundle(
    out: Path,
    method: str = "lora",
    seed: int = 1,
    labels: list[str] | None = None,
    base: torch.nn.Module | None = None,
    **options: Any,
) -> AdaptedModel:
    """A bundle of ``method`` (with a classification head over ``labels`` if given) whose
    adapter and head weights are moved away from their start by a seeded random step."""
    model = AdaptedModel(base if base is not None else tiny_model("bert"))
    head, task = None, None
    if labels is not None:
        head = ClassificationHead(32, len(labels), pooling="cls")
        task = {"type": "sequence-classification", "labels": labels, "max_length": 64}
    model.add_adapter("a", make_config(method, **options), head=head, task=task)
    generator = torch.Generator().manual_seed(seed)
    params = [*model.adapter_parameters("a").values(), *model.head_parameters("a").values()]
    with torch.no_grad():
        for param in params:
            param.add_(torch.randn(param.shape, generator=generator) * 0.3)
    model.save_adapter("a", out, include_base=method == "full")
    return model


def deltas(model: AdaptedModel, name: str) -> dict[str, torch.Tensor]:
    """Adapter ``name``'s update of each wrapped layer, (out, in), float64."""
    return {
        host_name: host.adapters[name].delta_weight().detach().double()
        for host_name, host in model.base.named_modules()
        if isinstance(host, AdapterHost) and name in host.adapters
    }


def logits(model: AdaptedModel, name: str) -> torch.Tensor:
    """The head's logits for adapter ``name`` on the tiny inputs."""
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        hidden = model(**inputs, adapter=name).last_hidden_state
        return model.head_logits(name, hidden, inputs["attention_mask"])
