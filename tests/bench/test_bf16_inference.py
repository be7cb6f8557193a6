"""The bf16-inference benchmark's agreement counts and page, on made-up results."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bf16_inference import _agreement, write_page


def test_agreement_counts_examples_and_words() -> None:
    fp32 = [["O", "B-PER"], ["O"], ["B-LOC", "I-LOC"]]
    bf16 = [["O", "B-PER"], ["B-ORG"], ["B-LOC", "O"]]
    assert _agreement(fp32, bf16) == {"examples_same": 1 / 3, "units_same": 3 / 5, "units": 5}
    assert _agreement(["a", "b"], ["a", "c"])["units_same"] == 0.5


def test_page_gives_each_bundle_and_the_task_summary(tmp_path: Path) -> None:
    row = {
        "task": "trec",
        "metric": "accuracy",
        "examples": 500,
        "units": 500,
        "examples_same": 0.998,
        "units_same": 0.998,
        "fp32_seconds": 2.0,
        "bf16_seconds": 1.0,
        "stored_seconds": 0.8,
        "stored_predicts_as_autocast": True,
    }
    results = [
        row | {"seed": 0, "fp32": 96.4, "bf16": 96.2},
        row | {"seed": 1, "fp32": 95.8, "bf16": 96.0},
    ]
    page = tmp_path / "bf16.md"
    latency = [{"batch": 1, "tokens": 12, "fp32_ms": 10.0, "bf16_ms": 12.5, "stored_ms": 9.0}]
    write_page(results, {"cpu": "test"}, 3, latency, page)
    text = page.read_text()
    assert "| trec (accuracy) | 1 | 500 | 95.80 | 96.00 | 99.80 % |" in text
    assert "| yes | 2.00 | 1.00 | 0.80 | 2.50x |" in text
    assert "- trec: bf16 minus fp32 -0.20 to +0.20 points over 2 seeds" in text
    assert "2.00x faster than fp32 in bf16 autocast, 2.50x with the base stored" in text
    assert "| 1 | 12 | 10.0 | 12.5 | 9.0 | 0.80x | 1.11x |" in text
    assert json.loads(page.with_suffix(".json").read_text())["repeats"] == 3
