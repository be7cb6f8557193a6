"""What a folder that is not an adapterkit bundle holds, for ``adapterkit info``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapterkit.errors import AdapterkitError
from adapterkit.interop.peft_labels import read_folder_labels

MAX_CONFIG_BYTES = 16 * 2**20


def describe_folder(path: str | Path) -> dict[str, Any] | None:
    """A summary of a PEFT adapter folder or a transformers model folder (such as
    ``export --format merged`` writes), or None when ``path`` is neither.

    Raises:
        AdapterkitError: The folder's config is not readable JSON (one line).
    """
    path = Path(path)
    peft = _json(path / "adapter_config.json")
    if peft is not None and "peft_type" in peft:
        return {
            "format": "peft adapter",
            "peft_type": peft.get("peft_type"),
            "task_type": peft.get("task_type"),
            "base_model": peft.get("base_model_name_or_path"),
            "target_modules": peft.get("target_modules"),
            # AdaLoRA's r is unused by peft: its layers start at init_r.
            "rank": peft.get("init_r" if peft.get("peft_type") == "ADALORA" else "r"),
            "use_dora": peft.get("use_dora"),
            "modules_to_save": peft.get("modules_to_save"),
            "labels": read_folder_labels(path),
            "hint": f"adapterkit import {path} --out BUNDLE",
        }
    model = _json(path / "config.json")
    if model is not None and "model_type" in model:
        labels = model.get("id2label") or {}
        return {
            "format": "transformers model",
            "model_type": model.get("model_type"),
            "architectures": model.get("architectures"),
            "labels": [labels[k] for k in sorted(labels, key=int)] if labels else [],
            "hint": f"adapterkit train --model {path} ...",
        }
    return None


def _json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise AdapterkitError(f"{path}: {path.stat().st_size} bytes; too large for a config")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterkitError(f"{path}: not valid JSON ({exc})") from None
    return value if isinstance(value, dict) else None
