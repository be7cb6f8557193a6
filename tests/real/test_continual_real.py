"""Continual learning on the real MiniLM: TREC-6 in two label phases, with and without replay."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from adapterkit.cli import main
from adapterkit.data import load_data

pytestmark = pytest.mark.real

PHASES = {"phase1": ("DESC", "ENTY", "ABBR"), "phase2": ("HUM", "LOC", "NUM")}
PER_SPLIT = {"train": 300, "validation": 90, "test": 150}


@pytest.fixture(scope="module")
def phases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two CSV folders of TREC-6 questions, one per label phase (the first examples of each)."""
    root = tmp_path_factory.mktemp("trec-phases")
    splits = load_data("trec", seed=0)
    folders = {}
    for phase, labels in PHASES.items():
        folders[phase] = root / phase
        folders[phase].mkdir()
        for split, cap in PER_SPLIT.items():
            rows = [e for e in getattr(splits, split) or [] if e["label"] in labels][:cap]
            with (folders[phase] / f"{split}.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["text", "label"])
                writer.writerows([e["text"], e["label"]] for e in rows)
    return folders


def _train(out: Path, data: Path, *args: str) -> dict:
    common = ["--model", "minilm", "--max-length", "32", "--epochs", "3", "--batch-size", "16"]
    argv = ["train", "--data", str(data), "--output", str(out), "--report-to", "none"]
    assert main([*argv, *common, *args]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_replay_keeps_the_old_labels_that_plain_continuation_forgets(phases, tmp_path) -> None:
    parent = _train(tmp_path / "v1", phases["phase1"])
    assert parent["accuracy"] > 0.6  # three phase-1 labels: chance is about 0.33
    bundle = str(tmp_path / "v1" / "adapter")
    old = ["--init-from", bundle, "--old-data", str(phases["phase1"])]
    plain = _train(tmp_path / "plain", phases["phase2"], *old)
    replay = _train(tmp_path / "replay", phases["phase2"], *old, "--replay", str(phases["phase1"]))
    for run in (plain, replay):
        assert run["accuracy"] > 0.6  # the new labels are learned either way
        assert run["forgetting"]["test"]["before"] == pytest.approx(parent["accuracy"])
    # Trained only on new labels, the head stops predicting the old ones; a fifth of old
    # rows in each epoch keeps them.
    lost_plain = plain["forgetting"]["test"]["forgetting"]
    lost_replay = replay["forgetting"]["test"]["forgetting"]
    assert lost_plain > 0.3
    assert lost_replay < lost_plain - 0.2
