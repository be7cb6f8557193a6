"""Relation extraction through the command line on a tiny BERT: train → evaluate → predict,
and bad data refused in one line with exit 2, naming file and line, before a run starts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.tiny import FINISHED, save_tiny_bert

from adapterkit.cli import main

PEOPLE = ["john", "mary", "bob", "anna"]
PLACES = ["paris", "london", "berlin", "rome"]
COMPANIES = ["acme", "globex", "initech"]
WORDS = [*PEOPLE, *PLACES, *COMPANIES, "works", "at", "was", "born", "in", "met", "and", "<", ">"]
WORDS += ["/", "e1", "e2"]
TEMPLATES = [  # (sentence, head word, tail word, relation)
    ("{p} works at {c} .", "{p}", "{c}", "works_for"),
    ("{p} was born in {l} .", "{p}", "{l}", "born_in"),
    ("{p} met {q} in {l} .", "{p}", "{l}", "no_relation"),
    ("{p} met {q} at {c} .", "{q}", "{c}", "no_relation"),
]


def _records(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        sentence, head, tail, relation = TEMPLATES[i % len(TEMPLATES)]
        p, q = rng.sample(PEOPLE, 2)
        fill = {"p": p, "q": q, "c": rng.choice(COMPANIES), "l": rng.choice(PLACES)}
        text = sentence.format(**fill)
        head_word, tail_word = head.format(**fill), tail.format(**fill)
        h = text.index(head_word)
        t = text.index(tail_word, h + len(head_word) if head_word != tail_word else 0)
        rows.append(
            {
                "text": text,
                "head": [h, h + len(head_word)],
                "tail": [t, t + len(tail_word)],
                "relation": relation,
            }
        )
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("m") / "model", WORDS)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("re")
    _write(folder / "train.jsonl", _records(96, 0))
    _write(folder / "validation.jsonl", _records(24, 1))
    _write(folder / "test.jsonl", _records(24, 2))
    return folder


def _train(model_dir: Path, out: Path, *args: str) -> int:
    common = ["--batch-size", "8", "--report-to", "none", "--max-length", "32"]
    return main(["train", "--model", str(model_dir), "--output", str(out), *common, *args])


def test_train_evaluate_predict_round_trip(model_dir, data_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = _train(model_dir, out, "--data", str(data_dir), "--epochs", "6", "--lr", "5e-3")
    assert code in FINISHED
    printed = capsys.readouterr().out
    assert "task relation-extraction" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"f1", "precision", "recall", "accuracy", "per_class"} <= set(metrics)
    assert metrics["no_relation"] == "no_relation"
    assert set(metrics["per_class"]) == {"born_in", "no_relation", "works_for"}
    bundle = out / "adapter"
    record = json.loads((bundle / "adapterkit.json").read_text())
    assert record["head"]["type"] == "entity-pair"
    assert record["task"]["type"] == "relation-extraction"

    report = tmp_path / "eval"
    args = ["evaluate", str(bundle), "--data", str(data_dir), "--split", "test"]
    assert main([*args, "--output", str(report)]) == 0
    evaluated = json.loads((report / "metrics.json").read_text())
    assert evaluated["f1"] == pytest.approx(metrics["f1"])  # the same test split, same bundle
    assert "born_in" in (report / "report.md").read_text()

    inputs = tmp_path / "inputs.jsonl"
    asks = [
        {"text": "anna was born in rome .", "head": [0, 4], "tail": [17, 21]},
        {"text": "bob works at acme .", "head": {"start": 0, "end": 3}, "tail": [13, 17]},
    ]
    inputs.write_text("".join(json.dumps(a) + "\n" for a in asks), encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", str(bundle), "--file", str(inputs)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    for line, ask in zip(lines, asks, strict=True):
        assert line["input"] == ask
        assert line["relation"] in {"born_in", "no_relation", "works_for"}
        assert line["score"] == pytest.approx(max(line["scores"].values()))
    if metrics["f1"] == 1.0:  # a run that learned the templates answers them
        assert [line["relation"] for line in lines] == ["born_in", "works_for"]

    inputs.write_text(json.dumps({"text": "bob met anna", "head": [0, 3], "tail": [2, 6]}) + "\n")
    assert main(["predict", str(bundle), "--file", str(inputs)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "overlap" in err


GOOD = {"text": "john works at acme .", "head": [0, 4], "tail": [14, 18], "relation": "works_for"}
BAD_LINES = [
    ({**GOOD, "tail": [14, 99]}, "tail span [14, 99] is not a non-empty range"),
    ({**GOOD, "head": [4, 4]}, "head span [4, 4] is not a non-empty range"),
    ({**GOOD, "tail": [2, 8]}, "overlap"),
    ({k: v for k, v in GOOD.items() if k != "tail"}, "no field 'tail'"),
]


@pytest.mark.parametrize(("record", "message"), BAD_LINES)
def test_bad_training_lines_exit_2_naming_file_and_line(
    model_dir, tmp_path, capsys, record: dict, message: str
) -> None:
    train = _write(tmp_path / "train.jsonl", [GOOD, {**GOOD, "relation": "no_relation"}, record])
    assert _train(model_dir, tmp_path / "run", "--train", str(train)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert f"{train}:3: " in err and message in err
    assert not (tmp_path / "run").exists()


def test_a_relation_only_in_test_exits_2_naming_its_line(model_dir, tmp_path, capsys) -> None:
    rows = [GOOD, {**GOOD, "relation": "no_relation"}] * 4
    folder = tmp_path / "d"
    _write(folder / "train.jsonl", rows)
    _write(folder / "validation.jsonl", rows)
    _write(folder / "test.jsonl", [GOOD, {**GOOD, "relation": "founded"}])
    assert _train(model_dir, tmp_path / "run", "--data", str(folder)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "'founded'" in err and f"{folder / 'test.jsonl'}:2" in err


def test_init_from_widens_both_halves_of_the_head(model_dir, tmp_path) -> None:
    old = [r for r in _records(48, 0) if r["relation"] != "born_in"]
    first = tmp_path / "v1"
    old_file = _write(tmp_path / "old.jsonl", old)
    assert _train(model_dir, first, "--train", str(old_file), "--epochs", "1") in FINISHED
    new = _write(tmp_path / "new.jsonl", _records(48, 1))
    args = ["--train", str(new), "--epochs", "1", "--lr", "1e-12", "--weight-decay", "0"]
    assert _train(model_dir, tmp_path / "v2", "--init-from", str(first / "adapter"), *args) in (
        FINISHED
    )
    before = load_file(str(first / "adapter" / "adapterkit.safetensors"))
    after = load_file(str(tmp_path / "v2" / "adapter" / "adapterkit.safetensors"))
    record = json.loads((tmp_path / "v2" / "adapter" / "adapterkit.json").read_text())
    assert record["task"]["labels"] == ["no_relation", "works_for", "born_in"]
    for key in ("head.head_out.weight", "head.tail_out.weight"):
        assert after[key].shape[0] == 3  # one row per relation in each half
        torch.testing.assert_close(after[key][:2], before[key], atol=1e-6, rtol=0)
