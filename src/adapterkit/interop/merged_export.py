"""``adapterkit export BUNDLE --format merged --out DIR``: a plain transformers model folder.

The adapter is folded into the base weights (LoRA, DoRA, AdaLoRA and IA3 merge exactly;
head-only bundles need no merge; a full fine-tuning bundle brings its own base weights) and
the head becomes the matching
``AutoModelFor...`` head, with the labels as ``id2label``. The folder loads with
``from_pretrained`` where adapterkit is not installed, and holds the tokenizer too.
"""

from __future__ import annotations

from pathlib import Path

import transformers
from torch import nn

from adapterkit.errors import AdapterkitError
from adapterkit.files import staged_dir
from adapterkit.heads import build_head
from adapterkit.host import AdapterHost
from adapterkit.interop.export_source import read_export_source
from adapterkit.interop.peft_layout import TASK_TYPES
from adapterkit.model import AdaptedModel
from adapterkit.models import load_tokenizer

MERGEABLE = ("lora", "dora", "adalora", "ia3", "none")


def export_merged(bundle_path: str | Path, out: str | Path) -> Path:
    """Write the bundle at ``bundle_path`` merged into its base as a model folder at ``out``.

    Raises:
        AdapterkitError: A method that cannot be merged, or a head no transformers class
            holds (one line).
    """
    source = read_export_source(
        bundle_path,
        MERGEABLE,
        "an adapter of method '{method}' cannot be merged into the base weights (it adds "
        "layers, soft tokens or attention prefixes of its own); mergeable: lora, dora, "
        "adalora, ia3, head-only and full fine-tuning bundles",
        None,  # a full fine-tuning bundle: its base weights are loaded below
    )
    config, tensors, base_name, target = (
        source.config,
        source.tensors,
        source.base_name,
        source.target,
    )
    task = source.record.get("task") or {}
    head_record = source.record.get("head")
    labels = task.get("labels")
    extra = (
        {"num_labels": len(labels), "id2label": dict(enumerate(labels))}
        if labels and head_record and head_record["type"] != "span-qa"
        else {}
    )
    auto = getattr(transformers, TASK_TYPES[task["type"]][1])
    # The task head the base lacks is filled from the bundle below: transformers' report of
    # it missing ("newly initialized ... Consider training") would only alarm.
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:  # safetensors only, as every base adapterkit loads
        full = auto.from_pretrained(source.base_path, use_safetensors=True, **extra)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterkitError(f"base '{base_name}' could not be loaded: {first}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    inner = full.get_submodule(target.layer_prefix.rstrip(".")) if target.layer_prefix else full
    model = AdaptedModel(inner, name_or_path=base_name)
    head = build_head(head_record["type"], head_record["config"]) if head_record else None
    model.add_adapter("merged", config, head=head)
    if source.record.get("includes_base"):
        # A full bundle holds every weight of the model it trained (BertModel's pooler
        # too); the task class here may have no place for some (a token classifier has
        # no pooler), and they take no part in its outputs.
        kept = set(model.base_parameters())
        tensors = {k: v for k, v in tensors.items() if not k.startswith("base.") or k in kept}
    model.load_weights("merged", tensors, bundle_path)  # and the base's, from a full bundle
    model.merge_adapter("merged")
    _unwrap(inner)
    if head is not None:
        for ours, theirs in target.head_map.items():
            full.get_submodule(theirs).load_state_dict(head.get_submodule(ours).state_dict())
    full.config.label2id = {v: k for k, v in full.config.id2label.items()}
    with staged_dir(out) as tmp:
        full.save_pretrained(tmp)
        load_tokenizer(base_name).save_pretrained(tmp)
    return Path(out)


def _unwrap(model: nn.Module) -> None:
    """Put every host's (merged) frozen layer back in its place."""
    hosts = [(n, m) for n, m in model.named_modules() if isinstance(m, AdapterHost)]
    for name, host in hosts:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, host.base_layer)
