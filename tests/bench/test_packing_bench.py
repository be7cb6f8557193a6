"""The packing benchmark's smoke run (real MiniLM, a tiny TREC slice) and its page."""

from __future__ import annotations

import pytest
from benchmarks import packing

pytestmark = pytest.mark.real


def test_quick_run_measures_both_modes_and_renders_a_page(capsys) -> None:
    assert packing.main(["--quick"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith('{"jobs"')]
    assert [line.split(",")[0] for line in rows] == ['{"jobs": 1', '{"jobs": 2']


def test_page_lists_each_n_with_its_speedup() -> None:
    result = {
        "machine": {"cpu": "X", "cores": 2, "torch": "2", "threads": 2, "python": "3.11"},
        "quiet": True,
        "settings": {
            "model": "minilm",
            "method": "pfeiffer",
            "data": "trec",
            "batch_size": 32,
            "epochs": 1,
            "repeats": 3,
            "tokens_per_job": 1000,
        },
        "command": "python -m benchmarks.packing",
        "rows": [
            {
                "jobs": 4,
                "sequential_s": 8.0,
                "packed_s": 4.0,
                "speedup": 2.0,
                "sequential_tokens_per_s": 500,
                "packed_tokens_per_s": 1000,
            }
        ],
    }
    page = packing.page(result)
    assert "| 4 | 8.0 | 4.0 | 2.0x | 500 | 1,000 |" in page and "Quiet" in page
