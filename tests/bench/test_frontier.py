"""The frontier page: one point per finished row, medians over seeds, families as lines."""

from __future__ import annotations

from pathlib import Path

from benchmarks.frontier import family, points, write
from tests.bench.test_quality_report import _run


def test_points_group_rows_by_method_and_take_seed_medians(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, score in enumerate((90.0, 94.0, 92.0)):
        _run(runs, "trec", "bitfit", seed, score, trainable=0.7)
    _run(runs, "trec", "head", 0, 41.0, trainable=0.01)
    _run(runs, "trec", "full", 0, 96.8, trainable=100.0)
    found = points("trec", runs)
    assert family("bitfit") == "head"
    assert [p["row"] for p in found["head"]] == ["head", "bitfit"]  # by trainable %
    bitfit = found["head"][1]
    assert bitfit["score"] == 92.0 and bitfit["seeds"] == 3
    assert points("conll2003", runs) == {}

    out = tmp_path / "docs" / "frontier.md"
    out.parent.mkdir()
    write(out, runs)
    text = out.read_text()
    assert "| bitfit | head | 0.700 | 92.0 | 3 |" in text and "## CoNLL" not in text
    assert (out.parent / "frontier_trec.png").stat().st_size > 1000
