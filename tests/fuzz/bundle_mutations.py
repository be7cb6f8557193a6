"""Ways to spoil a good bundle's folder, shared by the CLI and the HTTP corpora.

Each mutation changes the parsed ``adapter_config.json`` in place (the caller writes it
back) and may touch the folder's files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from adapterkit.bundle import CONFIG_FILE, WEIGHTS_FILE
from adapterkit.files import sha256_file

# Backtracks exponentially on a layer name (about 2**38 ways to cut
# "encoder.layer.0.attention.output.dense" before failing at its last letter).
BACKTRACKING = r"([\w.]|[\w.][\w.])+[0-9]"


def set_field(path: str | tuple[str, ...], value: Any) -> Callable[[dict[str, Any], Path], None]:
    """Set the field at a dotted ``path`` (a tuple when a key holds a dot)."""

    def mutate(config: dict[str, Any], folder: Path) -> None:
        *parents, last = path.split(".") if isinstance(path, str) else path
        target = config
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any], Path], None]:
    def mutate(config: dict[str, Any], folder: Path) -> None:
        *parents, last = path.split(".")
        target = config
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


def _weights(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., None]:
    """Rewrite the weights file (and its recorded size and checksum, so only the content is off)."""

    def mutate(config: dict[str, Any], folder: Path) -> None:
        weights = folder / WEIGHTS_FILE
        save_file(change(load_file(str(weights))), str(weights))
        record = config["files"][WEIGHTS_FILE]
        record["bytes"], record["sha256"] = weights.stat().st_size, sha256_file(weights)

    return mutate


def _raw(text: bytes) -> Callable[[dict[str, Any], Path], None]:
    def mutate(config: dict[str, Any], folder: Path) -> None:
        (folder / WEIGHTS_FILE).write_bytes(text)

    return mutate


BUNDLE_MUTATIONS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "format": set_field("format", "other"),
    "format-version-new": set_field("format_version", 99),
    "format-version-string": set_field("format_version", "1"),
    "name-int": set_field("name", 5),
    "method-int": set_field("method", 5),
    "method-unknown": set_field("method", "bogus"),
    "config-list": set_field("config", []),
    "config-string": set_field("config", "x"),
    "config-unknown-field": set_field("config.bogus", 1),
    "config-reduction-negative": set_field("config.reduction_factor", -1),
    "config-reduction-string": set_field("config.reduction_factor", "big"),
    "config-width-huge": set_field("config.bottleneck_size", 10**9),
    "config-scaling-zero": set_field("config.scaling", 0),
    "config-targets-regex": set_field("config.target_modules", [BACKTRACKING]),
    "config-targets-int": set_field("config.target_modules", 5),
    "config-layers-strings": set_field("config.layers", ["a"]),
    "config-placement": set_field("config.placement", "sideways"),
    "targets-int": set_field("targets", 5),
    "base-model-list": set_field("base_model", []),
    "base-model-path-int": set_field("base_model.name_or_path", 5),
    "base-fingerprint-string": set_field("base_model.fingerprint", "x"),
    "head-list": set_field("head", []),
    "head-type-int": set_field("head.type", 5),
    "head-type-unknown": set_field("head.type", "bogus"),
    "head-config-missing": _drop("head.config"),
    "head-config-list": set_field("head.config", [1]),
    "head-hidden-huge": set_field("head.config.hidden_size", 10**7),
    "head-labels-huge": set_field("head.config.num_labels", 10**9),
    "head-labels-negative": set_field("head.config.num_labels", -1),
    "head-pooling": set_field("head.config.pooling", "max"),
    "head-dropout": set_field("head.config.dropout", 2.0),
    "head-unknown-arg": set_field("head.config.bogus", 1),
    "task-list": set_field("task", []),
    "task-type-int": set_field("task.type", 5),
    "task-type-unknown": set_field("task.type", "bogus"),
    "task-labels-ints": set_field("task.labels", [1, 2]),
    "task-labels-short": set_field("task.labels", ["pos"]),
    "task-labels-null": set_field("task.labels", None),
    "task-max-length": set_field("task.max_length", -1),
    "includes-base-string": set_field("includes_base", "yes"),
    "files-list": set_field("files", []),
    "files-bytes-string": set_field(("files", WEIGHTS_FILE, "bytes"), "x"),
    "weights-truncated": _raw(b"\x00" * 10),
    "weights-extra-tensor": _weights(lambda t: {**t, "adapter.extra": t[next(iter(t))].clone()}),
    "weights-shape": _weights(lambda t: {k: v[..., :1].contiguous() for k, v in t.items()}),
    "weights-dtype-int": _weights(lambda t: {k: v.long() for k, v in t.items()}),
    "weights-nan": _weights(lambda t: {k: torch.full_like(v, float("nan")) for k, v in t.items()}),
}
# Finite weights, so the bundle loads, but so large that the adapter's outputs overflow
# float32 (what a runaway learning rate leaves): refused when it answers, not on load.
OVERFLOW = _weights(lambda t: {k: v * 1e30 for k, v in t.items()})


def mutated(mutate: Callable[[dict[str, Any], Path], None]) -> Callable[[Any, Path], Path]:
    """A copy of the good bundle whose config ``mutate`` changed in place."""

    def make(env: Any, tmp: Path) -> Path:
        folder = tmp / "bundle"
        shutil.copytree(env.bundle, folder)
        config = json.loads((folder / CONFIG_FILE).read_text())
        mutate(config, folder)
        (folder / CONFIG_FILE).write_text(json.dumps(config))
        return folder

    return make


def missing_bundle(env: Any, tmp: Path) -> Path:
    return mutated(lambda c, f: None)(env, tmp).parent / "missing"


def config_not_json(env: Any, tmp: Path) -> Path:
    folder = mutated(lambda c, f: None)(env, tmp)
    (folder / CONFIG_FILE).write_text("{not json")
    return folder


def config_of_a_list(env: Any, tmp: Path) -> Path:
    folder = mutated(lambda c, f: None)(env, tmp)
    (folder / CONFIG_FILE).write_text("[1, 2]")
    return folder


def weights_missing(env: Any, tmp: Path) -> Path:
    folder = mutated(lambda c, f: None)(env, tmp)
    (folder / WEIGHTS_FILE).unlink()
    return folder
