"""One multi-task run on the real MiniLM: TREC-6 topics and movie sentiment in the same batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapterkit.cli import main

pytestmark = pytest.mark.real


def test_topic_and_sentiment_jobs_both_learn(tmp_path: Path) -> None:
    config = tmp_path / "multi.yaml"
    config.write_text(
        "model: minilm\nepochs: 2\nmax_train_samples: 320\nmax_eval_samples: 200\n"
        "max_length: 64\njobs:\n"
        "  - name: topic\n    data: trec\n    method: pfeiffer\n"
        "  - name: sentiment\n    data: movie-sentiment\n    method: lora\n"
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output", str(out)]) == 0
    topic = json.loads((out / "topic" / "metrics.json").read_text())
    sentiment = json.loads((out / "sentiment" / "metrics.json").read_text())
    assert topic["accuracy"] > 0.5  # chance ~0.28 (majority class of TREC-6's test set)
    assert sentiment["accuracy"] > 0.6  # two balanced classes
    assert sentiment["method"] == "lora" and topic["method"] == "pfeiffer"
    assert (out / "summary.md").read_text().count("| accuracy |") == 2


def test_one_shared_adapter_learns_both_tasks(tmp_path: Path) -> None:
    """share_adapter on the real MiniLM: one LoRA for topics and sentiment, a head each."""
    from safetensors.torch import load_file

    config = tmp_path / "shared.yaml"
    config.write_text(
        "model: minilm\nepochs: 2\nmax_train_samples: 320\nmax_eval_samples: 200\n"
        "max_length: 64\nmethod: lora\nshare_adapter: true\njobs:\n"
        "  - name: topic\n    data: trec\n"
        "  - name: sentiment\n    data: movie-sentiment\n"
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--output", str(out)]) == 0
    topic = json.loads((out / "topic" / "metrics.json").read_text())
    sentiment = json.loads((out / "sentiment" / "metrics.json").read_text())
    assert topic["accuracy"] > 0.5 and sentiment["accuracy"] > 0.6
    bundles = [
        load_file(out / n / "adapter" / "adapterkit.safetensors") for n in ("topic", "sentiment")
    ]
    shared = [k for k in bundles[0] if k.startswith("adapter.")]
    assert shared and all(bundles[0][k].equal(bundles[1][k]) for k in shared)


def test_a_multi_task_run_on_a_sharded_base(tmp_path: Path) -> None:
    """The same two tasks on two CPU processes, MiniLM sharded between them (torchrun)."""
    import os
    import subprocess
    import sys

    config = tmp_path / "multi.yaml"
    config.write_text(
        "model: minilm\nepochs: 2\nmax_train_samples: 320\nmax_eval_samples: 200\n"
        "max_length: 64\nshard_base: true\njobs:\n"
        "  - name: topic\n    data: trec\n    method: pfeiffer\n"
        "  - name: sentiment\n    data: movie-sentiment\n    method: lora\n"
    )
    out = tmp_path / "run"
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2"]
    done = subprocess.run(
        [*torchrun, "-m", "adapterkit", "train", "--config", str(config), "--output", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(t for t in done.stdout.splitlines() if t.startswith("base sharded"))
    kept, total = (float(w.replace(",", "")) for w in line.split() if w[0].isdigit() and "." in w)
    assert total > 80 and kept == pytest.approx(total / 2, rel=0.01)  # MiniLM: ~86 MiB
    topic = json.loads((out / "topic" / "metrics.json").read_text())
    sentiment = json.loads((out / "sentiment" / "metrics.json").read_text())
    assert topic["accuracy"] > 0.5 and sentiment["accuracy"] > 0.6
