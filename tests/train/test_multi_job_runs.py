"""Runs of several jobs through the command line: multi-task YAML, packed sweeps, resume,
and bad job lists refused in one line with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.tiny import FINISHED

from adapterkit.cli import main
from adapterkit.train.default_method import default_method


def _train(model_dir: Path, out: Path, *args: str) -> int:
    return main(["train", "--model", str(model_dir), "--output", str(out), *args])


def _yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_multi_task_yaml_trains_each_job_into_its_folder(model_dir, data, tmp_path) -> None:
    config = _yaml(
        tmp_path / "multi.yaml",
        f"epochs: 2\nbatch_size: 4\njobs:\n"
        f"  - name: sentiment\n    train: {data['sentiment']}\n"
        f"  - name: ner\n    train: {data['ner']}\n    method: lora\n    lr: 0.005\n",
    )
    out = tmp_path / "run"
    assert _train(model_dir, out, "--config", str(config)) in FINISHED
    sentiment = json.loads((out / "sentiment" / "metrics.json").read_text())
    ner = json.loads((out / "ner" / "metrics.json").read_text())
    assert "accuracy" in sentiment and "f1" in ner and ner["lr"] == 0.005
    assert ner["method"] == "lora"  # named; the other job gets its task type's default
    assert sentiment["method"] == default_method("sequence-classification")
    for job in ("sentiment", "ner"):
        assert (out / job / "adapter" / "adapterkit.safetensors").is_file()
        assert (out / job / "checkpoints" / "best").is_dir()
    assert "jobs:\n- sentiment\n- ner" in (out / "config.yaml").read_text()
    table = (out / "summary.md").read_text()
    assert "| sentiment |" in table and "| ner |" in table


def test_a_sweep_trains_one_job_per_combination_and_a_median_table(
    model_dir, data, tmp_path
) -> None:
    out = tmp_path / "sweep"
    args = ["--train", str(data["sentiment"]), "--epochs", "1", "--batch-size", "8"]
    assert _train(model_dir, out, *args, "--seeds", "0", "1", "--lr", "0.001", "0.003") in FINISHED
    names = sorted(p.name for p in out.iterdir() if (p / "metrics.json").is_file())
    assert names == [
        "sentiment-lr0p001-seed0",
        "sentiment-lr0p001-seed1",
        "sentiment-lr0p003-seed0",
        "sentiment-lr0p003-seed1",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert {row["settings"]["lr"] for row in summary["jobs"]} == {0.001, 0.003}
    table = (out / "summary.md").read_text()
    assert "## Median over seeds" in table and "| lr 0.001 | 2 | accuracy |" in table


def test_resume_after_interruption_finishes_every_job_as_uninterrupted(
    model_dir, data, tmp_path, monkeypatch
) -> None:
    config = _yaml(
        tmp_path / "multi.yaml",
        f"epochs: 3\npatience: 5\nlr: 0.005\njobs:\n"
        f"  - name: a\n    train: {data['sentiment']}\n    batch_size: 3\n"
        f"  - name: b\n    train: {data['ner']}\n    batch_size: 4\n    method: lora\n",
    )
    assert _train(model_dir, tmp_path / "straight", "--config", str(config)) == 0

    import adapterkit.train.engine as engine

    real = engine.evaluate_features
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the third epoch end of the run (jobs end epochs at their own pace)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(engine, "evaluate_features", interrupted)
    assert _train(model_dir, resumed, "--config", str(config)) == 130
    assert not (resumed / "a" / "metrics.json").exists()
    monkeypatch.setattr(engine, "evaluate_features", real)
    assert _train(model_dir, resumed, "--config", str(config), "--resume") == 0
    for job in ("a", "b"):
        want = load_file(str(tmp_path / "straight" / job / "adapter" / "adapterkit.safetensors"))
        got = load_file(str(resumed / job / "adapter" / "adapterkit.safetensors"))
        assert want.keys() == got.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ("  - name: x\n    train: {s}\n  - name: x\n    train: {n}\n", "job name(s) x given twice"),
        ("  - name: x\n    train: {s}\n    lr_typo: 1\n", "job 1: unknown option(s) lr_typo"),
        ("  - name: x\n    train: {s}\n  - name: y\n    train: {e}\n", "empty"),
        (
            "  - name: x\n    train: {s}\n  - name: y\n    device: cpu\n    train: {s}\n",
            "device must agree",
        ),
        (
            "  - name: x\n    train: {s}\n  - name: y\n    method: full\n    train: {s}\n",
            "full fine-tuning",
        ),
        ("  - name: x\n", "job 1: give --data"),
        (
            "  - name: x\n    train: {s}\n  - name: y\n    train: {c}\n",
            "share one base, but these need different ones: x (encoder), y (causal-lm)",
        ),
        ("  - 3\n", "job 1 is not an 'option: value' map"),
    ],
)
def test_bad_job_lists_are_one_line_and_write_nothing(
    model_dir, data, tmp_path, capsys, jobs: str, message: str
) -> None:
    files = {"s": data["sentiment"], "n": data["ner"], "e": data["empty"], "c": data["chat"]}
    text = "jobs:\n" + jobs.format(**files)
    config = _yaml(tmp_path / "bad.yaml", text)
    out = tmp_path / "run"
    assert _train(model_dir, out, "--config", str(config)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_resume_with_another_job_list_is_refused(model_dir, data, tmp_path, capsys) -> None:
    config = _yaml(
        tmp_path / "c.yaml",
        f"epochs: 1\njobs:\n  - name: a\n    train: {data['sentiment']}\n"
        f"  - name: b\n    train: {data['sentiment']}\n",
    )
    out = tmp_path / "run"
    assert _train(model_dir, out, "--config", str(config)) in FINISHED
    other = _yaml(tmp_path / "d.yaml", config.read_text().replace("name: b", "name: c"))
    capsys.readouterr()
    assert _train(model_dir, out, "--config", str(other), "--resume") == 2
    assert "was started with jobs ['a', 'b'], not ['a', 'c']" in capsys.readouterr().err


def test_kill_9_then_resume_finishes_every_job_as_uninterrupted(model_dir, data, tmp_path) -> None:
    """A real SIGKILL at whatever moment the run has reached after its first checkpoints."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = _yaml(
        tmp_path / "multi.yaml",
        f"epochs: 6\npatience: 9\nlr: 0.005\nsave_steps: 1\nreport_to: [none]\njobs:\n"
        f"  - name: a\n    train: {data['sentiment']}\n    batch_size: 3\n"
        f"  - name: b\n    train: {data['ner']}\n    batch_size: 2\n    method: lora\n",
    )
    assert _train(model_dir, tmp_path / "straight", "--config", str(config)) == 0
    resumed = tmp_path / "resumed"
    argv = [sys.executable, "-m", "adapterkit", "train", "--model", str(model_dir)]
    argv += ["--config", str(config), "--output", str(resumed)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = resumed / "b" / "checkpoints" / "last" / "trainer_state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (resumed / "a" / "metrics.json").exists()  # killed mid-run
    assert _train(model_dir, resumed, "--config", str(config), "--resume") == 0
    for job in ("a", "b"):
        want = load_file(str(tmp_path / "straight" / job / "adapter" / "adapterkit.safetensors"))
        got = load_file(str(resumed / job / "adapter" / "adapterkit.safetensors"))
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)
    assert not list(resumed.glob("*/checkpoints/last.next"))
    assert not (resumed / ".last-checkpoints-commit").exists()


def test_a_commit_cut_in_two_is_rolled_forward_or_thrown_away(model_dir, data, tmp_path) -> None:
    from adapterkit.train import last_checkpoints

    config = _yaml(
        tmp_path / "c.yaml",
        f"epochs: 1\njobs:\n  - name: a\n    train: {data['sentiment']}\n"
        f"  - name: b\n    train: {data['sentiment']}\n",
    )
    out = tmp_path / "run"
    assert _train(model_dir, out, "--config", str(config)) in FINISHED

    class Job:  # what recover_last reads of a job
        def __init__(self, name: str) -> None:
            self.name, self.main, self.out_dir = name, True, out / name
            self.last_path = self.out_dir / "checkpoints" / "last"

    jobs = [Job("a"), Job("b")]
    # Cut before the commit: the new checkpoints are thrown away, the old ones stay.
    for job in jobs:
        shutil.copytree(job.last_path, job.last_path.parent / "last.next")
        (job.last_path.parent / "last.next" / "new").write_text("x")
    last_checkpoints.recover_last(jobs)
    assert all(not (j.last_path / "new").exists() for j in jobs)
    assert not list(out.glob("*/checkpoints/last.next"))
    # Cut after the commit, one job renamed: the other is rolled forward.
    shutil.copytree(jobs[1].last_path, jobs[1].last_path.parent / "last.next")
    (jobs[1].last_path.parent / "last.next" / "new").write_text("x")
    (out / last_checkpoints.MARKER).write_text('["a", "b"]')
    last_checkpoints.recover_last(jobs)
    assert (jobs[1].last_path / "new").exists() and not (out / last_checkpoints.MARKER).exists()


def test_a_pruned_job_gives_its_place_to_a_refilled_one(model_dir, data, tmp_path) -> None:
    """RunHooks.refill: the job pruned after epoch 1 leaves, a new job joins the batches in
    its place and trains its own epochs; every job gets its bundle and final metrics."""
    from adapterkit.train.config import TrainConfig
    from adapterkit.train.options import JobSpec, RunHooks, RunOptions
    from adapterkit.train.run import train_jobs

    def spec(name: str, method: str) -> JobSpec:
        options = RunOptions(
            model=str(model_dir),
            train_file=str(data["sentiment"]),
            method=method,
            report_to=["none"],
        )
        return JobSpec(name, options, TrainConfig(epochs=3, batch_size=4, seed=1))

    epochs_seen: dict[str, list[int]] = {}
    handed: list[str] = []

    def on_epoch(name: str, epoch: int, score: float) -> bool:
        epochs_seen.setdefault(name, []).append(epoch)
        return name == "first" and epoch == 1

    def refill(pruned: str) -> JobSpec | None:
        handed.append(pruned)
        return spec("third", "lora") if len(handed) == 1 else None

    hooks = RunHooks(nested=True, on_epoch=on_epoch, refill=refill)
    finals = train_jobs([spec("first", "pfeiffer"), spec("second", "lora")], tmp_path, hooks=hooks)
    assert handed == ["first"] and set(finals) == {"first", "second", "third"}
    assert finals["first"]["pruned"] and finals["first"]["epochs_run"] == 1
    assert epochs_seen["third"] == [1, 2, 3] and not finals["third"]["pruned"]
    for name in finals:
        assert (tmp_path / name / "adapter" / "adapterkit.safetensors").is_file(), name


def test_a_shared_adapter_trains_once_for_every_task_with_a_head_each(model_dir, data, tmp_path):
    """share_adapter: the jobs' bundles hold one adapter (the same trained tensors), each its
    own head; the batch is split by task sampling; the group validates and keeps its best
    epoch together."""
    config = _yaml(
        tmp_path / "shared.yaml",
        f"epochs: 3\nbatch_size: 4\nmethod: lora\nshare_adapter: true\n"
        f"sampling_temperature: 2\njobs:\n"
        f"  - name: sentiment\n    train: {data['sentiment']}\n"
        f"  - name: ner\n    train: {data['ner']}\n    lr: 0.005\n",
    )
    out = tmp_path / "run"
    assert _train(model_dir, out, "--config", str(config)) in FINISHED
    bundles = {
        n: load_file(out / n / "adapter" / "adapterkit.safetensors") for n in ("sentiment", "ner")
    }
    adapter_keys = sorted(k for k in bundles["sentiment"] if k.startswith("adapter."))
    assert adapter_keys == sorted(k for k in bundles["ner"] if k.startswith("adapter."))
    for key in adapter_keys:
        assert torch.equal(bundles["sentiment"][key], bundles["ner"][key]), key
    assert any(bundles["ner"][k].abs().max() > 0 for k in adapter_keys if "lora_B" in k)  # trained
    heads = {n: sorted(k for k in b if k.startswith("head.")) for n, b in bundles.items()}
    assert heads["sentiment"] != heads["ner"]
    best = {n: json.loads((out / n / "metrics.json").read_text())["best_epoch"] for n in bundles}
    assert best["sentiment"] == best["ner"]


def test_a_shared_adapter_refuses_what_cannot_share(model_dir, data, tmp_path, capsys) -> None:
    lines = {
        "one job": f"share_adapter: true\ntrain: {data['sentiment']}\n",
        "two methods": f"share_adapter: true\njobs:\n  - train: {data['sentiment']}\n    name: a\n"
        f"    method: lora\n  - train: {data['ner']}\n    name: b\n    method: pfeiffer\n",
    }
    for case, text in lines.items():
        out = tmp_path / case.replace(" ", "-")
        assert _train(model_dir, out, "--config", str(_yaml(tmp_path / "c.yaml", text))) == 2, case
        err = capsys.readouterr().err.strip()
        assert "--share-adapter" in err and len(err.splitlines()) == 1, err
        assert not list(out.rglob("adapterkit.json"))
