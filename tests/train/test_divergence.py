"""A job whose weights go NaN stops; the run keeps its best epoch from before, or saves
nothing and says so in one line (a packed run's other jobs lose nothing)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from tests.cli.test_cli_train import _train, workspace  # noqa: F401 (a fixture)
from tests.tiny import FINISHED

from adapterkit import bundle
from adapterkit.cli import main
from adapterkit.train.job import TrainJob

STEPS_PER_EPOCH = 8  # the workspace's 120 training rows in batches of 16


def _poison_at(monkeypatch: pytest.MonkeyPatch, step: int, job_suffix: str = "") -> None:
    """From optimizer step ``step`` on, the job's weights turn NaN after the step (what a
    learning rate far too high ends in), for jobs whose name ends with ``job_suffix``."""
    step_as_usual = TrainJob.optimizer_step

    def step_then_poison(self: TrainJob, scaler: torch.amp.GradScaler) -> None:
        step_as_usual(self, scaler)
        if self.state.global_step >= step and self.name.endswith(job_suffix):
            with torch.no_grad():
                self.params[0].fill_(float("nan"))

    monkeypatch.setattr(TrainJob, "optimizer_step", step_then_poison)


def test_diverging_after_a_validated_epoch_keeps_that_epochs_weights(
    workspace: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _poison_at(monkeypatch, STEPS_PER_EPOCH + 2)  # inside epoch 2: the next loss is NaN
    out = tmp_path / "run"
    assert _train(workspace, out, "--method", "lora", "--epochs", "3") in FINISHED
    said = capsys.readouterr().out
    assert f"training diverged by step {STEPS_PER_EPOCH + 3}: the loss is nan" in said
    assert "the bundle will hold epoch 1's weights, its best before" in said
    _, tensors = bundle.read_bundle(out / "adapter")  # refuses NaN weights: these are finite
    assert tensors
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["diverged"] is True and metrics["best_epoch"] == 1


def test_diverging_before_any_validated_epoch_saves_nothing_in_one_line(
    workspace: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # NaN after epoch 1's last step: its loss was finite, the epoch's end finds the weights.
    _poison_at(monkeypatch, STEPS_PER_EPOCH)
    out = tmp_path / "run"
    assert _train(workspace, out, "--method", "lora", "--epochs", "3") == 2
    captured = capsys.readouterr()
    assert "validation accuracy" not in captured.out  # a NaN model is never validated
    assert f"training diverged by step {STEPS_PER_EPOCH}: the weights hold NaN" in captured.out
    lines = [line for line in captured.err.splitlines() if line.startswith("adapterkit")]
    assert lines == [
        "adapterkit: error: training diverged before any validated epoch (adapter): nothing "
        "was saved; lower --lr (it was 0.001)"
    ]
    assert not (out / "adapter").exists() and not (out / "metrics.json").exists()


def test_in_a_packed_run_the_other_jobs_keep_their_bundles(
    workspace: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _poison_at(monkeypatch, 2, job_suffix="1")  # only the seed-1 job
    out = tmp_path / "run"
    assert _train(workspace, out, "--method", "lora", "--epochs", "1", "--seeds", "0", "1") == 2
    err = capsys.readouterr().err
    assert "training diverged before any validated epoch (" in err
    kept = sorted(p.parent.parent.name for p in out.glob("*/adapter/adapterkit.json"))
    assert kept == ["adapter-seed0"]
    assert (out / "summary.md").exists()  # the table of the jobs that finished


def test_a_search_records_a_diverged_trial_as_failed_and_goes_on(
    workspace: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _poison_at(monkeypatch, 2, job_suffix="001")  # trial 1 of three, packed beside trial 0
    out = tmp_path / "search"
    argv = ["search", "--model", str(workspace / "model"), "--train", str(workspace / "train.csv")]
    argv += ["--validation", str(workspace / "validation.csv"), "--output", str(out)]
    assert main([*argv, "--epochs", "1", "--trials", "3", "--parallel", "2"]) == 0
    with (out / "trials.csv").open() as handle:
        rows = {row["trial"]: row for row in csv.DictReader(handle)}
    assert rows["1"]["state"] == "FAIL" and "diverged" in rows["1"]["error"]
    assert rows["0"]["state"] == rows["2"]["state"] == "COMPLETE"
