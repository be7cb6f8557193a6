"""User-file readers: CSV, TSV, JSON lines, SQuAD JSON, and their errors."""

from __future__ import annotations

import json

import pytest

from adapterkit.data.readers import read_file
from adapterkit.errors import DataError


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_csv_classification_with_quotes_and_numeric_labels(write) -> None:
    path = write("d.csv", 'text,label\nhello,1\n"a, quoted ""cell""",0\n')
    data = read_file(path)
    assert data.task == "sequence-classification"
    assert data.examples == [
        {"text": "hello", "text_pair": None, "label": "1"},
        {"text": 'a, quoted "cell"', "text_pair": None, "label": "0"},
    ]
    assert data.lines == [2, 3]


def test_tsv_keeps_quotes_and_reads_custom_columns(write) -> None:
    path = write("d.tsv", "id\tsentence\tother\ty\n1\tit's ''great''\tctx\tpos\n")
    data = read_file(path, text_column="sentence", text_pair_column="other", label_column="y")
    assert data.examples == [{"text": "it's ''great''", "text_pair": "ctx", "label": "pos"}]


def test_txt_with_tabs_is_a_table(write) -> None:
    data = read_file(write("d.txt", "text\tlabel\ngood film\tpos\nbad film\tneg\n"))
    assert [ex["label"] for ex in data.examples] == ["pos", "neg"]


def test_missing_column_lists_existing_columns(write) -> None:
    path = write("d.csv", "sentence,y\nhi,1\n")
    with pytest.raises(DataError, match=r"d\.csv: no column 'text'; columns are: sentence, y"):
        read_file(path)


def test_missing_field_in_jsonl_lists_fields(write) -> None:
    path = write("d.jsonl", _jsonl([{"text": "a", "label": "x"}, {"text": "b", "lab": "y"}]))
    with pytest.raises(DataError, match=r"d\.jsonl:2: no field 'label'; fields are: lab, text"):
        read_file(path)


def test_malformed_jsonl_names_file_and_line(write) -> None:
    path = write("d.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"d\.jsonl:3: not valid JSON \("):
        read_file(path)


def test_jsonl_line_must_be_an_object(write) -> None:
    with pytest.raises(DataError, match=r"d\.jsonl:1: expected a JSON object, got list"):
        read_file(write("d.jsonl", "[1, 2]\n"))


def test_empty_text_names_file_and_line(write) -> None:
    path = write("d.csv", "text,label\nok,a\n  ,b\n")
    with pytest.raises(DataError, match=r"d\.csv:3: empty 'text'"):
        read_file(path)


def test_empty_label_is_an_error(write) -> None:
    with pytest.raises(DataError, match=r"d\.csv:2: empty label"):
        read_file(write("d.csv", "text,label\nok,\n"))


def test_wrong_field_count_names_line(write) -> None:
    with pytest.raises(DataError, match=r"d\.tsv:3: expected 2 fields like the header, found 3"):
        read_file(write("d.tsv", "text\tlabel\na\tb\na\tb\tc\n"))


def test_a_column_named_twice_is_an_error_but_unnamed_ones_are_not(write) -> None:
    with pytest.raises(DataError, match=r"d\.csv:1: the header names 'text' twice"):
        read_file(write("d.csv", "text,text,label\na,b,pos\n"))
    # A spreadsheet's trailing commas: unnamed columns, never read.
    data = read_file(write("e.csv", "text,label,,\ngood,pos,,\n"))
    assert data.examples == [{"text": "good", "text_pair": None, "label": "pos"}]


def test_a_cell_longer_than_the_csv_modules_default_limit_is_read(write) -> None:
    document = "word " * 40_000  # 200,000 characters: the csv module's limit is 131,072
    data = read_file(write("d.csv", f'text,label\n"{document}",pos\nshort,neg\n'))
    assert data.examples[0]["text"] == document and data.examples[1]["label"] == "neg"
    with pytest.raises(DataError, match=r"d2\.csv:2: expected 2 fields"):  # an unclosed quote
        read_file(write("d2.csv", f'text,label\n"{document},pos\nshort,neg\n'))


def test_non_utf8_names_file_and_line(write) -> None:
    path = write("d.csv", b"text,label\nfine,a\ncaf\xe9,b\n")
    with pytest.raises(DataError, match=r"d\.csv:3: not UTF-8 text"):
        read_file(path)


def test_utf8_bom_is_accepted(write) -> None:
    data = read_file(write("d.csv", "\ufefftext,label\nhi,a\n"))
    assert data.examples[0]["text"] == "hi"


def test_empty_and_missing_files(write, tmp_path) -> None:
    with pytest.raises(DataError, match=r"d\.csv: empty file"):
        read_file(write("d.csv", ""))
    with pytest.raises(DataError, match=r"h\.csv: no examples"):
        read_file(write("h.csv", "text,label\n"))
    with pytest.raises(DataError, match=r"e\.jsonl: no examples"):
        read_file(write("e.jsonl", "\n\n"))
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        read_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"unknown data file type '\.xlsx'"):
        read_file(write("d.xlsx", "x"))


def test_multi_label_from_json_lists_is_detected(write) -> None:
    path = write(
        "d.jsonl", _jsonl([{"text": "a", "label": ["x", "y"]}, {"text": "b", "label": []}])
    )
    data = read_file(path)
    assert data.task == "multi-label-classification"
    assert data.examples[0]["labels"] == ["x", "y"]
    assert data.examples[1]["labels"] == []


def test_multi_label_pipe_cells_only_when_asked(write) -> None:
    path = write("d.csv", "text,label\na,x|y\nb,z\n")
    assert read_file(path).examples[0]["label"] == "x|y"
    data = read_file(path, multi_label=True)
    assert data.task == "multi-label-classification"
    assert [ex["labels"] for ex in data.examples] == [["x", "y"], ["z"]]


def test_list_label_in_single_label_file_is_an_error(write) -> None:
    path = write("d.jsonl", _jsonl([{"text": "a", "label": ["x"]}]))
    with pytest.raises(DataError, match=r"d\.jsonl:1: label is a list"):
        read_file(path, multi_label=False)


def test_qa_jsonl_and_answer_offsets(write) -> None:
    rows = [
        {
            "id": "q1",
            "question": "Who?",
            "context": "Ada wrote it.",
            "answers": {"text": ["Ada"], "answer_start": [0]},
        },
        {"question": "What?", "context": "Ada wrote it.", "answers": [{"text": "wrote"}]},
    ]
    data = read_file(write("qa.jsonl", _jsonl(rows)))
    assert data.task == "question-answering"
    assert data.examples[0]["answers"] == {"text": ["Ada"], "answer_start": [0]}
    assert data.examples[0]["id"] == "q1"
    assert data.examples[1]["answers"] == {"text": ["wrote"], "answer_start": [4]}


def test_qa_answer_not_in_context_is_an_error(write) -> None:
    row = {
        "question": "Who?",
        "context": "Ada wrote it.",
        "answers": {"text": ["Bob"], "answer_start": [0]},
    }
    with pytest.raises(DataError, match=r"qa\.jsonl:1: answer 'Bob' is not in the context"):
        read_file(write("qa.jsonl", _jsonl([row])))


def test_squad_nested_json(write) -> None:
    squad = {
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "Paris is in France.",
                        "qas": [
                            {
                                "id": "1",
                                "question": "Where?",
                                "answers": [{"text": "France", "answer_start": 12}],
                            },
                            {"id": "2", "question": "Who?", "answers": [], "is_impossible": True},
                        ],
                    }
                ],
            }
        ]
    }
    data = read_file(write("dev.json", json.dumps(squad)))
    assert data.task == "question-answering"
    assert [ex["answers"]["text"] for ex in data.examples] == [["France"], []]


def test_causal_lm_prompt_response_and_messages(write) -> None:
    rows = [
        {"prompt": "Hi", "response": "Hello!"},
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
    ]
    data = read_file(write("chat.jsonl", _jsonl(rows)))
    assert data.task == "causal-lm"
    assert data.examples[0] == {"prompt": "Hi", "response": "Hello!"}
    assert data.examples[1]["messages"][1] == {"role": "assistant", "content": "4"}


def test_causal_lm_missing_and_empty_response(write) -> None:
    with pytest.raises(
        DataError, match=r"c\.jsonl:2: needs 'prompt' and 'response' \(or 'messages'\)"
    ):
        read_file(write("c.jsonl", _jsonl([{"prompt": "a", "response": "b"}, {"prompt": "a"}])))
    with pytest.raises(DataError, match=r"d\.jsonl:1: empty 'response'"):
        read_file(write("d.jsonl", _jsonl([{"prompt": "a", "response": "  "}])))
    bad_chat = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(DataError, match=r"e\.jsonl:1: 'messages' need a non-empty 'assistant'"):
        read_file(write("e.jsonl", _jsonl([bad_chat])))


def test_token_jsonl_is_detected_and_converted_to_iob2(write) -> None:
    rows = [{"tokens": ["New", "York", "is", "big"], "tags": ["I-LOC", "I-LOC", "O", "O"]}]
    data = read_file(write("ner.jsonl", _jsonl(rows)))
    assert data.task == "token-classification"
    assert data.examples[0]["tags"] == ["B-LOC", "I-LOC", "O", "O"]
    assert any("IOB1 to IOB2" in n for n in data.notes)


def test_token_jsonl_length_mismatch(write) -> None:
    rows = [{"tokens": ["a", "b"], "tags": ["O"]}]
    with pytest.raises(DataError, match=r"ner\.jsonl:1: 2 tokens but 1 tags"):
        read_file(write("ner.jsonl", _jsonl(rows)))


def test_unknown_task_is_an_error(write) -> None:
    with pytest.raises(DataError, match="unknown task 'regression'"):
        read_file(write("d.csv", "text,label\na,b\n"), task="regression")
