"""From merged ``train`` values to the jobs of a run.

A run has one job unless the ``--config`` file lists ``jobs:`` (each entry over the
shared options) or a hyperparameter is given several values
(``--seed 0 1 2 --lr 1e-3 3e-3``): then each job is expanded into one job per
combination, named after what sets it apart (``trec-lr0p001-seed2``), and they all
train together in one run, their rows in the same batches.
"""

from __future__ import annotations

import itertools
from typing import Any

from adapterkit.cli.flags import method_flags, run_options, train_config, train_flags
from adapterkit.errors import AdapterkitError
from adapterkit.train.options import JobSpec
from adapterkit.train.run_setup import default_adapter_name

# Short names of swept options in job names; other options use their own name.
SHORT = {"reduction_factor": "rf", "weight_decay": "wd", "batch_size": "bs"}


def job_specs(values: dict[str, Any]) -> list[JobSpec]:
    """The run's jobs: the ``jobs:`` entries (or one job), each times its swept values.

    Raises:
        AdapterkitError: One line when an entry gives neither ``data`` nor ``train``.
    """
    entries = values.get("jobs") or [{}]
    specs = []
    for number, entry in enumerate(entries, 1):
        merged = {k: v for k, v in values.items() if k != "jobs"}
        merged.update(entry)
        if not merged.get("data") and not merged.get("train_file"):
            where = f"job {number}: " if values.get("jobs") else ""
            raise AdapterkitError(
                f"{where}give --data (a built-in name, folder or file) or --train FILE"
            )
        specs += _expanded(merged)
    return specs


def _sweepable() -> list[str]:
    """Dests of the single-valued hyperparameters, which may be given several values."""
    return [
        spec.dest
        for spec in (*train_flags(), *method_flags())
        if not spec.many and spec.kind not in (None, bool)
    ]


def _expanded(values: dict[str, Any]) -> list[JobSpec]:
    """One job per combination of the hyperparameters given as lists."""
    axes = []
    for dest in _sweepable():
        value = values.get(dest)
        if isinstance(value, list):
            if not value:
                raise AdapterkitError(f"{dest}: give at least one value")
            values = {**values, dest: value[0]} if len(value) == 1 else values
            if len(value) > 1:
                axes.append((dest, value))
    options = run_options({**values, **{dest: vals[0] for dest, vals in axes}})
    stem = options.adapter_name or default_adapter_name(options)
    specs = []
    for combo in itertools.product(*(vals for _, vals in axes)):
        chosen = {**values, **{dest: value for (dest, _), value in zip(axes, combo, strict=True)}}
        suffix = "-".join(
            f"{SHORT.get(d, d)}{_label(v)}" for (d, _), v in zip(axes, combo, strict=True)
        )
        name = f"{stem}-{suffix}" if suffix else stem
        specs.append(JobSpec(name, run_options(chosen), train_config(chosen)))
    return specs


def _label(value: Any) -> str:
    """A value as it appears in a job name, which allows letters, digits, '-' and '_':
    ``0.003`` becomes ``0p003``."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace("+", "").replace(".", "p")
