"""benchmarks.fast_dropout: both arms measured on the real MiniLM, and the page from them."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from benchmarks import fast_dropout


def test_both_arms_run_on_the_real_model_and_the_page_gives_their_ratio(tmp_path: Path) -> None:
    op = fast_dropout.one_dropout(16, torch.bfloat16, repeats=2)
    step = fast_dropout.training_step(16, "bf16", repeats=1)
    assert op["native_us"] > 0 and op["fast_us"] > 0
    assert step["native_ms"] > 0 and step["fast_ms"] > 0
    data = {"machine": "m", "threads": 1, "ops": [{"tokens": 16, "dtype": "bfloat16", **op}]}
    data["steps"] = [{"tokens": 16, "precision": "bf16", "native_ms": 110.0, "fast_ms": 100.0}]
    (tmp_path / "d.json").write_text(json.dumps(data))
    fast_dropout.write_page(data, tmp_path / "d.md")
    assert "| 16 | bf16 | 110.0 | 100.0 | 1.10x |" in (tmp_path / "d.md").read_text()
