"""The per-method speed table: ratios to full and to the floor, and failures shown as such."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks import method_speed
from benchmarks.speed.ours import adapter_config
from benchmarks.speed.workload import Spec


def _row(speed: float, flops: float = 40e6) -> dict:
    return {
        "tokens_per_s": speed,
        "step_ms": 100.0,
        "peak_mb": 500.0,
        "trainable_params": 1234,
        "flops_per_padded_token": flops,
    }


def test_report_gives_each_method_against_full_and_floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(method_speed, "DOCS", tmp_path / "speed.md")
    rows = {
        "full": _row(1000.0),
        "floor": _row(2000.0),
        "ia3": _row(1800.0, flops=50e6),
        "prompt": {"error": "runner exited 1"},
    }
    method_speed.write_report(rows, steps=10, threads=2)
    text = (tmp_path / "speed.md").read_text()
    # FLOP bound 40/50 = 0.8 on × floor; 0.90 reached is 1.125 of it
    assert "| ia3 | 1,800 | 1.80 | 0.90 | 0.800 | 1.125 | 50.0 | 100 | 500 | 1,234 |" in text
    assert "| prompt | failed: runner exited 1 |" in text
    assert (tmp_path / "speed.json").exists()


@pytest.mark.parametrize("method", ["ia3", "dora", "prompt", "mam"])
def test_the_harness_builds_the_other_families_at_their_defaults(method: str) -> None:
    assert adapter_config(Spec(method=method), method).method == method
