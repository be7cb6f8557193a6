"""The on-disk bundle: ``adapter_config.json`` + ``adapter_model.safetensors``.

Writes go to a temporary directory beside the target and are renamed into place
(:func:`adapterkit.files.staged_dir`), so a crash never leaves a half-written bundle
under the final name. Reads check
the format name and version, that both files exist, and the weights file's size
and sha256 against the config before parsing it. Only JSON and safetensors are
read: nothing is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from adapterkit.errors import BundleError
from adapterkit.files import sha256_file, staged_dir
from adapterkit.version import __version__

FORMAT_NAME = "adapterkit-bundle"
FORMAT_VERSION = 1
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def write_bundle(
    path: str | Path, config: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Path:
    """Atomically write a bundle directory at ``path`` (replacing an existing one)."""
    path = Path(path)
    with staged_dir(path) as tmp:
        write_bundle_files(tmp, config, tensors)
    return path


def write_bundle_files(
    folder: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> None:
    """Write the two bundle files into ``folder``, which the caller stages and renames."""
    weights = folder / WEIGHTS_FILE
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(weights))
    full = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "adapterkit_version": __version__,
        **config,
        "files": {WEIGHTS_FILE: {"bytes": weights.stat().st_size, "sha256": sha256_file(weights)}},
    }
    (folder / CONFIG_FILE).write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")


def read_bundle_config(path: str | Path) -> dict[str, Any]:
    """Read and check ``adapter_config.json`` of the bundle at ``path``."""
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not path.is_dir():
        raise BundleError(f"{path}: no bundle directory there")
    if not config_path.is_file():
        raise BundleError(f"{path}: not a bundle ({CONFIG_FILE} is missing)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise BundleError(
            f"{config_path}: not an adapterkit bundle (format is {config.get('format')!r})"
        )
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format version {version} is newer than this adapterkit {__version__} "
            f"reads (up to {FORMAT_VERSION}); upgrade adapterkit"
        )
    return config


def read_bundle(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a bundle's config and tensors, refusing missing, truncated or altered weights."""
    path = Path(path)
    config = read_bundle_config(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise BundleError(f"{path}: {WEIGHTS_FILE} is missing")
    expected = config.get("files", {}).get(WEIGHTS_FILE, {})
    size = weights.stat().st_size
    if "bytes" in expected and size != expected["bytes"]:
        raise BundleError(
            f"{weights}: {size} bytes but the bundle says {expected['bytes']} (truncated or replaced)"
        )
    if "sha256" in expected and sha256_file(weights) != expected["sha256"]:
        raise BundleError(f"{weights}: checksum does not match {CONFIG_FILE} (file is corrupt)")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{weights}: unreadable safetensors file ({exc})") from None
    return config, tensors
