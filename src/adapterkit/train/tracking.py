"""Where a run's numbers go besides its files: TensorBoard (the default), MLflow and W&B.

``--report-to tensorboard mlflow wandb`` (or ``none``) picks them (W&B:
:mod:`adapterkit.train.wandb_reporter`, offline unless ``WANDB_MODE`` says otherwise). Each job reports its
hyperparameters when it starts, its training loss and learning rate every few steps,
its epoch rows (training loss, validation metrics) and, at the end, its final metrics
with its bundle and report as files. Only the main process of a run reports.

MLflow writes to a real tracking store: ``sqlite:///<run>/mlruns/mlflow.db`` with the
artifacts under ``<run>/mlruns/artifacts`` unless ``--mlflow-uri`` names another. The run
is one MLflow run, each job one run nested in it (``mlflow.parentRunId``); the ids are
kept in ``<run>/mlruns/runs.json`` so that ``--resume`` goes on logging into the same runs.
"""

from __future__ import annotations

import importlib.util
import json
import numbers
from pathlib import Path
from typing import Any, Protocol

from adapterkit.errors import AdapterkitError
from adapterkit.files import atomic_write_bytes

REPORTERS = ("tensorboard", "mlflow", "wandb", "none")


def check_report_to(names: list[str]) -> list[str]:
    """The reporters asked for, refusing unknown ones and ``none`` beside others."""
    unknown = [name for name in names if name not in REPORTERS]
    if unknown:
        raise AdapterkitError(
            f"--report-to: unknown reporter(s) {', '.join(unknown)}; use {', '.join(REPORTERS)}"
        )
    if "none" in names and len(names) > 1:
        raise AdapterkitError("--report-to none cannot be combined with other reporters")
    if "mlflow" in names and importlib.util.find_spec("mlflow") is None:
        raise AdapterkitError("--report-to mlflow needs MLflow: pip install 'adapterkit[mlflow]'")
    if "wandb" in names and importlib.util.find_spec("wandb") is None:
        from adapterkit.train.wandb_reporter import INSTALL

        raise AdapterkitError(INSTALL)
    return [name for name in names if name != "none"]


class Reporter(Protocol):
    """One place numbers go (TensorBoard, MLflow): what :class:`Trackers` tells each."""

    def params(self, job: str, values: dict[str, Any]) -> None:
        """A job's options, once when it starts."""

    def metrics(self, job: str, values: dict[str, float], step: int) -> None:
        """Numbers of a job at an optimizer step."""

    def files(self, job: str, paths: list[Path]) -> None:
        """Files or folders a finished job leaves."""

    def close(self, finished: bool = True) -> None:
        """The end of the run (``finished=False``: it failed or was stopped)."""


class Trackers:
    """The reporters of one run, each told about every job's progress."""

    def __init__(self, reporters: list[Reporter]) -> None:
        self.reporters = reporters

    @classmethod
    def open(
        cls,
        names: list[str],
        run_dir: Path,
        jobs: dict[str, Path],
        mlflow_uri: str | None,
        resume: bool,
    ) -> Trackers:
        """The reporters ``names`` asks for, for jobs writing into ``jobs[name]``."""
        reporters: list[Reporter] = []
        for name in check_report_to(names):
            if name == "tensorboard":
                reporters.append(TensorBoardReporter(jobs))
            elif name == "mlflow":
                reporters.append(MlflowReporter(run_dir, list(jobs), mlflow_uri, resume))
            elif name == "wandb":
                from adapterkit.train.wandb_reporter import WandbReporter

                reporters.append(WandbReporter(run_dir, jobs, resume))
        return cls(reporters)

    def params(self, job: str, values: dict[str, Any]) -> None:
        """A job's hyperparameters and options."""
        for reporter in self.reporters:
            reporter.params(job, values)

    def metrics(self, job: str, values: dict[str, Any], step: int) -> None:
        """Numeric values of a job at optimizer step ``step`` (others are left out)."""
        numeric = {
            k: float(v)
            for k, v in values.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v  # not NaN
        }
        for reporter in self.reporters:
            reporter.metrics(job, numeric, step)

    def files(self, job: str, paths: list[Path]) -> None:
        """Files or folders of a finished job (its bundle, report, metrics)."""
        for reporter in self.reporters:
            reporter.files(job, paths)

    def close(self, finished: bool = True) -> None:
        """End every reporter's runs (``finished=False``: the run failed or was stopped)."""
        for reporter in self.reporters:
            reporter.close(finished)


class TensorBoardReporter:
    """One event folder per job: ``<job dir>/tensorboard`` (a :class:`Reporter`)."""

    def __init__(self, jobs: dict[str, Path]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writers = {
            name: SummaryWriter(str(path / "tensorboard")) for name, path in jobs.items()
        }

    def params(self, job: str, values: dict[str, Any]) -> None:
        return  # config.yaml holds them; TensorBoard's hparams view wants final metrics too

    def metrics(self, job: str, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writers[job].add_scalar(key, value, step)

    def files(self, job: str, paths: list[Path]) -> None:
        return

    def close(self, finished: bool = True) -> None:
        for writer in self.writers.values():
            writer.close()


class MlflowReporter:
    """A parent MLflow run for the training run, one nested run per job (a :class:`Reporter`)."""

    def __init__(self, run_dir: Path, jobs: list[str], uri: str | None, resume: bool) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise AdapterkitError(
                "--report-to mlflow needs MLflow: pip install 'adapterkit[mlflow]'"
            ) from None
        store = run_dir.resolve() / "mlruns"
        store.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=uri or f"sqlite:///{store / 'mlflow.db'}")
        self.ids_path = store / "runs.json"
        ids = json.loads(self.ids_path.read_text()) if resume and self.ids_path.is_file() else {}
        if not ids or set(ids.get("jobs", {})) != set(jobs):
            ids = self._create(run_dir, store, jobs)
        self.parent, self.runs = ids["parent"], ids["jobs"]

    def _create(self, run_dir: Path, store: Path, jobs: list[str]) -> dict[str, Any]:
        name = "adapterkit"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(name, artifact_location=str(store / "artifacts"))
        )
        parent = self.client.create_run(experiment_id, run_name=run_dir.name).info.run_id
        runs = {
            job: self.client.create_run(
                experiment_id, run_name=job, tags={"mlflow.parentRunId": parent}
            ).info.run_id
            for job in jobs
        }
        ids = {"parent": parent, "jobs": runs}
        atomic_write_bytes(self.ids_path, json.dumps(ids, indent=1).encode())
        return ids

    def params(self, job: str, values: dict[str, Any]) -> None:
        from mlflow.entities import Param

        run = self.runs[job]
        logged = self.client.get_run(run).data.params  # a resumed run has them already
        fresh = [Param(k, str(v)[:6000]) for k, v in values.items() if k not in logged]
        if fresh:
            self.client.log_batch(run, params=fresh)

    def metrics(self, job: str, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        rows = [Metric(k, v, stamp, step) for k, v in values.items()]
        if rows:
            self.client.log_batch(self.runs[job], metrics=rows)

    def files(self, job: str, paths: list[Path]) -> None:
        for path in paths:
            if path.is_dir():
                self.client.log_artifacts(self.runs[job], str(path), artifact_path=path.name)
            elif path.is_file():
                self.client.log_artifact(self.runs[job], str(path))

    def close(self, finished: bool = True) -> None:
        status = "FINISHED" if finished else "KILLED"
        for run in [*self.runs.values(), self.parent]:
            self.client.set_terminated(run, status=status)
