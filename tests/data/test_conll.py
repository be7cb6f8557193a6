"""CoNLL token files and IOB handling."""

from __future__ import annotations

import pytest

from adapterkit.data.conll import parse_conll, to_iob2
from adapterkit.data.readers import read_file
from adapterkit.errors import DataError

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def test_conll_file_sentences_and_docstart(write) -> None:
    data = read_file(write("train.conll", CONLL))
    assert data.task == "token-classification"
    assert data.examples == [
        {"tokens": ["EU", "rejects", "German"], "tags": ["B-ORG", "O", "B-MISC"]},
        {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
    ]
    assert data.lines == [3, 7]
    assert data.notes == []  # already IOB2


def test_txt_token_per_line_is_conll(write) -> None:
    data = read_file(write("train.txt", "Paris\tB-LOC\nis\tO\n\nOK\tO\n"))
    assert data.task == "token-classification"
    assert len(data.examples) == 2


def test_crlf_conll(write) -> None:
    data = read_file(write("d.txt", "a O\r\nb B-X\r\n\r\nc O\r\n"))
    assert [ex["tokens"] for ex in data.examples] == [["a", "b"], ["c"]]


def test_one_column_line_names_file_and_line(write) -> None:
    path = write("bad.conll", "EU B-ORG\nrejects\n")
    with pytest.raises(DataError, match=r"bad\.conll:2: expected 'token \.\.\. tag'"):
        read_file(path)


def test_bad_iob_tag_names_file_and_line(write) -> None:
    path = write("bad.conll", "EU B-ORG\n\nPeter PERSON\n")
    with pytest.raises(DataError, match=r"bad\.conll:3: tag 'PERSON' is not O, B-TYPE or I-TYPE"):
        read_file(path)


def test_plain_tag_sets_are_allowed(write) -> None:
    data = read_file(write("pos.conll", "The DT\ncat NN\n"))
    assert data.examples[0]["tags"] == ["DT", "NN"]


def test_iob1_is_converted_with_a_note() -> None:
    text = "Peter I-PER\nBlackburn I-PER\nand O\nEU I-ORG\nUN B-ORG\n"
    data = parse_conll(text, "x.conll")
    assert data.examples[0]["tags"] == ["B-PER", "I-PER", "O", "B-ORG", "B-ORG"]
    assert data.notes == ["x.conll: converted 2 tags from IOB1 to IOB2"]


def test_to_iob2_type_change_starts_new_entity() -> None:
    assert to_iob2(["B-PER", "I-LOC", "I-LOC"]) == (["B-PER", "B-LOC", "I-LOC"], 1)
    assert to_iob2(["O", "B-X", "I-X"]) == (["O", "B-X", "I-X"], 0)


def test_conll_for_another_task_is_an_error(write) -> None:
    with pytest.raises(DataError, match="cannot be read for task 'causal-lm'"):
        read_file(write("d.conll", "a O\n"), task="causal-lm")


def test_empty_conll_file(write) -> None:
    with pytest.raises(DataError, match=r"e\.conll: no examples"):
        read_file(write("e.conll", "-DOCSTART- -X- O\n\n"))
