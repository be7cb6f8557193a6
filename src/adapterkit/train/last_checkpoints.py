"""The ``last`` checkpoints of a run's jobs, replaced all together or not at all.

Jobs of one run share the random state and the steps, so a resumed run must find every
job's ``last`` checkpoint from the same step: a kill -9 between two jobs' saves would
otherwise resume one job a step ahead of another, with the wrong random state for one
of them. So the checkpoints are written in two phases: each job's new checkpoint goes
to ``checkpoints/last.next``; once all are complete a marker file is written (the
commit); then each ``last.next`` replaces ``last`` and the marker is removed. A run that
finds the marker rolls the renames forward; one that finds ``last.next`` without it
throws those away.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from adapterkit.files import atomic_write_bytes, replace_dir
from adapterkit.model import AdaptedModel
from adapterkit.train.job import TrainJob

MARKER = ".last-checkpoints-commit"


def _marker(jobs: list[TrainJob]) -> Path:
    """The commit marker, in the folder that holds every job's folder (the run directory)."""
    return Path(os.path.commonpath([str(job.out_dir) for job in jobs])) / MARKER


def _next_path(job: TrainJob) -> Path:
    return job.last_path.parent / "last.next"


def save_last(
    model: AdaptedModel, jobs: list[TrainJob], rng: list[dict[str, torch.Tensor]] | None = None
) -> None:
    """Checkpoint every job in ``jobs`` as of now, as one commit (the main process only);
    ``rng``: every process's random state, when several train."""
    if not jobs or not jobs[0].main:
        return
    if len(jobs) == 1:  # one checkpoint is already written atomically
        jobs[0].save(model, jobs[0].last_path, rng)
        return
    for job in jobs:
        job.save(model, _next_path(job), rng)
    marker = _marker(jobs)
    atomic_write_bytes(marker, json.dumps([job.name for job in jobs]).encode())
    _roll_forward(jobs, marker)


def recover_last(jobs: list[TrainJob]) -> None:
    """Finish or undo a commit a crash interrupted, before any job resumes."""
    if not jobs or not jobs[0].main:
        return
    marker = _marker(jobs)
    if marker.is_file():
        _roll_forward(jobs, marker)
        return
    for job in jobs:  # written before a crash, never committed
        shutil.rmtree(_next_path(job), ignore_errors=True)


def _roll_forward(jobs: list[TrainJob], marker: Path) -> None:
    for job in jobs:
        staged = _next_path(job)
        if staged.is_dir():
            replace_dir(staged, job.last_path)
    marker.unlink(missing_ok=True)
