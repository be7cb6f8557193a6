"""benchmarks.peft_methods: peft's version of a method trained through Trainer on a tiny
model, scored, kept in the JSON; a run peft cannot train recorded with its one line; the
page puts ours beside theirs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from benchmarks import peft_methods
from benchmarks.quality_sweep_report import this_machine
from tests.tiny import SENTIMENT_WORDS, save_tiny_bert, save_tiny_sentiment


@pytest.fixture
def tiny_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    model = save_tiny_bert(tmp_path / "model", SENTIMENT_WORDS)
    data = save_tiny_sentiment(tmp_path / "data", train=4)
    task = {"data": str(data), "metric": "accuracy", "batch_size": 8, "max_length": 16}
    monkeypatch.setattr(peft_methods, "TASKS", {"trec": task | {"epochs": 2}})
    monkeypatch.setattr(peft_methods, "MODEL", str(model))
    monkeypatch.setattr(peft_methods, "SEEDS", (0,))
    monkeypatch.setattr(peft_methods, "SHARED_RUNS", {})
    versions = peft_methods.PEFT_VERSIONS | {"bogus": (1e-3, "a method peft does not have")}
    monkeypatch.setattr(peft_methods, "PEFT_VERSIONS", versions)
    return tmp_path


def test_runs_are_scored_kept_and_set_beside_ours(tiny_task: Path) -> None:
    sweep = tiny_task / "sweep.json"
    ours = {"task": "trec", "candidate": "ia3", "method": "ia3", "lr": 0.03}
    ours |= {"validation": 92.0, "trainable_percent": 0.7, "bundle_bytes": 1}
    ours |= {"train_seconds": 1.0, "best_epoch": 1, "machine": this_machine()}
    runs = [ours | {"seed": s, "test": 90.0 + s} for s in range(3)]
    sweep.write_text(json.dumps({"runs": runs}))
    out = {"json": tiny_task / "peft.json", "page": tiny_task / "peft.md"}
    argv = ["--tasks", "trec", "--methods", "ia3", "bogus", "--python", sys.executable]
    argv += ["--runs", str(tiny_task / "runs"), "--sweep", str(sweep)]
    argv += ["--json", str(out["json"]), "--page", str(out["page"])]
    peft_methods.main(argv)

    records = {r["method"]: r for r in json.loads(out["json"].read_text())}
    assert set(records) == {"ia3", "bogus"}
    assert 0 <= records["ia3"]["validation"] <= 100 and records["ia3"]["version"].startswith("peft")
    assert records["bogus"]["error"] == "trainer_runner: unknown contender peft-bogus"
    page = out["page"].read_text()
    ia3 = next(line for line in page.splitlines() if line.startswith("| ia3 |"))
    assert ia3.startswith("| ia3 | 92.0 (n=3) | 91.0 (90.0–92.0, n=3) | 0.70 |")
    assert "fails (1 of 1 seeds): `trainer_runner: unknown contender peft-bogus`" in page
    cpu = f"CPU ({os.cpu_count()} cores)"
    assert ia3.endswith(f"| {cpu} / {cpu} |")  # where ours ran / where peft's ran

    # A second call trains nothing again: the failure and the finished run are kept.
    trained = (tiny_task / "runs" / "trec" / "peft-ia3-seed0.json").stat().st_mtime_ns
    peft_methods.main(argv)
    assert (tiny_task / "runs" / "trec" / "peft-ia3-seed0.json").stat().st_mtime_ns == trained
    assert len(json.loads(out["json"].read_text())) == 2


def test_a_bad_shard_is_refused_in_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        peft_methods.main(["--shard", "2/2", "--report-only"])
    assert stop.value.code == 2
    assert "--shard: expected I/N" in capsys.readouterr().err


def test_a_killed_run_is_not_recorded_as_peft_failing(
    tiny_task: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed by a signal (a deadline, Ctrl-C) is left to run again, not marked failed."""
    import subprocess

    def killed(*args, **kwargs):
        raise subprocess.CalledProcessError(-9, ["trainer_runner"])

    monkeypatch.setattr(peft_methods, "run_peer", killed)
    runs = tiny_task / "runs"
    with pytest.raises(subprocess.CalledProcessError):
        peft_methods.run_one("trec", "ia3", 0, runs, sys.executable)
    assert not list(runs.rglob("*.failed.json"))
