"""`adapterkit train --method prefix` end to end on a tiny random BERT, and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.tiny import FINISHED, save_tiny_bert

from adapterkit import bundle
from adapterkit.cli import main

ROWS = [("goal team ball", "sport"), ("bread soup cheese", "food")] * 12
WORDS = sorted({w for text, _ in ROWS for w in text.split()})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prefix")
    save_tiny_bert(root / "model", WORDS)
    for split in ("train", "validation", "test"):
        (root / f"{split}.csv").write_text(
            "text,label\n" + "".join(f"{t},{label}\n" for t, label in ROWS)
        )
    return root


def _train(ws: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "train",
            "--model",
            str(ws / "model"),
            "--data",
            str(ws),
            "--output",
            str(out),
            "--batch-size",
            "8",
            "--max-length",
            "16",
            *extra,
        ]
    )


def test_train_prefix_then_evaluate_predict_resume(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ("--method", "prefix", "--prefix-length", "4", "--epochs", "2", "--lr", "1e-2")
    assert _train(workspace, out, *argv) in FINISHED
    assert "prefix_length: 4" in (out / "config.yaml").read_text()
    record, tensors = bundle.read_bundle(out / "adapter")
    # The bundle holds the folded keys and values, not the reparameterisation MLP ...
    assert record["method"] == "prefix" and record["config"]["prefix_projection"] == 0
    assert tensors and not any(".mlp." in key for key in tensors)
    assert any(key.endswith("parts.key.weight") for key in tensors)
    # ... while the checkpoint that --resume reads keeps it.
    _, checkpoint = bundle.read_bundle(out / "checkpoints" / "last")
    assert any(".mlp." in key for key in checkpoint)
    capsys.readouterr()

    assert main(["evaluate", str(out / "adapter"), "--data", str(workspace / "test.csv")]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["predict", str(out / "adapter"), "goal team", "soup bread"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all(set(line["scores"]) == {"sport", "food"} for line in lines)

    assert _train(workspace, out, *argv, "--resume") in FINISHED  # from the MLP checkpoint
    capsys.readouterr()
    parts = [str(out / "adapter")] * 2
    code = main(["compose", *parts, "--mode", "average", "--out", str(tmp_path / "c")])
    _fails_with(capsys, code, "is of method 'prefix'; compositions take")
    # A folded bundle trains on (without the MLP) as the start of a new run.
    again = tmp_path / "again"
    assert (
        _train(workspace, again, "--init-from", str(out / "adapter"), "--epochs", "1") in FINISHED
    )
    assert bundle.read_bundle(again / "adapter")[0]["config"]["prefix_length"] == 4


def _fails_with(capsys: pytest.CaptureFixture[str], code: int, *fragments: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("adapterkit: error:") and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_prefix_options_on_another_method_and_bad_targets(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = _train(workspace, out, "--method", "lora", "--prefix-length", "4")
    _fails_with(capsys, code, "--prefix-length", "method 'lora'")
    code = _train(workspace, out, "--method", "prefix", "--rank", "4")
    _fails_with(capsys, code, "--rank", "method 'prefix'")
    code = _train(workspace, out, "--method", "prefix", "--prefix-length", "0")
    _fails_with(capsys, code, "prefix", "prefix_length")
    code = _train(workspace, out, "--method", "prefix", "--target-modules", "query", "key")
    _fails_with(capsys, code, "prefix: --target-modules", "query")
    assert not out.exists()


def test_train_mam_and_its_bad_options(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mam"
    argv = ("--method", "mam", "--prefix-length", "4", "--reduction-factor", "4", "--epochs", "1")
    assert _train(workspace, out, *argv) in FINISHED
    record, tensors = bundle.read_bundle(out / "adapter")
    assert record["method"] == "mam" and record["config"]["scaling"] == 4.0
    assert any(".up.weight" in k for k in tensors) and not any(".mlp." in k for k in tensors)
    capsys.readouterr()
    assert main(["predict", str(out / "adapter"), "goal team"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in {"sport", "food"}
    code = _train(workspace, tmp_path / "bad", "--method", "mam", "--rank", "4")
    _fails_with(capsys, code, "--rank", "method 'mam'")
