"""Experiment tracking: a real MLflow store read back with MlflowClient, offline W&B runs; bad
reporters refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.tiny import FINISHED, save_tiny_bert

from adapterkit.cli import main
from adapterkit.train.default_method import default_method

WORDS = ["good", "bad", "movie", "plot", "fun", "dull"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("m") / "model", WORDS)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("d") / "reviews.csv"
    path.write_text("text,label\n" + "good fun movie,pos\nbad dull plot,neg\n" * 10)
    return path


def test_mlflow_store_holds_one_nested_run_per_job(model_dir, data, tmp_path) -> None:
    from mlflow import MlflowClient  # the [mlflow] extra, part of dev: `make test` installs it

    out = tmp_path / "run"
    argv = ["train", "--model", str(model_dir), "--train", str(data), "--output", str(out)]
    argv += ["--epochs", "2", "--batch-size", "4", "--seeds", "0", "1", "--report-to", "mlflow"]
    assert main(argv) in FINISHED
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns' / 'mlflow.db'}")
    ids = json.loads((out / "mlruns" / "runs.json").read_text())
    assert set(ids["jobs"]) == {"reviews-seed0", "reviews-seed1"}
    parent = client.get_run(ids["parent"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == "run"
    for job, run_id in ids["jobs"].items():
        run = client.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == ids["parent"]
        assert run.info.run_name == job and run.info.status == "FINISHED"
        assert run.data.params["seed"] == job[-1] and run.data.params["method"] == default_method(
            "sequence-classification"
        )
        epochs = client.get_metric_history(run_id, "eval/accuracy")
        assert [m.step for m in epochs] == sorted(m.step for m in epochs) and len(epochs) == 2
        final = json.loads((out / job / "metrics.json").read_text())
        assert run.data.metrics[f"{final['split']}/accuracy"] == pytest.approx(final["accuracy"])
        files = {a.path for a in client.list_artifacts(run_id)}
        assert {"adapter", "report.md", "metrics.json"} <= files
        assert {a.path for a in client.list_artifacts(run_id, "adapter")} == {
            "adapter/adapterkit.json",
            "adapter/adapterkit.safetensors",
        }
    assert not (out / "reviews-seed0" / "tensorboard").exists()  # only the reporters asked for


def test_report_to_none_writes_no_tensorboard(model_dir, data, tmp_path) -> None:
    out = tmp_path / "run"
    argv = ["train", "--model", str(model_dir), "--train", str(data), "--output", str(out)]
    assert main([*argv, "--epochs", "1", "--report-to", "none"]) in FINISHED
    assert (out / "metrics.json").is_file() and not (out / "tensorboard").exists()


def test_wandb_writes_one_offline_run_per_job(model_dir, data, tmp_path, monkeypatch) -> None:
    """W&B, offline (no login, no network): each job's run lands under <run>/wandb with its
    options, its step and epoch numbers and its files (the [wandb] extra, part of dev)."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "run"
    argv = ["train", "--model", str(model_dir), "--train", str(data), "--output", str(out)]
    argv += ["--epochs", "2", "--batch-size", "4", "--seeds", "0", "1", "--report-to", "wandb"]
    assert main(argv) in FINISHED
    ids = json.loads((out / "wandb" / "runs.json").read_text())
    assert sorted(ids) == ["reviews-seed0", "reviews-seed1"]
    for job, run_id in ids.items():
        (folder,) = (out / "wandb").glob(f"offline-run-*-{run_id}")
        records = (folder / f"run-{run_id}.wandb").read_bytes()
        # The run's records hold what was logged: the job's name, options and numbers.
        for text in (job, "train/loss", "eval/accuracy", "batch_size"):
            assert text.encode() in records, (job, text)
        files = folder / "files"
        assert (files / "report.md").is_file() and (files / "adapter" / "adapterkit.json").is_file()


@pytest.mark.parametrize(
    ("reporters", "message"),
    [
        (["neptune"], "unknown reporter(s) neptune"),
        (["none", "mlflow"], "none cannot be combined"),
    ],
)
def test_bad_reporters_are_one_line(model_dir, data, tmp_path, capsys, reporters, message) -> None:
    out = tmp_path / "run"
    argv = ["train", "--model", str(model_dir), "--train", str(data), "--output", str(out)]
    assert main([*argv, "--report-to", *reporters]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()
