"""``adapterkit export BUNDLE --format peft --out DIR``: a bundle as a PEFT adapter folder.

The folder loads with ``PeftModel.from_pretrained`` on the transformers model PEFT
expects for the task (``AutoModelForTokenClassification`` for a tagger, with
``num_labels`` set), and gives the same outputs as the bundle in adapterkit. A head's label
names go into ``labels.json`` beside it (PEFT's config has no field for them). Methods PEFT
has no type for (bottleneck adapters) are refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from adapterkit.errors import AdapterkitError, BundleError
from adapterkit.files import staged_dir
from adapterkit.inject import layer_roles, name_matches
from adapterkit.interop.adalora_export import adalora_as_lora, rank_patterns
from adapterkit.interop.export_source import read_export_source
from adapterkit.interop.peft_labels import LABELS_FILE, labels_document
from adapterkit.interop.peft_layout import ADAPTER_PARAMS, KEY_PREFIX, PEFT_TYPES, layer_widths

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def export_peft(bundle_path: str | Path, out: str | Path) -> Path:
    """Write the bundle at ``bundle_path`` as a PEFT folder at ``out`` (atomically).

    Raises:
        AdapterkitError: A method or head PEFT cannot hold, or a bundle that fails its
            checks (one line).
    """
    source = read_export_source(
        bundle_path,
        PEFT_TYPES,
        "PEFT has no adapter type for method '{method}'; exportable: "
        + ", ".join(sorted(PEFT_TYPES)),
        "a full fine-tuning bundle is a model, not an adapter",
    )
    record, tensors, config = source.record, source.tensors, source.config
    if config.train_bias or config.train_norms:
        raise AdapterkitError(
            f"{bundle_path}: a PEFT adapter cannot hold this bundle's per-adapter bias and norm "
            "changes (--train-bias, --train-norms); export it with --format merged"
        )
    base_config, base_path, target = source.base_config, source.base_path, source.target
    patterns: dict[str, Any] = {}
    if record["method"] == "adalora":  # a LoRA with a rank per layer
        try:
            tensors, ranks = adalora_as_lora(tensors, record["targets"])
        except BundleError as exc:
            raise BundleError(f"{bundle_path}: {exc}") from None
        if not ranks:
            raise AdapterkitError(f"{bundle_path}: the AdaLoRA adapter kept no rank in any layer")
        record = {**record, "targets": list(ranks)}
        patterns = rank_patterns(ranks, target.layer_prefix, config.scaling)
    input_scaled = _input_scaled(record, config, base_config.model_type)
    try:
        names = [target.layer_prefix + n for n in record["targets"]]
        widths = layer_widths(record["task"]["type"], base_config, names)
    except AdapterkitError as exc:
        raise BundleError(f"{bundle_path}: {exc}") from None
    _check_tensors(record, tensors, widths, target.layer_prefix, input_scaled, bundle_path)
    weights: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        theirs = peft_key(key, target.layer_prefix, target.head_map, bundle_path)
        if theirs.endswith(".ia3_l"):  # PEFT keeps IA3 vectors as (1, in) or (out, 1)
            layer = key.removeprefix("adapter.").removesuffix(".scale")
            tensor = tensor.reshape(1, -1) if layer in input_scaled else tensor.reshape(-1, 1)
        weights[theirs] = tensor
    peft_config = _peft_config(record, config.to_dict(), target, base_path, input_scaled)
    peft_config.update(patterns)
    # GPT-2 stores its layers as Conv1D, (in, out): PEFT wants to be told.
    peft_config["fan_in_fan_out"] = base_config.model_type == "gpt2"
    with staged_dir(out) as tmp:
        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(peft_config, indent=2) + "\n")
        labels = (record.get("task") or {}).get("labels")
        if labels:
            (tmp / LABELS_FILE).write_text(labels_document(labels))
    return Path(out)


def peft_key(key: str, layer_prefix: str, head_map: dict[str, str], where: str | Path) -> str:
    """A bundle tensor's key in PEFT's file (``adapter.<layer>.<param>`` or ``head.<param>``)."""
    kind, _, rest = key.partition(".")
    if kind == "adapter":
        for ours, theirs in ADAPTER_PARAMS.items():
            if rest.endswith("." + ours):
                return f"{KEY_PREFIX}{layer_prefix}{rest.removesuffix(ours)}{theirs}"
    if kind == "head":
        module, _, param = rest.rpartition(".")
        if module in head_map:
            return f"{KEY_PREFIX}{head_map[module]}.{param}"
    raise AdapterkitError(f"{where}: tensor '{key}' has no place in a PEFT adapter")


def _check_tensors(
    record: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    widths: dict[str, tuple[int, int]],
    layer_prefix: str,
    input_scaled: list[str],
    where: str | Path,
) -> None:
    """Refuse a layer without its tensors, and tensors that do not fit their layer of the
    base (PEFT would refuse the folder only when loading it): LoRA's A reads the layer's
    input and B writes its output at A's rank, DoRA's magnitudes are one per output, IA3's
    scales one per input or output."""
    needed = ("scale",) if record["method"] == "ia3" else ("lora_A.weight", "lora_B.weight")
    needed += ("magnitude",) if record["method"] == "dora" else ()
    for layer in record["targets"]:
        missing = [p for p in needed if f"adapter.{layer}.{p}" not in tensors]
        if missing:
            raise BundleError(f"{where}: layer {layer} has no {missing[0]} tensor")
    for key, tensor in tensors.items():
        if not key.startswith("adapter."):
            continue
        layer, _, param = key.removeprefix("adapter.").rpartition(".")
        if param == "weight":  # lora_A.weight, lora_B.weight
            layer, _, factor = layer.rpartition(".")
            param = f"{factor}.weight"
        if layer_prefix + layer not in widths:
            raise BundleError(f"{where}: tensor {key} is for a layer the bundle does not adapt")
        width_in, width_out = widths[layer_prefix + layer]
        rank = tensors.get(f"adapter.{layer}.lora_A.weight", tensor).shape[0]
        wanted = {
            "lora_A.weight": (rank, width_in),
            "lora_B.weight": (width_out, rank),
            "magnitude": (width_out,),
            "scale": (width_in if layer in input_scaled else width_out,),
        }.get(param)
        if wanted is not None and tuple(tensor.shape) != wanted:
            raise BundleError(
                f"{where}: tensor {key} has shape {tuple(tensor.shape)}, but layer {layer} of "
                f"the base maps {width_in} to {width_out} features (wanted {wanted})"
            )


def _input_scaled(record: dict[str, Any], config: Any, arch: str) -> list[str]:
    """The IA3 layers whose input is scaled (PEFT's ``feedforward_modules``)."""
    if record["method"] != "ia3":
        return []
    if config.input_scaled is not None:
        return [
            layer
            for layer in record["targets"]
            if any(name_matches(layer, n) for n in config.input_scaled)
        ]
    return [layer for layer in record["targets"] if "ffn_out" in layer_roles(arch, layer)]


def _peft_config(
    record: dict[str, Any],
    options: dict[str, Any],
    target: Any,
    base_path: str,
    input_scaled: list[str],
) -> dict[str, Any]:
    method = record["method"]
    layers = [target.layer_prefix + layer for layer in record["targets"]]
    common = {
        "peft_type": PEFT_TYPES[method],
        "task_type": target.task_type,
        "base_model_name_or_path": base_path,
        "target_modules": layers,
        "modules_to_save": target.modules_to_save or None,
        "inference_mode": True,
    }
    if method == "ia3":
        feedforward = [target.layer_prefix + layer for layer in input_scaled]
        return {**common, "feedforward_modules": feedforward, "init_ia3_weights": True}
    return {
        **common,
        "r": options["r"],
        "lora_alpha": options["alpha"],
        "lora_dropout": options["dropout"],
        "use_rslora": options["use_rslora"],
        "use_dora": method == "dora",
        "bias": "none",
        "init_lora_weights": True,
    }
