"""The on-disk bundle: ``adapterkit.json`` + ``adapterkit.safetensors``.

Format version 1 used PEFT's file names (``adapter_config.json`` +
``adapter_model.safetensors``) with a layout of its own, so PEFT-aware tools misread
such a folder instead of refusing it (peft failed on a missing ``peft_type``). Version 2
has names of its own; version-1 bundles still load (:func:`bundle_files`).

Writes go to a temporary directory beside the target and are renamed into place
(:func:`adapterkit.files.staged_dir`), so a crash never leaves a half-written bundle
under the final name. Reads check the format name and version, every field of the
config against :class:`BundleRecord` (types and ranges, before anything is built from
it), that both files exist, and the weights file's size and sha256 against the config
before parsing it. Only JSON and safetensors are read: nothing is ever unpickled.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import pydantic
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from adapterkit.errors import AdapterkitError, BundleError
from adapterkit.files import sha256_file, staged_dir
from adapterkit.version import __version__

FORMAT_NAME = "adapterkit-bundle"
FORMAT_VERSION = 2
CONFIG_FILE = "adapterkit.json"
WEIGHTS_FILE = "adapterkit.safetensors"
V1_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""(config, weights) file names of format version 1, read but no longer written."""
ADAPTER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""Adapter names: letters, digits, '_' and '-', starting with a letter or digit. A name is
also a bundle folder's name on the server, so no '.', '/' or '~'."""
ADAPTER_NAME = re.compile(ADAPTER_NAME_PATTERN)
MAX_CONFIG_BYTES = 64 * 2**20
MAX_LABELS = 100_000
"""More labels than any real label set has; a bigger head is refused before it is built."""


class _Strict(BaseModel):
    # Strict: "1" is no integer and 1 is no string. Unknown keys are kept (a newer
    # adapterkit may add some; what this one does not read cannot hurt it).
    model_config = ConfigDict(strict=True, extra="allow")


class FileRecord(_Strict):
    """Size and checksum of one file of the bundle."""

    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class BaseRecord(_Strict):
    """The base model a bundle was trained on."""

    name_or_path: str = Field(min_length=1, max_length=4096)
    fingerprint: dict[str, Any] = Field(default_factory=dict)
    quantize: Literal["4bit", "8bit"] | None = None
    """How the base was quantized while training (``--quantize``), if at all."""


class HeadRecord(_Strict):
    """The task head: its type and constructor arguments (checked by ``heads.build_head``)."""

    type: str
    config: dict[str, Any]


class TaskRecord(_Strict):
    """What rebuilds the bundle's task: its type, labels and token cap."""

    type: str | None = None
    labels: list[str] | None = Field(default=None, max_length=MAX_LABELS)
    max_length: int = Field(default=128, ge=1, le=1_000_000)
    no_answer_threshold: float | None = Field(default=None, ge=0, le=1)
    """Extractive QA: the no-answer share above which the answer is empty (chosen on
    validation when the data has unanswerable questions)."""


class ParentRecord(_Strict):
    """A bundle this one was made from (``train --init-from``, ``merge``, a composition's
    ``part``): enough to trace a chain of versions back, and to tell a parent from a
    same-named other bundle."""

    name: str | None = Field(default=None, max_length=256)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """The parent's weights file checksum (as its own config records it)."""
    relation: Literal["init-from", "merge", "part"]
    weight: float | None = None
    """The parent's weight in a merge."""


class BundleRecord(_Strict):
    """The schema of ``adapter_config.json``: every field a reader relies on, typed."""

    format: Literal["adapterkit-bundle"]
    format_version: int = Field(ge=1)
    adapterkit_version: str | None = None
    name: str | None = Field(default=None, pattern=ADAPTER_NAME_PATTERN)
    method: str = Field(min_length=1, max_length=64)
    config: dict[str, Any] = Field(default_factory=dict)
    targets: list[str] = Field(default_factory=list)
    base_model: BaseRecord
    head: HeadRecord | None = None
    task: TaskRecord = Field(default_factory=TaskRecord)
    includes_base: bool = False
    parents: list[ParentRecord] = Field(default_factory=list, max_length=1024)
    files: dict[str, FileRecord] = Field(default_factory=dict)


def check_adapter_name(name: str) -> None:
    """Refuse a name that :data:`ADAPTER_NAME_PATTERN` does not allow, in one line."""
    if not isinstance(name, str) or not ADAPTER_NAME.match(name):
        raise AdapterkitError(
            f"adapter name {name!r} must be 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )


def check_record(config: dict[str, Any], where: str | Path) -> BundleRecord:
    """``config`` checked against :class:`BundleRecord`.

    Raises:
        BundleError: One line naming the first field that does not fit.
    """
    try:
        return BundleRecord.model_validate(config)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        value = repr(first.get("input"))
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise BundleError(f"{where}: field {field}: {first['msg']} (got {shown})") from None


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


def bundle_files(path: str | Path) -> tuple[Path, Path]:
    """(config, weights) paths of the bundle folder ``path``: this format's names, or those
    of format version 1 when only its config is there."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() and (path / V1_FILES[0]).is_file():
        return path / V1_FILES[0], path / V1_FILES[1]
    return path / CONFIG_FILE, path / WEIGHTS_FILE


def is_bundle_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a bundle's config file (of any format version)."""
    return bundle_files(path)[0].is_file()


def read_bundle_config(path: str | Path) -> dict[str, Any]:
    """Read and check the config file of the bundle at ``path``."""
    path = Path(path)
    config_path = bundle_files(path)[0]
    if not path.is_dir():
        raise BundleError(f"{path}: no bundle directory there")
    if not config_path.is_file():
        raise BundleError(f"{path}: not a bundle ({CONFIG_FILE} is missing)")
    size = config_path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise BundleError(
            f"{config_path}: {size} bytes; a bundle config is at most {MAX_CONFIG_BYTES}"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise BundleError(f"{config_path}: not an adapterkit bundle (not a JSON object)")
    if config.get("format") != FORMAT_NAME:
        raise BundleError(
            f"{config_path}: not an adapterkit bundle (format is {config.get('format')!r})"
        )
    version = config.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:  # other types: check_record
        raise BundleError(
            f"{path}: bundle format version {version} is newer than this adapterkit {__version__} "
            f"reads (up to {FORMAT_VERSION}); upgrade adapterkit"
        )
    check_record(config, config_path)
    expected_names = V1_FILES if config_path.name == V1_FILES[0] else (CONFIG_FILE, WEIGHTS_FILE)
    if (version == 1) != (expected_names == V1_FILES):
        raise BundleError(
            f"{config_path}: format version {version} bundles name their config "
            f"{CONFIG_FILE if version != 1 else V1_FILES[0]}"
        )
    return config


def check_weights_file(path: str | Path, config: dict[str, Any]) -> Path:
    """The bundle's weights file, refused when missing or when its size or sha256 differ
    from what the (already checked) config records."""
    config_path, weights = bundle_files(path)
    if not weights.is_file():
        raise BundleError(f"{path}: {weights.name} is missing")
    expected = config.get("files", {}).get(weights.name, {})
    size = weights.stat().st_size
    if "bytes" in expected and size != expected["bytes"]:
        raise BundleError(
            f"{weights}: {size} bytes but the bundle says {expected['bytes']} (truncated or replaced)"
        )
    if "sha256" in expected and sha256_file(weights) != expected["sha256"]:
        raise BundleError(
            f"{weights}: checksum does not match {config_path.name} (file is corrupt)"
        )
    return weights


def parent_record(
    path: str | Path, config: dict[str, Any], relation: str, weight: float | None = None
) -> dict[str, Any]:
    """The ``parents`` entry naming the (already read and checked) bundle at ``path``."""
    weights = bundle_files(path)[1].name
    entry: dict[str, Any] = {
        "name": config.get("name") or Path(path).resolve().name,
        "sha256": config.get("files", {}).get(weights, {}).get("sha256")
        or sha256_file(bundle_files(path)[1]),
        "relation": relation,
    }
    if weight is not None:
        entry["weight"] = weight
    return entry


def read_bundle(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a bundle's config and tensors, refusing missing, truncated or altered weights."""
    path = Path(path)
    config = read_bundle_config(path)
    weights = check_weights_file(path, config)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{weights}: unreadable safetensors file ({exc})") from None
    for name, tensor in tensors.items():
        # A NaN weight makes every score NaN (and NaN is not JSON): refused, not served.
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise BundleError(
                f"{weights}: tensor {name!r} holds NaN or infinite values (from a run that "
                "diverged, or an edited file)"
            )
    return config, tensors
