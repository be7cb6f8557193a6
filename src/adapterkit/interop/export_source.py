"""What both exports start from: a checked bundle, its base's config, and where its names
land in the transformers model of its task."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adapterkit.bundle import read_bundle
from adapterkit.errors import AdapterkitError
from adapterkit.interop.peft_layout import PeftTarget, peft_target
from adapterkit.methods import AdapterConfig
from adapterkit.model_bundles import check_bundle_record
from adapterkit.models import load_config, resolve_model


@dataclass(frozen=True)
class ExportSource:
    """A bundle ready to export."""

    record: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    config: AdapterConfig
    base_name: str
    base_config: Any
    base_path: str
    """The base's local folder (an alias resolved)."""
    target: PeftTarget


def read_export_source(
    bundle_path: str | Path, methods: Collection[str], refusal: str, full_refusal: str | None
) -> ExportSource:
    """Read and check the bundle at ``bundle_path`` for an export that takes ``methods``.

    Raises:
        AdapterkitError: ``refusal`` (formatted with ``method``) for another method,
            ``full_refusal`` for a full fine-tuning bundle (None: such bundles are taken),
            or what the bundle's checks and the base's config refuse (one line each).
    """
    record, tensors = read_bundle(bundle_path)
    config = check_bundle_record(record, bundle_path)
    if config.method not in methods:
        raise AdapterkitError(f"{bundle_path}: {refusal.format(method=config.method)}")
    if record.get("includes_base") and full_refusal is not None:
        raise AdapterkitError(f"{bundle_path}: {full_refusal}")
    base_name = record["base_model"]["name_or_path"]
    base_config = load_config(base_name)
    task = (record.get("task") or {}).get("type")
    target = peft_target(task, record.get("head"), base_config)
    return ExportSource(
        record, tensors, config, base_name, base_config, resolve_model(base_name), target
    )
