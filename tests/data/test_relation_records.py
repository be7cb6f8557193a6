"""Relation-extraction readers: JSON lines and the TACRED layout, detection, and errors that
name ``file:line``."""

from __future__ import annotations

import json
import re

import pytest

from adapterkit.data import load_data
from adapterkit.data.readers import read_file
from adapterkit.errors import DataError

TEXT = "John Smith works at Acme in London."


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_jsonl_with_spans_is_detected_as_relation_extraction(write) -> None:
    path = write(
        "rel.jsonl",
        _jsonl(
            [
                {"text": TEXT, "head": [0, 10], "tail": [20, 24], "relation": "works_for"},
                {
                    "text": TEXT,
                    "head": {"start": 20, "end": 24, "text": "Acme"},
                    "tail": {"start": 28, "end": 34},
                    "relation": "located_in",
                },
            ]
        ),
    )
    data = read_file(path)
    assert data.task == "relation-extraction"
    assert data.examples == [
        {"text": TEXT, "head": [0, 10], "tail": [20, 24], "relation": "works_for"},
        {"text": TEXT, "head": [20, 24], "tail": [28, 34], "relation": "located_in"},
    ]
    assert data.lines == [1, 2]


def test_tacred_token_layout_becomes_character_spans(write) -> None:
    record = {
        "id": "x1",
        "token": ["John", "Smith", "works", "at", "Acme", "."],
        "subj_start": 0,
        "subj_end": 1,  # inclusive: "John Smith"
        "obj_start": 4,
        "obj_end": 4,
        "subj_type": "PERSON",
        "obj_type": "ORGANIZATION",
        "relation": "per:employee_of",
    }
    data = read_file(
        write("train.json", json.dumps([record, {**record, "relation": "no_relation"}]))
    )
    assert data.task == "relation-extraction"
    example = data.examples[0]
    assert example["text"] == "John Smith works at Acme ."
    assert example["text"][slice(*example["head"])] == "John Smith"
    assert example["text"][slice(*example["tail"])] == "Acme"
    assert example["relation"] == "per:employee_of"


def test_csv_cells_may_hold_the_spans(write) -> None:
    path = write(
        "rel.csv", 'text,head,tail,label\n"Mary was born in Paris.","[0, 4]","[17, 22]",born_in\n'
    )
    (example,) = read_file(path, task="relation-extraction").examples
    assert example == {
        "text": "Mary was born in Paris.",
        "head": [0, 4],
        "tail": [17, 22],
        "relation": "born_in",
    }


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"head": [0, 10], "tail": [30, 99]}, "tail span [30, 99] is not a non-empty range"),
        ({"head": [4, 4], "tail": [20, 24]}, "head span [4, 4] is not a non-empty range"),
        ({"head": [4, 5], "tail": [20, 24]}, "head span [4, 5] holds only whitespace"),
        (
            {"head": [0, 10], "tail": [5, 15]},
            "head span [0, 10] and tail span [5, 15] overlap",
        ),
        ({"head": [0, 10]}, "no field 'tail'"),
        ({"head": [0, 10], "tail": "20-24"}, "tail span '20-24' is not [start, end]"),
        ({"head": [0, 10], "tail": [20.0, 24]}, "tail span offsets must be integers"),
        ({"head": {"start": 0, "end": 4, "text": "Jim"}, "tail": [20, 24]}, "head text 'Jim'"),
        ({"head": [0, 10], "tail": [20, 24], "relation": None}, "'relation' must be a non-empty"),
    ],
)
def test_bad_records_name_file_and_line(write, record: dict, message: str) -> None:
    good = {"text": TEXT, "head": [0, 10], "tail": [20, 24], "relation": "works_for"}
    path = write("rel.jsonl", _jsonl([good, {"text": TEXT, "relation": "r", **record}]))
    with pytest.raises(DataError, match=r"rel\.jsonl:2: " + re.escape(message)):
        read_file(path)


def test_bad_tacred_indices_name_the_item(write) -> None:
    record = {"token": ["a", "b"], "subj_start": 0, "subj_end": 0, "obj_start": 1, "obj_end": 2}
    with pytest.raises(DataError, match=r"t\.json: item 0: object tokens 1\.\.2 are not a range"):
        read_file(write("t.json", json.dumps([{**record, "relation": "r"}])))


def test_a_relation_only_in_test_is_refused_with_its_line(write, tmp_path) -> None:
    rows = [
        {"text": TEXT, "head": [0, 10], "tail": [20, 24], "relation": "works_for"},
        {"text": TEXT, "head": [20, 24], "tail": [28, 34], "relation": "no_relation"},
    ]
    write("d/train.jsonl", _jsonl(rows * 3))
    write("d/validation.jsonl", _jsonl(rows))
    write("d/test.jsonl", _jsonl([rows[0], {**rows[1], "relation": "located_in"}]))
    with pytest.raises(DataError, match=r"test label 'located_in' \(.*test\.jsonl:2\) never"):
        load_data(str(tmp_path / "d"))
