"""metrics.json / report.md writing and the terminal summary."""

import json
import math

import numpy as np
import pytest

from adapterkit.metrics import (
    classification_metrics,
    format_summary,
    ner_metrics,
    write_metrics,
)

EXTRA = {"method": "lora", "trainable_percent": 0.52, "bundle_bytes": 123456}


@pytest.fixture
def cls_metrics():
    return classification_metrics(["a", "a", "a", "b", "b", "c"], list("aabbcc"), ["a", "b", "c"])


def test_metrics_json_has_top_level_keys(tmp_path, cls_metrics):
    json_path, md_path = write_metrics(
        tmp_path / "run", cls_metrics, split="test", title="TREC", extra=EXTRA
    )
    assert (json_path.name, md_path.name) == ("metrics.json", "report.md")
    data = json.loads(json_path.read_text())
    for key in ("accuracy", "precision", "recall", "f1", "macro_f1", "per_class", "split"):
        assert key in data
    assert data["split"] == "test"
    assert data["method"] == "lora"
    assert data["bundle_bytes"] == 123456
    assert data["f1"] == pytest.approx(0.655556, abs=1e-6)
    assert data["confusion_matrix"]["matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["metrics.json", "report.md"]


def test_report_md_contains_numbers_tables_and_matrix(tmp_path, cls_metrics):
    _, md_path = write_metrics(tmp_path, cls_metrics, split="test", title="TREC", extra=EXTRA)
    md = md_path.read_text()
    assert md.startswith("# TREC")
    assert "| accuracy | 0.6667 |" in md
    assert "| f1 | 0.6556 |" in md
    assert "| a | 1.0000 | 0.6667 | 0.8000 | 3 |" in md  # per-class row
    assert "| b | 0 | 1 | 1 |" in md  # confusion-matrix row
    assert "| method | lora |" in md
    # Run details are not mixed into the metric table.
    assert "| trainable_percent | 0.5200 |" in md.split("## Run")[1]


def test_confusion_matrix_omitted_above_20_classes(tmp_path):
    labels = [f"c{i}" for i in range(25)]
    m = classification_metrics(labels, labels, labels)
    _, md_path = write_metrics(tmp_path, m, split="test", title="many")
    md = md_path.read_text()
    assert "25 classes" in md
    assert "true \\ predicted" not in md


def test_stem_lets_several_splits_share_a_run_dir(tmp_path, cls_metrics):
    write_metrics(tmp_path, cls_metrics, split="test", title="t")
    j, m = write_metrics(tmp_path, cls_metrics, split="validation", title="v", stem="validation")
    assert (j.name, m.name) == ("validation_metrics.json", "validation_report.md")
    assert json.loads((tmp_path / "metrics.json").read_text())["split"] == "test"
    assert json.loads(j.read_text())["split"] == "validation"


def test_samples_table_escapes_markdown(tmp_path):
    metrics = {
        "rouge1": 0.5,
        "samples": [{"input": "a | b\nc", "prediction": "<b>x</b>", "reference": "y"}],
    }
    _, md_path = write_metrics(tmp_path, metrics, split="test", title="gen")
    md = md_path.read_text()
    assert "## Sample generations" in md
    assert "| 1 | a \\| b<br>c | &lt;b&gt;x&lt;/b&gt; | y |" in md


def test_json_is_strict_with_numpy_and_infinity(tmp_path):
    metrics = {"perplexity": math.inf, "loss": np.float32(0.25), "n": np.int64(3)}
    json_path, md_path = write_metrics(tmp_path, metrics, split="test", title="lm")
    # parse_constant rejects NaN/Infinity, which are not JSON.
    data = json.loads(json_path.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data == {"perplexity": None, "loss": 0.25, "n": 3, "split": "test"}
    assert "| perplexity | inf |" in md_path.read_text()


def test_extra_may_not_overwrite_a_metric(tmp_path, cls_metrics):
    with pytest.raises(ValueError, match="accuracy"):
        write_metrics(tmp_path, cls_metrics, split="test", title="t", extra={"accuracy": 1.0})


def test_format_summary(cls_metrics):
    text = format_summary({**cls_metrics, "split": "test"})
    lines = text.splitlines()
    assert lines[0] == "split: test"
    assert lines[1].split() == ["accuracy", "0.6667"]
    assert [line.split()[0] for line in lines[1:5]] == ["accuracy", "f1", "precision", "recall"]
    assert "macro_f1" not in text  # the macro/micro families stay in metrics.json
    assert lines[-1] == "lowest f1: b (0.5000)"
    assert len(lines) == 6


def test_format_summary_ner_and_unknown_keys():
    ner = format_summary(ner_metrics([["B-PER", "O"]], [["B-PER", "O"]])).splitlines()
    assert ner == [
        "accuracy   1.0000",
        "f1         1.0000",
        "precision  1.0000",
        "recall     1.0000",
    ]
    assert format_summary({"eval_bleurt": 0.5}) == "eval_bleurt  0.5000"
