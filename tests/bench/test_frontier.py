"""The frontier page: each method's sizes from the sweep's records, medians over seeds."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.frontier import points, write

CPU = "x86_64, no GPU, 2 cores, torch 2.13.0+cpu"


def _record(candidate: str, method: str, seed: int, test: float, trainable: float) -> dict:
    return {
        "task": "trec",
        "candidate": candidate,
        "method": method,
        "seed": seed,
        "machine": CPU,
        "lr": 1e-3,
        "test": test,
        "validation": test,
        "trainable_percent": trainable,
        "bundle_bytes": 1,
        "train_seconds": 1.0,
        "best_epoch": 1,
    }


def test_points_are_each_methods_sizes_with_seed_medians(tmp_path: Path) -> None:
    runs = [_record("lora", "lora", s, score, 1.9) for s, score in enumerate((90.0, 94.0, 92.0))]
    runs += [_record("lora-r32", "lora", 0, 95.0, 7.0), _record("lora-r2", "lora", 0, 89.0, 0.5)]
    runs += [_record("head-bias", "head", 0, 95.6, 0.7), _record("full", "full", 0, 96.8, 100.0)]
    # A learning-rate candidate of the sweep is not a size: not on the frontier.
    runs.append(_record("lora-lr0.002", "lora", 0, 99.0, 1.9))
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"runs": runs}))

    found = points("trec", sweep)
    assert [p["row"] for p in found["lora"]] == ["lora-r2", "lora", "lora-r32"]  # by trainable %
    default = found["lora"][1]
    assert default["score"] == 92.0 and default["seeds"] == 3
    assert [p["row"] for p in found["head"]] == ["head-bias"]
    assert points("conll2003", sweep) == {}

    out = tmp_path / "docs" / "frontier.md"
    out.parent.mkdir()
    write(out, sweep)
    text = out.read_text()
    assert "| lora | lora | 1.900 | 92.0 | 3 | CPU (2 cores) |" in text
    assert "lr0.002" not in text and "## CoNLL" not in text
    assert (out.parent / "frontier_trec.png").stat().st_size > 1000
