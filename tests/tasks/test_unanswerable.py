"""SQuAD 2.0 questions: the no-answer threshold (chosen on validation, kept in the bundle,
overridable at inference), the HasAns/NoAns breakdown, and the trivial floor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.tiny import FINISHED, save_tiny_bert

from adapterkit.bundle import check_record, read_bundle_config
from adapterkit.cli import main
from adapterkit.errors import BundleError
from adapterkit.tasks import make_task, task_from_info
from adapterkit.tasks.base import merge_windows
from adapterkit.tasks.question_answering import ScoredAnswer
from adapterkit.tasks.unanswerable import best_threshold, breakdown

ANSWERABLE = {
    "question": "who founded acme?",
    "context": "acme was founded by john smith in london.",
    "answers": {"text": ["john smith"], "answer_start": [20]},
}
UNANSWERABLE = {
    "question": "what do cats eat?",
    "context": "mary was born in paris.",
    "answers": {"text": [], "answer_start": []},
}


def test_the_threshold_sweep_keeps_the_best_f1_and_answers_most_on_ties() -> None:
    refs = [["a"], [""], [""], ["b"]]
    answers = ["a", "x", "y", "b"]
    # Emptying the 0.9 answer gains, the 0.7 one loses, the 0.6 one gains it back (a tie).
    assert best_threshold(refs, answers, [0.1, 0.9, 0.6, 0.7]) == pytest.approx(0.8)
    assert best_threshold([["a"]], ["a"], [0.4]) == 1.0  # nothing to gain: always answer
    assert best_threshold([[""]], ["x"], [0.4]) == pytest.approx(0.2)


def test_the_breakdown_reports_answerable_and_unanswerable_questions_apart() -> None:
    scores = breakdown([["red fox"], [""], [""]], ["red", "", "x"])
    assert scores["HasAns_total"] == 1 and scores["NoAns_total"] == 2
    assert scores["HasAns_exact"] == 0.0 and scores["HasAns_f1"] == pytest.approx(2 / 3)
    assert scores["NoAns_exact"] == 0.5 and scores["NoAns_f1"] == 0.5


def test_windows_merge_to_the_best_span_unless_every_window_says_none(tokenizer) -> None:
    task = make_task("question-answering", tokenizer, None, 64)
    holds = [ScoredAnswer("foo", 0.3, 0.9), ScoredAnswer("bar", 0.6, 0.1)]
    empty = [ScoredAnswer("foo", 0.05, 0.9), ScoredAnswer("bar", 0.1, 0.8)]
    assert task.merge_window_predictions(holds) == "bar"  # no threshold: always a span
    assert task.merge_window_predictions(empty) == "bar"
    task.apply_info({"no_answer_threshold": 0.5})
    assert task.merge_window_predictions(holds) == "bar"  # null 0.1 of 0.7: answer
    assert task.merge_window_predictions(empty) == ""  # null 0.8 of 0.9: none
    formatted = [{"answer": "bar", "start": 3, "end": 6, "score": 0.1, "no_answer_score": 0.8}]
    assert task.merge_window_predictions(formatted) == {
        "answer": "",
        "start": None,
        "end": None,
        "score": 0.8,
        "no_answer": True,
    }


def test_calibration_on_spiked_logits_finds_a_perfect_threshold(tokenizer) -> None:
    task = make_task("question-answering", tokenizer, None, 64)
    examples = [ANSWERABLE, UNANSWERABLE] * 3
    features = [task.encode(e) for e in examples]
    batch = task.collate(features)
    logits = torch.zeros(*batch["input_ids"].shape, 2)
    rows = torch.arange(len(logits))
    logits[rows, batch["start_positions"], 0] = 8.0  # gold start/end; CLS for "no answer"
    logits[rows, batch["end_positions"], 1] = 8.0
    references = task.references(examples)
    assert task.trivial_score(references) == 0.5  # answering nothing gets the half of NoAns

    def predict() -> list:
        return merge_windows(task, features, task.decode(logits, batch))

    chosen = task.calibrate(references, predict)
    assert 0 < chosen["no_answer_threshold"] < 1
    metrics = task.metrics(references, predict())
    assert metrics["f1"] == 1.0 and metrics["NoAns_f1"] == 1.0 and metrics["HasAns_total"] == 3
    assert task.task_info()["no_answer_threshold"] == chosen["no_answer_threshold"]
    # Rebuilt from a bundle's record, the task keeps it.
    rebuilt = task_from_info(task.task_info(), tokenizer)
    assert rebuilt.no_answer_threshold == chosen["no_answer_threshold"]


def test_calibration_leaves_data_without_unanswerable_questions_alone(tokenizer) -> None:
    task = make_task("question-answering", tokenizer, None, 64)
    assert task.calibrate([["john smith"]], lambda: pytest.fail("no pass needed")) == {}
    assert "no_answer_threshold" not in task.task_info()


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", True])
def test_a_bundle_threshold_out_of_range_is_refused(bad) -> None:
    record = {
        "format": "adapterkit-bundle",
        "format_version": 2,
        "method": "lora",
        "base_model": {"name_or_path": "x"},
        "task": {"type": "question-answering", "labels": [], "no_answer_threshold": bad},
    }
    with pytest.raises(BundleError, match="no_answer_threshold"):
        check_record(record, "b")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT trained on SQuAD 2.0-style data (half the questions unanswerable)."""
    root = tmp_path_factory.mktemp("squad2")
    words = "acme was founded by john smith in london who what do cats eat mary born paris"
    model = save_tiny_bert(root / "model", words.split())
    rows = [ANSWERABLE, UNANSWERABLE] * 12
    data = root / "squad2.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = ["train", "--model", str(model), "--train", str(data), "--validation", str(data)]
    code = main([*argv, "--output", str(root / "run"), "--epochs", "2", "--report-to", "none"])
    assert code in FINISHED
    return root


def test_a_run_on_unanswerable_data_stores_its_threshold_and_reports_the_breakdown(
    trained: Path,
) -> None:
    task = read_bundle_config(trained / "run" / "adapter")["task"]
    assert 0 <= task["no_answer_threshold"] <= 1
    metrics = json.loads((trained / "run" / "metrics.json").read_text())  # no test split
    assert metrics["HasAns_total"] == 12 and metrics["NoAns_total"] == 12


def test_predict_answers_nothing_or_always_as_the_threshold_says(trained: Path, capsys) -> None:
    bundle = str(trained / "run" / "adapter")
    inputs = trained / "inputs.jsonl"
    inputs.write_text(
        json.dumps({"question": "who founded acme?", "context": ANSWERABLE["context"]})
    )
    answers = {}
    for threshold in ("0", "1"):
        argv = ["predict", bundle, "--file", str(inputs), "--no-answer-threshold", threshold]
        assert main(argv) == 0
        answers[threshold] = json.loads(capsys.readouterr().out)
    assert answers["0"]["answer"] == "" and answers["0"]["no_answer"] is True
    assert answers["1"]["answer"] != "" and answers["1"]["start"] is not None


@pytest.mark.parametrize("value", ["-0.1", "2", "nan", "x"])
def test_a_bad_threshold_flag_is_one_line(trained: Path, value: str, capsys) -> None:
    bundle = str(trained / "run" / "adapter")
    with pytest.raises(SystemExit) as exit_code:  # refused by the parser, before any loading
        main(["predict", bundle, "x", "--no-answer-threshold", value])
    assert exit_code.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_threshold_flag_is_refused_for_other_tasks(tmp_path: Path, capsys) -> None:
    model = save_tiny_bert(tmp_path / "model", ["good", "bad"])
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "good,pos\nbad,neg\n" * 6)
    argv = ["train", "--model", str(model), "--train", str(data), "--epochs", "1"]
    assert main([*argv, "--output", str(tmp_path / "run"), "--report-to", "none"]) in FINISHED
    bundle = str(tmp_path / "run" / "adapter")
    assert main(["predict", bundle, "good", "--no-answer-threshold", "0.5"]) == 2
    assert "applies to question-answering bundles" in capsys.readouterr().err
