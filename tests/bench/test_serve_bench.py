"""The serving benchmark's report: a table per method, the head-only row, the goals."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import serve


def _row(adapters: int, rate: float) -> dict:
    return {
        "adapters": adapters,
        "requests_per_s": rate,
        "p50_ms": 10.0,
        "p95_ms": 20.0,
        "mean_batch_rows": 16.0,
        "requests_per_s_runs": [rate],
    }


def test_median_run_keeps_the_middle_rate_and_every_rate() -> None:
    runs = [_row(1, rate) for rate in (210.0, 190.0, 200.0)]
    chosen = serve.median_run(runs)
    assert chosen["requests_per_s"] == 200.0
    assert chosen["requests_per_s_runs"] == [210.0, 190.0, 200.0]


def test_goals_judge_sixteen_against_one_and_price_adapters_against_the_head_only_row() -> None:
    rows = {
        "batched": [_row(0, 250.0), _row(1, 200.0), _row(16, 170.0)],
        "naive": [_row(0, 70.0), _row(1, 60.0), _row(16, 50.0)],
    }
    lines = serve.goals(rows)
    assert "16 adapters, batched vs naive: 3.4x (goal >= 3x): met" in lines[0]
    assert "0.85x the request rate (goal >= 0.9x): NOT met" in lines[1]
    assert "1 adapter vs head only, batched: 0.80x" in lines[2]
    assert serve.table(rows)[2].startswith("| 0 (head only) | 250.0 |")


def test_section_has_one_table_per_method_and_keeps_the_rest(tmp_path: Path) -> None:
    served = [_row(1, 200.0) | {"precision": "bf16"}, _row(4, 190.0) | {"precision": "bf16"}]
    rows = {"batched": served, "naive": [_row(1, 60), _row(4, 60)]}
    results = {
        "precision": "auto",
        "model": "m",
        "requests": 8,
        "concurrency": 2,
        "repeats": 1,
        "server_flags": "--max-batch 32",
        "machine": {"cpu": "c", "cores": 2, "device": "cpu", "torch": "t", "python": "p"}
        | {"server_threads": 1},
        "methods": {"lora": rows, "pfeiffer": rows},
    }
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\nbefore\n\n{serve.START}\nold\n{serve.END}\nafter\n")
    serve.write_section(results, "python -m benchmarks.serve", docs)
    text = docs.read_text()
    assert "### lora" in text and "### pfeiffer" in text and "old" not in text
    # the naive rows carry no precision (a run from before the flag): they were fp32
    assert "Server precision: bf16, fp32 (`--precision auto`)" in text
    assert text.startswith("# Benchmarks\n\nbefore") and text.rstrip().endswith("after")


def test_inference_report_gives_ratios_to_the_base_and_mixed_to_one(
    tmp_path: Path, monkeypatch
) -> None:
    from benchmarks import inference_add

    monkeypatch.setattr(inference_add, "DOCS", tmp_path / "inference.md")
    owned = {("bf16", "lora", 16): {"base": 40.0, "in_place": 44.0, "out_of_place": 46.0}}
    mixed = {("bf16", "lora"): {"distinct": 10, "one": 44.0, "mixed": 55.0}}
    inference_add.write_report(owned, mixed, threads=2, steps=20)
    text = (tmp_path / "inference.md").read_text()
    assert "| bf16 | lora | 16 | 40.0 | 44.0 | 1.100 | 46.0 | 1.150 |" in text
    assert "| bf16 | lora | 44.0 | 55.0 (10) | 0.80 |" in text
    saved = json.loads((tmp_path / "inference.json").read_text())  # what --report-only reads
    assert saved["owned"] == [["bf16", "lora", 16, owned[("bf16", "lora", 16)]]]
