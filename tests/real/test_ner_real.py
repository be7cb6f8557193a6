"""NER on the real MiniLM and a real CoNLL-2003 slice, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapterkit.cli import main

pytestmark = pytest.mark.real


def test_houlsby_on_conll_slice_finds_entities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ner"
    code = main(
        [
            "train",
            "--model",
            "minilm",
            "--data",
            "conll2003",
            "--method",
            "houlsby",
            "--epochs",
            "3",
            "--max-train-samples",
            "800",
            "--max-eval-samples",
            "300",
            "--batch-size",
            "16",
            "--max-length",
            "64",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test"
    assert metrics["f1"] > 0.2  # entity-level; a model predicting only O scores 0
    capsys.readouterr()
    assert main(["predict", str(out / "adapter"), "John Smith flew from London to Paris ."]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["tags"]) == 8
    for entity in answer["entities"]:
        assert answer["input"][entity["start"] : entity["end"]] == entity["text"]


def test_no_method_on_conll_trains_the_token_classification_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from adapterkit.train.default_method import default_method

    out = tmp_path / "default"
    argv = ["train", "--model", "minilm", "--data", "conll2003", "--epochs", "1"]
    argv += ["--max-train-samples", "160", "--max-eval-samples", "100", "--min-steps", "20"]
    argv += ["--max-length", "48", "--output", str(out)]
    assert main(argv) in (0, 3)  # 3: learned nothing yet on this budget, said loudly
    method = default_method("token-classification")
    assert f"method: {method}, the default for token-classification" in capsys.readouterr().out
    bundle = json.loads((out / "adapter" / "adapterkit.json").read_text())
    assert bundle["method"] == method
