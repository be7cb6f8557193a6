"""Relation extraction recipe: entity marking, file conversion, and a tiny end-to-end step."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from adapterkit.errors import DataError
from adapterkit.methods import make_config
from adapterkit.tasks import head_forward
from adapterkit.tasks.classification import SequenceClassificationTask
from adapterkit.tasks.relation_extraction import (
    SPECIAL_MARKERS,
    add_marker_tokens,
    convert_relation_file,
    mark_entities,
    relation_example,
)

TEXT = "John Smith works at Acme in London."
JOHN, ACME, LONDON = (0, 10), (20, 24), (28, 34)


def test_marks_head_and_tail_in_either_order() -> None:
    assert (
        mark_entities(TEXT, JOHN, ACME)
        == "<e1> John Smith </e1> works at <e2> Acme </e2> in London."
    )
    # Tail before head: markers still say which entity is which.
    assert (
        mark_entities(TEXT, LONDON, JOHN)
        == "<e2> John Smith </e2> works at Acme in <e1> London </e1>."
    )
    assert (
        mark_entities(TEXT, JOHN, ACME, SPECIAL_MARKERS)
        == "[E1] John Smith [/E1] works at [E2] Acme [/E2] in London."
    )


def test_bad_spans_are_data_errors() -> None:
    with pytest.raises(DataError, match="overlap"):
        mark_entities(TEXT, (0, 10), (5, 15))
    with pytest.raises(DataError, match="not a non-empty range"):
        mark_entities(TEXT, (0, 10), (30, 99))
    with pytest.raises(DataError, match="not a non-empty range"):
        mark_entities(TEXT, (3, 3), ACME)


def test_relation_example_is_a_classification_example() -> None:
    assert relation_example(TEXT, ACME, LONDON, "located_in") == {
        "text": "John Smith works at <e1> Acme </e1> in <e2> London </e2>.",
        "text_pair": None,
        "label": "located_in",
    }


def test_convert_relation_file(tmp_path: Path) -> None:
    source, target = tmp_path / "rel.jsonl", tmp_path / "train.jsonl"
    rows = [
        {"text": TEXT, "head": list(JOHN), "tail": list(ACME), "relation": "works_for"},
        {"text": TEXT, "head": list(ACME), "tail": list(LONDON), "relation": "located_in"},
    ]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert convert_relation_file(source, target) == 2
    written = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert written[1] == {
        "text": "John Smith works at <e1> Acme </e1> in <e2> London </e2>.",
        "label": "located_in",
    }
    source.write_text(json.dumps({"text": TEXT, "head": [0, 10]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"rel\.jsonl:1: missing field 'tail'"):
        convert_relation_file(source, target)


def test_plain_markers_use_existing_subtokens_and_special_ones_are_single_ids(tokenizer) -> None:
    marked = mark_entities(TEXT, JOHN, ACME)
    assert tokenizer.unk_token_id not in tokenizer(marked)["input_ids"]
    special = copy.deepcopy(tokenizer)  # the fixture is shared; adding tokens mutates
    before = len(special)
    assert add_marker_tokens(special) == 4 and len(special) == before + 4
    pieces = special.tokenize(mark_entities(TEXT, JOHN, ACME, SPECIAL_MARKERS))
    assert pieces[:4] == ["[E1]", "john", "smith", "[/E1]"]


SET = [
    ("Mary was born in London.", (0, 4), (17, 23), "born_in"),
    ("Bob was born in Paris.", (0, 3), (16, 21), "born_in"),
    ("John Smith founded Acme.", (0, 10), (19, 23), "founded"),
    ("Mary founded the company.", (0, 4), (13, 24), "founded"),
]


def test_tiny_end_to_end_loss_is_finite_and_backprop_reaches_lora(tokenizer, tiny_bert) -> None:
    task = SequenceClassificationTask(tokenizer, ["born_in", "founded"])
    batch = task.collate([task.encode(relation_example(*row)) for row in SET])
    assert batch["labels"].tolist() == [0, 0, 1, 1]
    model = tiny_bert()
    model.add_adapter(
        "rel", make_config("lora", r=4), head=task.build_head(32), task=task.task_info()
    )
    model.train_adapter("rel")
    loss = task.loss(head_forward(model, "rel", batch), batch)
    assert torch.isfinite(loss)
    loss.backward()
    grads = {name: p.grad for name, p in model.adapter_parameters("rel").items()}
    assert grads and all(g is not None for g in grads.values())
    assert any(g.abs().sum() > 0 for g in grads.values())
    assert all(p.grad is None for n, p in model.base.named_parameters() if ".adapters." not in n)


@pytest.mark.real
def test_plain_markers_need_no_new_ids_in_real_minilm() -> None:
    from adapterkit.models import load_tokenizer

    minilm = load_tokenizer("minilm")
    ids = minilm(mark_entities(TEXT, JOHN, ACME))["input_ids"]
    assert minilm.unk_token_id not in ids and max(ids) < minilm.vocab_size
    assert minilm.tokenize("<e1>")[0] == "<"
