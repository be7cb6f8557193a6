"""``adapterkit import PEFT_DIR --out BUNDLE``: a PEFT adapter folder as an adapterkit bundle.

LoRA (with DoRA and rsLoRA), AdaLoRA and IA3 folders come in, with the task head PEFT saved
in ``modules_to_save`` where our heads can hold it (see :mod:`.peft_layout`); a LoRA whose
layers have ranks or alphas of their own comes in as AdaLoRA (:mod:`.peft_rank_pattern`),
as does PEFT's AdaLoRA at the ranks it kept (:mod:`.peft_adalora`).
The bundle is fingerprinted for the base it was imported onto and serves in mixed batches
with every other adapter. Safetensors only: a PEFT folder with only a pickled ``adapter_model.bin``
is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from adapterkit.bundle import check_adapter_name
from adapterkit.errors import AdapterkitError
from adapterkit.heads import ClassificationHead, Head, SpanQAHead, TokenClassificationHead
from adapterkit.interop.peft_adalora import ADALORA_KEYS, adalora_from_peft
from adapterkit.interop.peft_labels import LABELS_FILE, read_folder_labels
from adapterkit.interop.peft_layout import ADAPTER_PARAMS, KEY_PREFIX, TASK_TYPES, peft_target
from adapterkit.interop.peft_rank_pattern import adalora_from_patterns, has_layer_patterns
from adapterkit.methods import AdapterConfig, make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import base_kind, load_base, quantization_of

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
OUR_TASKS = {peft: ours for ours, (peft, _) in TASK_TYPES.items()}
# PEFT options that change what the weights compute and that we do not model: refused
# rather than imported wrong.
UNSUPPORTED = {
    "layer_replication": "layer replication",
    "lora_bias": "LoRA biases",
    "trainable_token_indices": "trained token embeddings",
}


def is_peft_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a PEFT adapter config (one with a ``peft_type``)."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file() or config_path.stat().st_size > 2**20:
        return False
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and "peft_type" in config


def read_peft_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The checked ``adapter_config.json`` and the tensors of a PEFT adapter folder.

    Raises:
        AdapterkitError: Not a PEFT folder, a type or option we do not import, or weights
            that are missing, pickled or unreadable (one line).
    """
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file():
        raise AdapterkitError(f"{folder}: no {CONFIG_FILE}; not a PEFT adapter folder")
    try:
        config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterkitError(f"{config_path}: not JSON ({exc})") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise AdapterkitError(f"{config_path}: no peft_type; not a PEFT adapter config")
    peft_type = config["peft_type"]
    if peft_type not in ("LORA", "ADALORA", "IA3"):
        raise AdapterkitError(
            f"{folder}: PEFT type {peft_type!r} is not imported; LORA (with DoRA), ADALORA "
            "and IA3 are"
        )
    for option, what in UNSUPPORTED.items():
        if config.get(option):
            raise AdapterkitError(f"{folder}: {option} ({what}) is not supported on import")
    if config.get("bias", "none") != "none":
        raise AdapterkitError(
            f"{folder}: bias={config['bias']!r} (trained biases) is not supported"
        )
    if config.get("task_type") not in OUR_TASKS:
        raise AdapterkitError(
            f"{folder}: task_type {config.get('task_type')!r} has no adapterkit task; "
            f"imported: {', '.join(OUR_TASKS)}"
        )
    if not weights_path.is_file():
        pickled = (folder / "adapter_model.bin").exists()
        raise AdapterkitError(
            f"{folder}: no {WEIGHTS_FILE}"
            + ("; adapter_model.bin is a pickle, which adapterkit never loads" if pickled else "")
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise AdapterkitError(f"{weights_path}: unreadable safetensors file ({exc})") from None
    return config, tensors


def import_peft(
    folder: str | Path,
    out: str | Path,
    model_name: str | None = None,
    labels: list[str] | None = None,
    name: str | None = None,
) -> Path:
    """Write the PEFT folder ``folder`` as an adapterkit bundle at ``out``; returns ``out``.

    ``model_name`` is the base (default: the folder's ``base_model_name_or_path``);
    ``labels`` names the head's outputs (default: the folder's ``labels.json``, which our
    export writes; else the base config's ``id2label`` when it has as many; else ``LABEL_i``).
    """
    config, _ = read_peft_folder(folder)
    model_name = model_name or config.get("base_model_name_or_path")
    if not model_name:
        raise AdapterkitError(f"{folder}: the config names no base model; give --model")
    base = load_base(model_name, base_kind(model_name, OUR_TASKS[config["task_type"]]))
    model = AdaptedModel(base, name_or_path=model_name)
    record, tensors = peft_bundle(folder, model, labels)
    name = model.load_contents(record, tensors, folder, _adapter_name(folder, name))
    return model.save_adapter(name, out, extra={"imported_from": record["imported_from"]})


def _adapter_name(folder: str | Path, name: str | None) -> str:
    name = name or Path(folder).resolve().name
    check_adapter_name(name)
    return name


def peft_bundle(
    folder: str | Path, model: AdaptedModel, labels: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The bundle record and tensors a PEFT folder makes on ``model``'s base.

    Raises:
        AdapterkitError: What :func:`read_peft_folder` refuses, and a folder whose layers
            or head do not fit this base (one line).
    """
    config, tensors = read_peft_folder(folder)
    task = OUR_TASKS[config["task_type"]]
    head_record = _head_record(task)
    target = peft_target(task, head_record, model.base.config)
    params = ADALORA_KEYS if config["peft_type"] == "ADALORA" else ADAPTER_PARAMS
    layers, head_tensors = _split(tensors, target.layer_prefix, target.head_map, params, folder)
    try:
        if config["peft_type"] == "ADALORA":
            adapter_config, layers = adalora_from_peft(config, layers, target.layer_prefix)
        elif config["peft_type"] == "LORA" and has_layer_patterns(config, layers):
            adapter_config, layers = adalora_from_patterns(config, layers, target.layer_prefix)
        else:
            adapter_config = _adapter_config(config, layers)
    except AdapterkitError as exc:
        raise AdapterkitError(f"{folder}: {exc}") from None
    head, info = _head_and_task(task, head_tensors, model.base.config, labels, folder)
    ours = {
        f"adapter.{layer}.{param}": tensor.reshape(-1) if param == "scale" else tensor
        for layer, params in layers.items()
        for param, tensor in params.items()
    }
    ours.update({f"head.{key}": tensor for key, tensor in head_tensors.items()})
    record = {
        "method": adapter_config.method,
        "config": adapter_config.to_dict(),
        "targets": sorted(layers),
        "base_model": {
            "name_or_path": str(model.base_name),
            "fingerprint": model.base_fingerprint,
            "quantize": quantization_of(model.base),
        },
        "head": None if head is None else {"type": head.head_type, "config": head.head_config},
        "task": info,
        "imported_from": {
            "format": "peft",
            "peft_type": config["peft_type"],
            "peft_version": config.get("peft_version"),
            "base_model_name_or_path": config.get("base_model_name_or_path"),
        },
    }
    return record, ours


def _head_record(task: str) -> dict[str, Any] | None:
    if task == "sequence-classification":
        return {"type": "classification", "config": {"pooling": "cls"}}
    if task in ("token-classification", "question-answering"):
        return {"type": "linear", "config": {}}
    return None


def _split(
    tensors: dict[str, torch.Tensor],
    prefix: str,
    head_map: dict[str, str],
    params: dict[str, str],
    folder: str | Path,
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """PEFT's tensors as {our layer: {our param: tensor}} and {our head key: tensor};
    ``params`` maps our parameter names to PEFT's for the folder's type."""
    theirs_to_ours = {theirs: ours for ours, theirs in head_map.items()}
    layers: dict[str, dict[str, torch.Tensor]] = {}
    head: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        rest = key.removeprefix(KEY_PREFIX)
        module, _, param = rest.rpartition(".")
        if module in theirs_to_ours:
            head[f"{theirs_to_ours[module]}.{param}"] = tensor
            continue
        found = next(
            (
                (rest.removesuffix("." + theirs), ours)
                for ours, theirs in params.items()
                if rest.endswith("." + theirs)
            ),
            None,
        )
        if not key.startswith(KEY_PREFIX) or found is None or not found[0].startswith(prefix):
            raise AdapterkitError(
                f"{folder}: tensor '{key}' is no LoRA, DoRA, AdaLoRA, IA3 or head weight"
            )
        layer, ours = found
        layers.setdefault(layer.removeprefix(prefix), {})[ours] = tensor
    if not layers:
        raise AdapterkitError(f"{folder}: the weights file holds no adapter layer")
    return layers, head


def _adapter_config(
    config: dict[str, Any], layers: dict[str, dict[str, torch.Tensor]]
) -> AdapterConfig:
    """Our method config for PEFT's; its values are checked as any config's (one line)."""
    names = sorted(layers)
    kind = "scale" if config["peft_type"] == "IA3" else "lora_A.weight"
    lacking = [n for n in names if kind not in layers[n]]
    if lacking:
        raise AdapterkitError(
            f"layer {lacking[0]} has no {kind} weights in this {config['peft_type']} folder"
        )
    if kind == "scale":
        scaled = [
            n
            for n in names
            if tuple(layers[n]["scale"].shape)[:1] == (1,) and layers[n]["scale"].dim() == 2
        ]
        return make_config("ia3", target_modules=names, input_scaled=scaled)
    ranks = {params["lora_A.weight"].shape[0] for params in layers.values()}
    return make_config(
        "dora" if config.get("use_dora") is True else "lora",
        target_modules=names,
        r=ranks.pop(),
        alpha=config.get("lora_alpha", 8),
        dropout=config.get("lora_dropout", 0.0),
        use_rslora=config.get("use_rslora", False),
    )


def _head_and_task(
    task: str,
    head_tensors: dict[str, torch.Tensor],
    base_config: Any,
    labels: list[str] | None,
    folder: str | Path,
) -> tuple[Head | None, dict[str, Any]]:
    """The head to build for PEFT's saved head weights, and the task info a bundle stores."""
    max_length = min(getattr(base_config, "max_position_embeddings", None) or 512, 512)
    if task in ("causal-lm", "seq2seq"):
        return None, {"type": task, "labels": None, "max_length": max_length}
    if "out.weight" not in head_tensors:
        raise AdapterkitError(f"{folder}: no head weights in modules_to_save for a {task} adapter")
    outputs, hidden = head_tensors["out.weight"].shape
    if task == "question-answering":
        return SpanQAHead(hidden), {"type": task, "labels": None, "max_length": max_length}
    if not labels:  # the names our export left beside PEFT's files
        labels = read_folder_labels(folder)
        if labels is not None and len(labels) != outputs:
            raise AdapterkitError(
                f"{folder}: the head has {outputs} outputs but {LABELS_FILE} names "
                f"{len(labels)} labels"
            )
    labels = labels or _config_labels(base_config, outputs)
    if len(labels) != outputs:
        raise AdapterkitError(
            f"{folder}: the head has {outputs} outputs but {len(labels)} labels were given"
        )
    head: Head = (
        TokenClassificationHead(hidden, outputs)
        if task == "token-classification"
        else ClassificationHead(hidden, outputs, pooling="cls")
    )
    return head, {"type": task, "labels": list(labels), "max_length": max_length}


def _config_labels(base_config: Any, outputs: int) -> list[str]:
    id2label = getattr(base_config, "id2label", None) or {}
    if len(id2label) == outputs:
        return [str(id2label[i]) for i in range(outputs)]
    return [f"LABEL_{i}" for i in range(outputs)]
