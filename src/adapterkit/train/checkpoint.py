"""Resumable training checkpoints: the adapter bundle plus optimizer, scheduler and RNG state.

A checkpoint directory is a normal bundle (so ``checkpoints/best`` can be loaded
like any other) with two more files: ``trainer_state.json`` and
``optimizer.safetensors``. Optimizer state is flattened into tensors so that
resuming never unpickles anything; the random state of the CPU and of every CUDA
device is saved too, so a resumed run draws the same dropout masks. The directory
is written under a temporary name and renamed into place
(:func:`adapterkit.files.staged_dir`), so an interruption leaves the previous one intact.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from adapterkit import bundle
from adapterkit.errors import BundleError
from adapterkit.files import staged_dir
from adapterkit.methods.base import TrainingController
from adapterkit.model import AdaptedModel

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
CONTROLLER = "controller."
"""Prefix, in the optimizer file, of a method's training-controller state (AdaLoRA's scores)."""
RANK_PREFIX = "rank"
"""Prefix, in the optimizer file, of another process's random state (``rank1.rng.torch``);
the main process's keeps the unprefixed names a one-process checkpoint has."""


@dataclass
class TrainerState:
    """Where training stands; saved with every checkpoint."""

    epoch: int = 0
    """Epochs fully completed."""
    batches_done: int = 0
    """Batches of the current (incomplete) epoch already trained on."""
    global_step: int = 0
    """Optimizer steps taken."""
    best_metric: float | None = None
    best_loss: float | None = None
    """Validation loss at the best epoch (breaks ties of the metric)."""
    best_epoch: int | None = None
    bad_evals: int = 0
    """Evaluations since the last improvement (for early stopping)."""
    stopped_early: bool = False
    pruned: bool = False
    """Stopped by the run's driver (a search pruning the trial), not by patience."""
    diverged: bool = False
    """Stopped because its weights went NaN or infinite (:mod:`adapterkit.train.divergence`)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One row per epoch: training loss and validation metrics."""
    step_losses: list[list[float]] = field(default_factory=list)
    """[optimizer step, training loss] every LOG_EVERY steps, for the curves plot."""
    world_size: int = 1
    """Processes the job trained on; a resume must use as many (they split each batch)."""
    train_seconds: float = 0.0
    """Wall seconds the job has spent in training so far (steps, validation, checkpoints),
    over every resume; each epoch's history row records it as of its validation."""


def _optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(
    path: Path,
    model: AdaptedModel,
    adapter: str,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainerState,
    include_base: bool = False,
    controller: TrainingController | None = None,
    rng: list[dict[str, torch.Tensor]] | None = None,
) -> None:
    """Write a complete checkpoint directory atomically at ``path`` (with the state of the
    method's ``controller``, when it has one).

    ``rng``: every process's random state (:func:`rng_tensors`), in rank order, when
    several processes train; the default is this process's alone.
    """
    with staged_dir(path) as tmp:
        bundle.write_bundle_files(tmp, *model.bundle_contents(adapter, include_base=include_base))
        tensors, meta = _optimizer_tensors(optimizer)
        states = rng or [rng_tensors()]
        tensors.update(states[0])
        for rank, theirs in enumerate(states[1:], start=1):
            tensors.update({f"{RANK_PREFIX}{rank}.{k}": v for k, v in theirs.items()})
        if controller is not None:
            own = controller.state_tensors().items()
            tensors.update({CONTROLLER + k: v.detach().cpu().contiguous() for k, v in own})
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        record = {"trainer": asdict(state), "optimizer": meta, "scheduler": scheduler.state_dict()}
        (tmp / STATE_FILE).write_text(json.dumps(record, indent=1, default=float))


def rng_tensors() -> dict[str, torch.Tensor]:
    """The random state of the CPU and of each visible CUDA device, as tensors."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    return tensors


def restore_rng(tensors: dict[str, torch.Tensor], rank: int = 0) -> None:
    """Set the random state saved by :func:`rng_tensors` (CUDA states for the devices
    present): process ``rank``'s own, or the main process's in a checkpoint that holds
    no other (one written by a single process)."""
    prefix = f"{RANK_PREFIX}{rank}."
    if rank == 0 or prefix + "rng.torch" not in tensors:
        prefix = ""
    torch.set_rng_state(tensors[prefix + "rng.torch"])
    cuda = [
        tensors[f"{prefix}rng.cuda.{i}"]
        for i in range(torch.cuda.device_count())
        if f"{prefix}rng.cuda.{i}" in tensors
    ]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def load_checkpoint(
    path: Path,
    model: AdaptedModel,
    adapter: str,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    controller: TrainingController | None = None,
    rank: int = 0,
) -> TrainerState:
    """Restore adapter weights, optimizer, scheduler and process ``rank``'s RNG (and the
    method's ``controller``) from ``path``."""
    record_path = path / STATE_FILE
    if not record_path.is_file():
        raise BundleError(f"{path}: no checkpoint to resume from ({STATE_FILE} is missing)")
    try:
        record = json.loads(record_path.read_text())
        tensors = load_file(str(path / OPTIMIZER_FILE))
    except (json.JSONDecodeError, SafetensorError, OSError) as exc:
        raise BundleError(
            f"{path}: checkpoint is corrupt ({exc}); delete it to start over"
        ) from None
    config, weights = bundle.read_bundle(path)
    model.check_bundle_base(config, path)
    model.load_weights(adapter, weights, path)

    meta = record["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, slot = key.split(".", 2)
            state.setdefault(int(index), {})[slot] = value
    for key, value in meta["scalars"].items():
        index, slot = key.split(".", 1)
        state.setdefault(int(index), {})[slot] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(record["scheduler"])
    restore_rng(tensors, rank)
    if controller is not None:
        own = {k[len(CONTROLLER) :]: v for k, v in tensors.items() if k.startswith(CONTROLLER)}
        controller.load_state_tensors(own)
    return TrainerState(**record["trainer"])
