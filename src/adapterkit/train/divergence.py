"""Divergence: a job whose weights went NaN or infinite (a learning rate far too high)
stops there, and the run keeps the best epoch it validated before, or writes nothing.

Two checks. After each step, only the step's loss is looked at (already a Python float,
so it costs no device sync), and the weights only when that loss is not finite: a long
epoch stops early. At each epoch's end, before validation, the weights themselves: one
step can turn them NaN after a finite loss, and a NaN model must never be validated into
the best checkpoint. Under fp16 the gradient scaler skips the steps whose gradients
overflow, so a non-finite loss there leaves the weights finite and the job trains on.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from adapterkit.errors import AdapterkitError
from adapterkit.train.job import TrainJob


def stop_if_diverged(job: TrainJob, loss: float, log: Callable[[str], None]) -> bool:
    """After a step: when ``loss`` is not finite, check the weights (see
    :func:`check_weights`); whether the job diverged."""
    return not math.isfinite(loss) and check_weights(job, log, f"the loss is {loss} and ")


def check_weights(job: TrainJob, log: Callable[[str], None], why: str = "") -> bool:
    """When the job's weights hold NaN or infinite values, mark it diverged (it leaves the
    batches and is not validated again) and say so; whether it did."""
    if job.leader is not None or job.state.diverged:  # a shared adapter's leader checks
        return job.state.diverged
    if all(bool(torch.isfinite(p).all()) for p in job.params):
        return False
    state = job.state
    state.diverged = state.stopped_early = True
    kept = (
        f"the bundle will hold epoch {state.best_epoch}'s weights, its best before"
        if state.best_epoch is not None
        else "no epoch before it validated, so nothing will be saved"
    )
    log(
        f"training diverged by step {state.global_step}: {why}the weights hold NaN or "
        f"infinite values; the job stops ({kept})"
    )
    return True


def diverged_error(names: list[str], lrs: list[float]) -> AdapterkitError:
    """The run's one line for jobs that diverged before any epoch they could keep."""
    rates = ", ".join(f"{lr:g}" for lr in lrs)
    return AdapterkitError(
        f"training diverged before any validated epoch ({', '.join(names)}): nothing was "
        f"saved; lower --lr (it was {rates})"
    )
