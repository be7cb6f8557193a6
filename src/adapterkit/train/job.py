"""One training job of a run: an adapter with its head, task, data and hyperparameters.

A run trains one or more jobs on one frozen base (:mod:`adapterkit.train.engine`).
Everything that makes a job's training its own lives here: its optimizer over its own
parameters only, its learning-rate schedule, its shuffled epochs, its early-stopping
state and its checkpoints. Nothing in a job depends on the other jobs of the run.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adapterkit.host import AdapterHost
from adapterkit.methods.base import AdapterModule, TrainingController
from adapterkit.model import AdaptedModel
from adapterkit.tasks.base import Task
from adapterkit.train.batches import epoch_batches
from adapterkit.train.checkpoint import TrainerState, load_checkpoint, save_checkpoint
from adapterkit.train.config import TrainConfig
from adapterkit.train.continual import Anchor, replay_sample
from adapterkit.train.early_stopping import MIN_STEPS_BEFORE_STOPPING
from adapterkit.train.optim import make_optimizer, make_scheduler


@dataclass
class TrainJob:
    """What a job trains on and how; the engine fills in the running state."""

    name: str
    """The adapter's name (its bundle's name)."""
    task: Task
    train_features: list[dict[str, Any]]
    validation: tuple[list[dict[str, Any]], list[Any]] | None
    """Encoded validation rows and their references, or None (then the last epoch is kept)."""
    config: TrainConfig
    lr: float
    out_dir: Path
    """Where ``checkpoints/`` go (and the job's reports: :mod:`adapterkit.train.run_report`)."""
    include_base: bool = False
    """Full fine-tuning: the base trains too and checkpoints hold it."""

    # Running state (see :meth:`start`).
    state: TrainerState = field(default_factory=TrainerState)
    optimizer: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    params: list[torch.nn.Parameter] = field(default_factory=list)
    batches: list[list[int]] = field(default_factory=list)
    running_loss: float = 0.0
    batches_run: int = 0
    """Batches run in this process in the current epoch (a resumed epoch starts midway)."""
    total_steps: int = 0
    """Optimizer steps of the whole budget (set by :meth:`start`)."""
    stepped: bool = False
    """Whether the last batch ended with an optimizer step (not only accumulated)."""
    main: bool = True
    """Whether this process writes checkpoints (the main one of a multi-process run)."""
    rank: int = 0
    """This process's rank (whose random state a resumed job restores)."""
    on_epoch: Callable[[int, float], bool] | None = None
    """Told (epoch, validation score) after each epoch; True stops the job (pruned)."""
    fresh_rows: int | None = None
    """With replay: ``train_features`` holds this many new rows, then the old ones (None:
    every row is new and each epoch runs them all)."""
    replay_per_epoch: int = 0
    """Old rows that join each epoch (a seeded sample, another each epoch)."""
    anchor: Anchor | None = None
    """An L2 pull towards the starting weights (``--anchor-weight``), or None."""
    controller: TrainingController | None = None
    """What the adapter's method steers itself (AdaLoRA's ranks), or None (see :meth:`start`)."""
    leader: TrainJob | None = None
    """With a shared adapter (:mod:`adapterkit.train.shared`): the job whose optimizer steps
    it and whose epochs validate the group; None for the leader itself and unshared jobs."""
    followers: list[TrainJob] = field(default_factory=list)
    """The jobs that share this job's adapter (set on the leader)."""

    @functools.cached_property
    def floor(self) -> float | None:
        """The trivial predictor's validation score (see :mod:`adapterkit.train.early_stopping`)."""
        return None if self.validation is None else self.task.trivial_score(self.validation[1])

    @functools.cached_property
    def items_per_batch(self) -> float:
        """The mean number of loss items (rows, or labelled tokens: ``Task.loss_count``) in
        one of this job's batches over its training data: what ``--loss-weighting even``
        divides each batch's summed loss by. Counted one row at a time, once per run."""
        counts = [self.task.loss_count(self.task.collate([f])) for f in self.train_features]
        return max(sum(counts) / max(len(counts), 1), 1e-12) * self.config.batch_size

    @property
    def rows_per_epoch(self) -> int:
        """Training rows in one epoch: the new ones, plus the replayed sample."""
        if self.fresh_rows is None:
            return len(self.train_features)
        return self.fresh_rows + self.replay_per_epoch

    @property
    def epochs(self) -> int:
        """The job's epochs (its config's, or those its budget decides for its data)."""
        return self.config.epochs_for(self.rows_per_epoch)

    @property
    def patience_from_step(self) -> int:
        """Early stopping may end the job only from this step on (see
        :mod:`adapterkit.train.early_stopping`)."""
        return min(MIN_STEPS_BEFORE_STOPPING, self.total_steps // 2)

    @property
    def last_path(self) -> Path:
        """The checkpoint a resumed run continues from."""
        return self.out_dir / "checkpoints" / "last"

    @property
    def best_path(self) -> Path:
        """The checkpoint of the best validation score so far."""
        return self.out_dir / "checkpoints" / "best"

    @property
    def done(self) -> bool:
        """Whether the job has run all its epochs or stopped early (a job sharing another's
        adapter: whether that one is done)."""
        if self.leader is not None:
            return self.leader.done
        return self.state.epoch >= self.epochs or self.state.stopped_early

    def start(self, model: AdaptedModel, resume: bool, log: Callable[[str], None]) -> None:
        """Build the optimizer and schedule over this job's parameters; resume when asked."""
        # The model's parameter order, kept to this job's: checkpoints index optimizer state by it.
        own = {id(p) for p in self.own_parameters(model)}
        named = [(n, p) for n, p in model.named_parameters() if id(p) in own]
        self.params = [p for _, p in named]
        self.optimizer = make_optimizer(named, self.config, self.lr)
        self.total_steps = self.config.steps_per_epoch(self.rows_per_epoch) * self.epochs
        self.scheduler = make_scheduler(self.optimizer, self.config, self.total_steps)
        # A job sharing another's adapter leaves its schedule (AdaLoRA's ranks) to that one.
        self.controller = (
            None
            if self.leader is not None
            else model.configs[self.name].training_controller(
                adapter_modules(model, self.name), self.total_steps
            )
        )
        if resume and self.last_path.exists():
            self.state = load_checkpoint(
                self.last_path,
                model,
                self.name,
                self.optimizer,
                self.scheduler,
                self.controller,
                self.rank,
            )
            log(
                f"resumed from {self.last_path}: epoch {self.state.epoch}, "
                f"batch {self.state.batches_done}, step {self.state.global_step}"
            )
        elif resume:
            log(f"--resume: no checkpoint in {self.last_path}, starting from scratch")

    def own_parameters(self, model: AdaptedModel) -> list[torch.nn.Parameter]:
        """The parameters this job trains: its adapter and head (and the base when full); a
        job sharing another's adapter trains its head only (the leader steps the adapter)."""
        params = [] if self.leader is not None else [*model.adapter_parameters(self.name).values()]
        params += model.head_parameters(self.name).values()
        if self.include_base:
            params += [p for p in model.base.parameters() if p.requires_grad]
        return [p for p in params if p.requires_grad]

    def next_rows(self) -> list[int]:
        """The training rows of this job's next batch, starting a new epoch when needed."""
        if self.state.batches_done == 0 or not self.batches:
            rows = self.epoch_rows()
            lengths = None
            if self.config.group_by_length:
                lengths = [len(self.train_features[r].get("input_ids", ())) for r in rows]
            self.batches = [
                [rows[i] for i in batch]
                for batch in epoch_batches(
                    len(rows), self.config.batch_size, self.config.seed, self.state.epoch, lengths
                )
            ]
            if self.state.batches_done == 0:
                self.running_loss, self.batches_run = 0.0, 0
        return self.batches[self.state.batches_done]

    def epoch_rows(self) -> list[int]:
        """The rows of the current epoch: all of them, or the new ones and this epoch's
        sample of the replayed ones (the same again when a run resumes mid-epoch)."""
        if self.fresh_rows is None:
            return list(range(len(self.train_features)))
        old = len(self.train_features) - self.fresh_rows
        sample = replay_sample(old, self.replay_per_epoch, self.config.seed, self.state.epoch)
        return [*range(self.fresh_rows), *(self.fresh_rows + i for i in sample)]

    def count_batch(self, loss: float) -> bool:
        """Record a trained batch and its loss; whether its optimizer step is due now
        (at every ``grad_accumulation``-th batch and at the end of the epoch)."""
        self.running_loss += loss
        self.batches_run += 1
        self.state.batches_done += 1
        self.stepped = (
            self.state.batches_done % self.config.grad_accumulation == 0 or self.epoch_ended
        )
        return self.stepped

    @property
    def epoch_ended(self) -> bool:
        """Whether the last counted batch was the epoch's last."""
        return self.state.batches_done == len(self.batches)

    def optimizer_step(self, scaler: torch.amp.GradScaler) -> None:
        """Clip, step (through the fp16 loss scaler), advance the schedule, clear gradients."""
        assert self.optimizer is not None and self.scheduler is not None
        scaler.unscale_(self.optimizer)  # clipping must see the true gradients
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        scaler.step(self.optimizer)
        self.scheduler.step()
        self.state.global_step += 1
        if self.controller is not None:  # it reads the gradients: before they are cleared
            self.controller.after_step(self.state.global_step)
        self.optimizer.zero_grad(set_to_none=True)

    def epoch_loss(self) -> float:
        """Mean training loss of the current epoch's batches run in this process."""
        # nan: resumed after the epoch's last batch, so no loss of it was seen here
        return self.running_loss / self.batches_run if self.batches_run else math.nan

    def save(
        self, model: AdaptedModel, path: Path, rng: list[dict[str, torch.Tensor]] | None = None
    ) -> None:
        """Checkpoint the job (adapter, head, optimizer, schedule, RNG, state) at ``path``
        (the main process only: every process holds the same weights). ``rng``: every
        process's random state, when several train (see :func:`save_checkpoint`)."""
        if not self.main:
            return
        assert self.optimizer is not None and self.scheduler is not None
        save_checkpoint(
            path,
            model,
            self.name,
            self.optimizer,
            self.scheduler,
            self.state,
            self.include_base,
            self.controller,
            rng,
        )


def adapter_modules(model: AdaptedModel, name: str) -> dict[str, AdapterModule]:
    """Adapter ``name``'s module on each layer it adapts, by the layer's name in the base."""
    return {
        layer: host.adapters[name]
        for layer, host in model.base.named_modules()
        if isinstance(host, AdapterHost) and name in host.adapters
    }
