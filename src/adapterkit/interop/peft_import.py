"""``adapterkit import PEFT_DIR --out BUNDLE``: a PEFT adapter folder as an adapterkit bundle.

LoRA (with DoRA and rsLoRA) and IA3 folders come in, with the task head PEFT saved in
``modules_to_save`` where our heads can hold it (see :mod:`.peft_layout`). The bundle is
fingerprinted for the base it was imported onto and serves in mixed batches with every
other adapter. Safetensors only: a PEFT folder with only a pickled ``adapter_model.bin``
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
from adapterkit.interop.peft_layout import ADAPTER_PARAMS, KEY_PREFIX, TASK_TYPES, peft_target
from adapterkit.methods import AdapterConfig, make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import base_kind, load_base, load_tokenizer
from adapterkit.tasks import make_task

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
OUR_TASKS = {peft: ours for ours, (peft, _) in TASK_TYPES.items()}
# PEFT options that change what the weights compute and that we do not model: refused
# rather than imported wrong.
UNSUPPORTED = {
    "rank_pattern": "per-layer ranks",
    "alpha_pattern": "per-layer alphas",
    "layer_replication": "layer replication",
    "lora_bias": "LoRA biases",
    "trainable_token_indices": "trained token embeddings",
}


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
    if peft_type not in ("LORA", "IA3"):
        raise AdapterkitError(
            f"{folder}: PEFT type {peft_type!r} is not imported; LORA (with DoRA) and IA3 are"
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
    ``labels`` names the head's outputs (default: the base config's ``id2label`` when it
    has as many, else ``LABEL_i``).
    """
    config, tensors = read_peft_folder(folder)
    model_name = model_name or config.get("base_model_name_or_path")
    if not model_name:
        raise AdapterkitError(f"{folder}: the config names no base model; give --model")
    task = OUR_TASKS[config["task_type"]]
    base = load_base(model_name, base_kind(model_name, task))
    head_record = _head_record(task)
    target = peft_target(task, head_record, base.config)
    layers, head_tensors = _split(tensors, target.layer_prefix, target.head_map, folder)
    adapter_config = _adapter_config(config, layers)
    model = AdaptedModel(base, name_or_path=model_name)
    head, info = _head_and_task(task, head_tensors, model_name, base.config, labels, folder)
    name = name or Path(folder).resolve().name
    check_adapter_name(name)
    try:
        model.add_adapter(name, adapter_config, head=head, task=info)
    except AdapterkitError as exc:
        raise AdapterkitError(f"{folder}: does not fit base '{model_name}' ({exc})") from None
    _copy_weights(model, name, layers, head_tensors, folder)
    return model.save_adapter(
        name, out, extra={"imported_from": {"format": "peft", **_source(config)}}
    )


def _source(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "peft_type": config["peft_type"],
        "peft_version": config.get("peft_version"),
        "base_model_name_or_path": config.get("base_model_name_or_path"),
    }


def _head_record(task: str) -> dict[str, Any] | None:
    if task == "sequence-classification":
        return {"type": "classification", "config": {"pooling": "cls"}}
    if task in ("token-classification", "question-answering"):
        return {"type": "linear", "config": {}}
    return None


def _split(
    tensors: dict[str, torch.Tensor], prefix: str, head_map: dict[str, str], folder: str | Path
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """PEFT's tensors as {our layer: {our param: tensor}} and {our head key: tensor}."""
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
                for ours, theirs in ADAPTER_PARAMS.items()
                if rest.endswith("." + theirs)
            ),
            None,
        )
        if not key.startswith(KEY_PREFIX) or found is None or not found[0].startswith(prefix):
            raise AdapterkitError(f"{folder}: tensor '{key}' is no LoRA, DoRA, IA3 or head weight")
        layer, ours = found
        layers.setdefault(layer.removeprefix(prefix), {})[ours] = tensor
    if not layers:
        raise AdapterkitError(f"{folder}: the weights file holds no adapter layer")
    return layers, head


def _adapter_config(
    config: dict[str, Any], layers: dict[str, dict[str, torch.Tensor]]
) -> AdapterConfig:
    names = sorted(layers)
    if config["peft_type"] == "IA3":
        scaled = [
            n for n in names if layers[n]["scale"].dim() == 2 and layers[n]["scale"].shape[0] == 1
        ]
        return make_config("ia3", target_modules=names, input_scaled=scaled)
    ranks = {
        params["lora_A.weight"].shape[0] for params in layers.values() if "lora_A.weight" in params
    }
    if len(ranks) != 1:
        raise AdapterkitError(
            f"LoRA layers of ranks {sorted(ranks)}; one rank per adapter is imported"
        )
    return make_config(
        "dora" if config.get("use_dora") else "lora",
        target_modules=names,
        r=ranks.pop(),
        alpha=float(config.get("lora_alpha", 8)),
        dropout=float(config.get("lora_dropout", 0.0)),
        use_rslora=bool(config.get("use_rslora", False)),
    )


def _head_and_task(
    task: str,
    head_tensors: dict[str, torch.Tensor],
    model_name: str,
    base_config: Any,
    labels: list[str] | None,
    folder: str | Path,
) -> tuple[Head | None, dict[str, Any]]:
    if task in ("causal-lm", "seq2seq"):
        return None, {"type": task}
    if "out.weight" not in head_tensors:
        raise AdapterkitError(f"{folder}: no head weights in modules_to_save for a {task} adapter")
    outputs, hidden = head_tensors["out.weight"].shape
    if task == "question-answering":
        head: Head = SpanQAHead(hidden)
        labels = None
    else:
        labels = labels or _config_labels(base_config, outputs)
        if len(labels) != outputs:
            raise AdapterkitError(
                f"{folder}: the head has {outputs} outputs but {len(labels)} labels were given"
            )
        if task == "token-classification":
            head = TokenClassificationHead(hidden, outputs)
        else:
            head = ClassificationHead(hidden, outputs, pooling="cls")
    max_length = min(getattr(base_config, "max_position_embeddings", None) or 512, 512)
    info = make_task(task, load_tokenizer(model_name), labels, max_length).task_info()
    return head, info


def _config_labels(base_config: Any, outputs: int) -> list[str]:
    id2label = getattr(base_config, "id2label", None) or {}
    if len(id2label) == outputs:
        return [str(id2label[i]) for i in range(outputs)]
    return [f"LABEL_{i}" for i in range(outputs)]


@torch.no_grad()
def _copy_weights(
    model: AdaptedModel,
    name: str,
    layers: dict[str, dict[str, torch.Tensor]],
    head_tensors: dict[str, torch.Tensor],
    folder: str | Path,
) -> None:
    params = {**model.adapter_parameters(name), **model.head_parameters(name)}
    given = {
        f"adapter.{layer}.{param}": t for layer, ps in layers.items() for param, t in ps.items()
    }
    given.update({f"head.{key}": t for key, t in head_tensors.items()})
    missing = sorted(set(params) - set(given))
    if missing:
        raise AdapterkitError(
            f"{folder}: no weights for {missing[0]} (and {len(missing) - 1} more)"
        )
    for key, param in params.items():
        tensor = given[key]
        if param.dim() == 1:  # IA3's vectors, stored by PEFT as (1, n) or (n, 1)
            tensor = tensor.reshape(-1)
        if tensor.shape != param.shape:
            raise AdapterkitError(
                f"{folder}: {key} is {tuple(tensor.shape)} in the PEFT folder but "
                f"{tuple(param.shape)} on this base"
            )
        param.copy_(tensor)
