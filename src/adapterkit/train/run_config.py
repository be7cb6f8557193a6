"""A run directory's ``config.yaml``: every option a run used, and ``--resume`` checked
against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from adapterkit.errors import AdapterkitError
from adapterkit.files import atomic_write_bytes
from adapterkit.methods import AdapterConfig
from adapterkit.train.config import TrainConfig
from adapterkit.train.options import RunOptions

# Options that decide which batches come next and what a step does: a resumed run that
# changed one of them would silently continue as a different run.
RESUME_MUST_MATCH = (
    "batch_size",
    "grad_accumulation",
    "epochs",
    "lr",
    "optimizer",
    "scheduler",
    "warmup_ratio",
    "seed",
    "group_by_length",
    "attention_dropout",
)


def write_run_config(
    run_dir: Path, options: RunOptions, config: TrainConfig, adapter: AdapterConfig, lr: float
) -> None:
    """Write ``config.yaml`` (sections run, train, adapter); ``--config`` reads it back."""
    record = {
        "run": {**options.__dict__},
        "train": {**config.to_dict(), "lr": lr},
        "adapter": {"method": adapter.method, **adapter.to_dict()},
    }
    atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(record, sort_keys=False).encode())


def check_resume_matches(config_path: Path, train: dict[str, Any], method: str) -> None:
    """Refuse ``--resume`` with a method or training options other than the interrupted
    run's (a run started before the default method changed resolves another one now)."""
    if not config_path.exists() or not (config_path.parent / "checkpoints" / "last").exists():
        return  # nothing to resume: the run starts from scratch anyway
    try:
        record = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as error:
        raise AdapterkitError(f"--resume: cannot read {config_path}: {error}") from None
    started = (record.get("run") or {}).get("method")
    if started is not None and started != method:
        raise AdapterkitError(
            f"--resume: {config_path.parent} was started with --method {started}, not "
            f"{method}; pass --method {started}, or train into a new --output"
        )
    before = record.get("train") or {}
    changed = [
        f"{key} {before[key]!r} -> {train.get(key)!r}"
        for key in RESUME_MUST_MATCH
        if key in before and before[key] != train.get(key)
    ]
    if changed:
        raise AdapterkitError(
            f"--resume: {config_path.parent} was started with other training options "
            f"({'; '.join(changed)}); pass the same options, or train into a new --output"
        )
