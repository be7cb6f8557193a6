"""The multi-task benchmark's page: one row per setup, medians over seeds."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.multi_task import specs, write_report


def test_setups_and_page(tmp_path: Path) -> None:
    assert [len(group) for group in specs("separate", 0, 100, 1)] == [1, 1]
    (shared,) = specs("shared", 0, 100, 1)
    assert [s.options.share_adapter for s in shared] == [True, True]
    runs = tmp_path / "runs"
    for setup, seed, topic in (("packed", 0, 0.9), ("packed", 1, 0.8), ("shared", 0, 0.85)):
        folder = runs / f"{setup}-seed{seed}"
        folder.mkdir(parents=True)
        result = {"setup": setup, "seed": seed, "seconds": 60.0, "topic": topic, "sentiment": 0.7}
        (folder / "result.json").write_text(json.dumps(result))
    page = tmp_path / "multi_task.md"
    write_report(page, 100, 1, runs)
    text = page.read_text()
    assert "| packed | 85.0 (80.0–90.0, n=2) | 70.0 (70.0–70.0, n=2) |" in text
    assert "| shared | 85.0 (n=1) |" in text and "| separate |" not in text
