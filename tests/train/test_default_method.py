"""With no --method, the task type picks the method (docs/default_method.md): said in the
log, recorded in the bundle; options of one method without --method keep the fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.tiny import FINISHED

from adapterkit.cli import main
from adapterkit.train.default_method import DEFAULT_METHODS, FALLBACK_METHOD, default_method


def _train(model_dir: Path, out: Path, *args: str) -> int:
    base = ["train", "--model", str(model_dir), "--output", str(out), "--epochs", "1"]
    return main([*base, "--batch-size", "4", "--min-steps", "1", *args])


def _bundle_method(out: Path) -> str:
    return json.loads((out / "adapter" / "adapterkit.json").read_text())["method"]


@pytest.mark.parametrize("kind", ["sentiment", "ner"])
def test_no_method_trains_the_task_types_default(model_dir, data, tmp_path, capsys, kind) -> None:
    out = tmp_path / kind
    assert _train(model_dir, out, "--train", str(data[kind])) in FINISHED
    task_type = "sequence-classification" if kind == "sentiment" else "token-classification"
    method = default_method(task_type)
    assert f"method: {method}, the default for {task_type}" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["method"] == method
    assert _bundle_method(out).startswith(method[:4])  # lora, or bottleneck for pfeiffer


def test_options_of_one_method_without_method_keep_the_fallback(model_dir, data, tmp_path) -> None:
    out = tmp_path / "rf"
    args = ["--train", str(data["ner"]), "--reduction-factor", "8"]
    assert _train(model_dir, out, *args) in FINISHED
    assert json.loads((out / "metrics.json").read_text())["method"] == FALLBACK_METHOD


def test_options_every_method_has_leave_the_choice_to_the_task(model_dir, data, tmp_path) -> None:
    out = tmp_path / "bias"
    assert _train(model_dir, out, "--train", str(data["ner"]), "--train-bias") in FINISHED
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == default_method("token-classification")


def test_types_no_study_covers_keep_the_fallback() -> None:
    assert default_method("question-answering") == FALLBACK_METHOD
    assert default_method("causal-lm") == FALLBACK_METHOD
    assert set(DEFAULT_METHODS) <= {"sequence-classification", "token-classification"}


def test_resuming_a_run_of_another_method_is_refused_in_one_line(
    model_dir, data, tmp_path, capsys
) -> None:
    """A run started as Pfeiffer (the old default) and resumed without --method, which now
    resolves another method, is refused naming both; with the method it resumes."""
    out = tmp_path / "resumed"
    args = ["--train", str(data["sentiment"])]
    assert _train(model_dir, out, *args, "--method", "pfeiffer") in FINISHED
    capsys.readouterr()
    assert _train(model_dir, out, *args, "--resume") == 2
    err = capsys.readouterr().err.strip()
    method = default_method("sequence-classification")
    assert f"was started with --method pfeiffer, not {method}" in err and len(err.splitlines()) == 1
    assert _train(model_dir, out, *args, "--method", "pfeiffer", "--resume") in FINISHED
