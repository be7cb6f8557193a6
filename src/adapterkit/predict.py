"""Answer raw inputs with a loaded bundle: the path ``predict``, ``evaluate`` and the server share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from adapterkit.bundle import read_bundle_config
from adapterkit.errors import AdapterkitError
from adapterkit.model import AdaptedModel
from adapterkit.models import base_kind, load_base, load_tokenizer
from adapterkit.precision import inference_context, store_for_inference
from adapterkit.tasks import GENERATION_TASKS, Task, head_forward, task_from_info
from adapterkit.tasks.base import finite_logits, merge_windows


def base_name_of(bundle_path: str | Path) -> str:
    """The model name a bundle was trained on (as given to ``--model`` then)."""
    record = read_bundle_config(bundle_path)
    name = record.get("base_model", {}).get("name_or_path")
    if not name:
        raise AdapterkitError(
            f"{bundle_path}: the bundle does not record its base model; pass --model"
        )
    return name


def base_quantization_of(bundle_path: str | Path) -> str | None:
    """How the bundle's base was quantized in training (None: it was not); inference
    loads the base the same way."""
    return read_bundle_config(bundle_path).get("base_model", {}).get("quantize")


def load_for_inference(
    bundle_path: str | Path, model_name: str | None = None, precision: str = "fp32"
) -> tuple[AdaptedModel, str, Task]:
    """Base (quantized as the bundle's was; with its LM head for a generation bundle) +
    bundle + task, ready to predict or evaluate in ``precision``: a low one keeps the
    frozen linear layers in its dtype (:func:`adapterkit.precision.store_for_inference`)."""
    model_name = model_name or base_name_of(bundle_path)
    tokenizer = load_tokenizer(model_name)
    task_type = (read_bundle_config(bundle_path).get("task") or {}).get("type") or ""
    kind = base_kind(model_name, task_type)
    base = load_base(model_name, kind, quantize=base_quantization_of(bundle_path))
    model = AdaptedModel(base, name_or_path=model_name)
    name = model.load_adapter(bundle_path)
    task = task_from_info(model.task_info[name], tokenizer)
    if base_quantization_of(bundle_path) is None and task_type not in GENERATION_TASKS:
        store_for_inference(model, precision, next(model.parameters()).device)
    return model, name, task


@torch.no_grad()
def predict_raw(
    model: AdaptedModel,
    adapter: str,
    task: Task,
    inputs: list[Any],
    batch_size: int = 32,
    precision: str = "fp32",
) -> list[dict]:
    """JSON-ready predictions for raw inputs (strings, or dicts for pairs/QA), in order;
    the forwards in ``precision`` (:func:`adapterkit.precision.inference_context`)."""
    model.eval()
    device = next(model.parameters()).device
    results: list[dict] = []
    for start in range(0, len(inputs), batch_size):
        examples = [task.parse_input(raw) for raw in inputs[start : start + batch_size]]
        windows = [task.encode_windows(example) for example in examples]
        rows = [(example, row) for example, ws in zip(examples, windows, strict=True) for row in ws]
        batch = {k: v.to(device) for k, v in task.collate([f for _, f in rows]).items()}
        with inference_context(precision, device):
            logits = finite_logits(adapter, head_forward(model, adapter, batch).float().cpu())
        answers = [task.format_prediction(ex, logits[i], f) for i, (ex, f) in enumerate(rows)]
        results.extend(merge_windows(task, [f for _, f in rows], answers))
    return results
