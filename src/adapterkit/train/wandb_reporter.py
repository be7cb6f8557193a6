"""``--report-to wandb``: one Weights & Biases run per job, grouped under the training run.

Offline by default: the runs are written under ``<run>/wandb/`` and reach a W&B server
only when the user syncs them (``wandb sync <run>/wandb/offline-run-*``) or sets
``WANDB_MODE=online`` with their own login. Each job's run gets its options as config,
its step and epoch numbers as history, and its bundle, report and metrics as files. The
runs' ids are kept in ``<run>/wandb/runs.json`` so that ``--resume`` goes on in the same
runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from adapterkit.errors import AdapterkitError
from adapterkit.files import atomic_write_bytes

INSTALL = "--report-to wandb needs Weights & Biases: pip install 'adapterkit[wandb]'"


class WandbReporter:
    """A W&B run per job, grouped by the training run's folder (a ``Reporter``)."""

    def __init__(self, run_dir: Path, jobs: dict[str, Path], resume: bool) -> None:
        try:
            import wandb
        except ImportError:
            raise AdapterkitError(INSTALL) from None
        folder = run_dir.resolve() / "wandb"
        folder.mkdir(parents=True, exist_ok=True)
        ids_path = folder / "runs.json"
        ids = json.loads(ids_path.read_text()) if resume and ids_path.is_file() else {}
        mode = os.environ.get("WANDB_MODE") or "offline"  # no login, no network unless asked
        self.runs = {}
        for job in jobs:
            run = wandb.init(
                project=os.environ.get("WANDB_PROJECT") or "adapterkit",
                group=run_dir.resolve().name,
                name=job,
                id=ids.get(job),
                resume="allow" if job in ids else None,
                dir=str(run_dir.resolve()),
                mode=mode,
                reinit="create_new",  # one run per job, side by side in this process
                settings=wandb.Settings(silent=True, console="off"),
            )
            self.runs[job] = run
        atomic_write_bytes(ids_path, json.dumps({j: r.id for j, r in self.runs.items()}).encode())

    def params(self, job: str, values: dict[str, Any]) -> None:
        self.runs[job].config.update(
            {
                k: v if isinstance(v, int | float | str | bool) else str(v)
                for k, v in values.items()
            },
            allow_val_change=True,
        )

    def metrics(self, job: str, values: dict[str, float], step: int) -> None:
        if values:
            self.runs[job].log(values, step=step)

    def files(self, job: str, paths: list[Path]) -> None:
        run = self.runs[job]
        for path in paths:
            if path.is_dir():
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    run.save(str(file), base_path=str(path.parent), policy="now")
            elif path.is_file():
                run.save(str(path), base_path=str(path.parent), policy="now")

    def close(self, finished: bool = True) -> None:
        for run in self.runs.values():
            run.finish(exit_code=0 if finished else 1)
