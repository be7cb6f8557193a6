"""Relation extraction: markers, entity-start positions, shortening, the head, the metric,
raw inputs, and a tiny training step."""

from __future__ import annotations

import pytest
import torch
from tests.train.test_packed_equivalence import compare
from tests.train.test_packed_equivalence import tiny_bert as dropout_free_bert
from torch import nn

from adapterkit.errors import DataError
from adapterkit.heads import EntityPairHead, build_head, pair_logits
from adapterkit.methods import make_config
from adapterkit.metrics.relations import find_no_relation, relation_metrics
from adapterkit.model import AdaptedModel
from adapterkit.tasks import head_forward, make_task, model_inputs, task_from_info
from adapterkit.tasks.relation_extraction import MARKERS, RelationExtractionTask, mark_entities

TEXT = "John Smith works at Acme in London."
JOHN, ACME, LONDON = [0, 10], [20, 24], [28, 34]
BORN = "Mary was born in Washington ."
MARY, WASHINGTON = [0, 4], [17, 27]
RELATIONS = ["born_in", "no_relation", "works_for"]


@pytest.fixture
def task(tokenizer) -> RelationExtractionTask:
    return RelationExtractionTask(tokenizer, RELATIONS, 64)


def _tokens(task: RelationExtractionTask, features: dict) -> list[str]:
    """The tokens of ``features``, each marker id shown as its marker."""
    first = task.first_marker_id
    return [
        MARKERS[i - first] if i >= first else task.tokenizer.convert_ids_to_tokens(i)
        for i in features["input_ids"]
    ]


def test_markers_wrap_head_and_tail_in_either_order() -> None:
    marked, spans = mark_entities(TEXT, JOHN, ACME)
    assert marked == "<e1> John Smith </e1> works at <e2> Acme </e2> in London."
    assert [marked[a:b] for a, b in spans] == list(MARKERS)
    # Tail before head: the markers still say which entity is which.
    marked, spans = mark_entities(TEXT, LONDON, JOHN)
    assert marked == "<e2> John Smith </e2> works at Acme in <e1> London </e1>."
    assert [marked[a:b] for a, b in spans] == list(MARKERS)
    assert spans[2] == (0, 4)


def test_entity_starts_point_at_the_start_markers(task) -> None:
    features = task.encode({"text": TEXT, "head": JOHN, "tail": ACME, "relation": "works_for"})
    tokens = _tokens(task, features)
    head, tail = features["entity_starts"]
    # Each marker is one id (past the vocabulary), its sub-tokens folded into it.
    want = "[CLS] <e1> john smith </e1> works at <e2> acme </e2> in london . [SEP]"
    assert tokens == want.split()
    assert (head, tail) == (1, 7)
    assert features["input_ids"][head] == len(task.tokenizer)  # <e1>: the first id past it
    assert features["labels"] == RELATIONS.index("works_for")
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert len(features["attention_mask"]) == len(features["input_ids"])


def test_head_after_tail_and_a_split_entity(task) -> None:
    example = {"text": BORN, "head": WASHINGTON, "tail": MARY, "relation": "born_in"}
    features = task.encode(example)
    tokens = _tokens(task, features)
    head, tail = features["entity_starts"]
    assert tail < head  # the tail comes first in the sentence
    assert tokens[head : head + 5] == ["<e1>", "wash", "##ing", "##ton", "</e1>"]
    assert tokens[tail : tail + 3] == ["<e2>", "mary", "</e2>"]


def test_a_long_sentence_is_shortened_around_the_entities(tokenizer) -> None:
    task = RelationExtractionTask(tokenizer, RELATIONS, 24)
    # The entities sit in the middle of ~60 tokens of context: a plain truncation at 24
    # would cut the tail's marker off.
    text = "cats eat fish . " * 8 + BORN + " bob likes tea ." * 6
    offset = len("cats eat fish . " * 8)
    head, tail = [offset + 17, offset + 27], [offset, offset + 4]
    features = task.encode({"text": text, "head": head, "tail": tail, "relation": "born_in"})
    tokens = _tokens(task, features)
    assert len(tokens) == 24 and tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    h, t = features["entity_starts"]
    assert tokens[h : h + 5] == ["<e1>", "wash", "##ing", "##ton", "</e1>"]
    assert tokens[t : t + 3] == ["<e2>", "mary", "</e2>"]
    # The far context went first (two of eight "cats eat fish ." and the start of six
    # "bob likes tea ." stay), and what stays reads in order.
    kept = "cats eat fish . " * 2 + "<e2> mary </e2> was born in <e1> wash ##ing ##ton </e1> ."
    assert tokens == ["[CLS]", *kept.split(), "bob", "likes", "[SEP]"]
    (note,) = task.pop_notes()
    assert note.startswith("1 of 1 examples were longer than max_length 24")
    assert task.pop_notes() == []


def test_entities_too_far_apart_keep_both_start_markers(tokenizer) -> None:
    task = RelationExtractionTask(tokenizer, RELATIONS, 12)
    text = "Mary " + "cats eat fish . " * 10 + "London"
    example = {"text": text, "head": [0, 4], "tail": [len(text) - 6, len(text)]}
    features = task.encode(example)
    tokens = _tokens(task, features)
    h, t = features["entity_starts"]
    assert len(tokens) == 12
    assert tokens[h : h + 2] == ["<e1>", "mary"] and tokens[t : t + 2] == ["<e2>", "london"]
    with pytest.raises(DataError, match="no room for two entities"):
        RelationExtractionTask(tokenizer, RELATIONS, 3).encode(example)


def test_an_unknown_relation_is_refused(task) -> None:
    with pytest.raises(DataError, match="relation 'lives_in' is not one of the trained labels"):
        task.encode({"text": TEXT, "head": JOHN, "tail": ACME, "relation": "lives_in"})


def test_the_head_is_a_linear_map_of_the_two_start_states() -> None:
    torch.manual_seed(0)
    head = EntityPairHead(32, 3, first_marker_id=100, dropout=0.0).eval()
    hidden = torch.randn(2, 7, 32)  # (B, T, C)
    starts = torch.tensor([[1, 4], [5, 0]])  # (B, 2): head, tail
    token_logits = head(hidden)
    assert token_logits.shape == (2, 7, 6)  # (B, T, 2L)
    logits = pair_logits(token_logits, starts)
    assert logits.shape == (2, 3)
    # The same as Baldini Soares' concat -> linear(2C -> L).
    concat = torch.cat([hidden[[0, 1], starts[:, 0]], hidden[[0, 1], starts[:, 1]]], -1)
    linear = nn.Linear(64, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.cat([head.head_out.weight, head.tail_out.weight], 1))
        linear.bias.copy_(head.head_out.bias)
    torch.testing.assert_close(logits, linear(concat))
    torch.testing.assert_close(pair_logits(token_logits[1], starts[1]), logits[1])
    rebuilt = build_head("entity-pair", head.head_config)
    assert isinstance(rebuilt, EntityPairHead) and rebuilt.head_config == head.head_config


def test_micro_f1_leaves_the_no_relation_label_out() -> None:
    gold = ["born_in", "works_for", "no_relation", "no_relation", "born_in"]
    pred = ["born_in", "no_relation", "works_for", "no_relation", "works_for"]
    got = relation_metrics(gold, pred, RELATIONS)
    # Guesses that are relations: 3 (born_in, works_for, works_for), 1 right; gold
    # relations: 3 (born_in, works_for, born_in).
    assert got["precision"] == pytest.approx(1 / 3)
    assert got["recall"] == pytest.approx(1 / 3)
    assert got["f1"] == pytest.approx(1 / 3)
    assert got["accuracy"] == pytest.approx(2 / 5)  # the no_relation hit counts here only
    assert got["no_relation"] == "no_relation"
    assert got["per_class"]["born_in"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert find_no_relation(["Cause-Effect", "Other"]) == "Other"
    assert find_no_relation(["/people/born_in", "NA"]) == "NA"
    assert find_no_relation(["a", "b"]) is None


def test_the_trivial_predictor_scores_zero(task) -> None:
    assert task.trivial_score(["born_in", "no_relation", "no_relation"]) == 0.0
    # No no-relation label: F1 over every label is accuracy; the floor is the majority's.
    plain = RelationExtractionTask(task.tokenizer, ["a", "b"], 64)
    assert plain.trivial_score(["a", "a", "b", "a"]) == pytest.approx(0.75)
    assert plain.trivial_score(["a", "a"]) is None


def test_raw_inputs_take_the_training_shape(task) -> None:
    raw = {"text": TEXT, "head": JOHN, "tail": {"start": 20, "end": 24}}
    assert task.parse_input(raw) == {"text": TEXT, "head": JOHN, "tail": ACME}
    bad = [
        (TEXT, "each input must be an object"),
        ({"text": TEXT, "head": JOHN}, "no 'tail' span"),
        ({"text": TEXT, "head": JOHN, "tail": [30, 99]}, "not a non-empty range"),
        ({"text": TEXT, "head": JOHN, "tail": [5, 5]}, "not a non-empty range"),
        ({"text": TEXT, "head": JOHN, "tail": [5, 15]}, "overlap"),
        ({"text": TEXT, "head": JOHN, "tail": ACME, "label": "x"}, "unknown field"),
    ]
    for raw, message in bad:
        with pytest.raises(DataError, match=message):
            task.parse_input(raw)


def test_the_task_round_trips_through_its_bundle_record(task, tokenizer) -> None:
    info = task.task_info()
    assert info == {"type": "relation-extraction", "labels": RELATIONS, "max_length": 64}
    again = task_from_info(info, tokenizer)
    assert isinstance(again, RelationExtractionTask) and again.no_relation == "no_relation"
    assert isinstance(
        make_task("relation-extraction", tokenizer, RELATIONS), RelationExtractionTask
    )


def test_a_few_steps_learn_the_training_pairs(task, tiny_bert) -> None:
    model = tiny_bert()
    model.add_adapter("re", make_config("lora"), head=task.build_head(32), task=task.task_info())
    examples = [
        {"text": TEXT, "head": JOHN, "tail": ACME, "relation": "works_for"},
        {"text": BORN, "head": MARY, "tail": WASHINGTON, "relation": "born_in"},
        {"text": TEXT, "head": JOHN, "tail": LONDON, "relation": "no_relation"},
    ]
    batch = task.collate([task.encode(ex) for ex in examples])
    assert batch["entity_starts"].shape == (3, 2)
    params = [*model.adapter_parameters("re").values(), *model.head_parameters("re").values()]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    model.train()
    for _ in range(30):
        loss = task.loss(head_forward(model, "re", batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = head_forward(model, "re", batch)
    assert task.decode(logits, batch) == [ex["relation"] for ex in examples]
    answer = task.format_prediction(examples[1], logits[1], task.encode(examples[1]))
    assert answer["relation"] == "born_in" and set(answer["scores"]) == set(RELATIONS)
    assert answer["score"] == pytest.approx(max(answer["scores"].values()))


def test_an_re_job_trained_packed_beside_a_classification_job_equals_it_alone(
    tokenizer, tmp_path
) -> None:
    # Packed training runs the heads on hidden states cut to each job's width; the entity
    # positions travel in the job's own batch, so nothing there knows about them.
    rows = [
        {"text": TEXT, "head": JOHN, "tail": ACME, "relation": "works_for"},
        {"text": BORN, "head": MARY, "tail": WASHINGTON, "relation": "born_in"},
        {"text": TEXT, "head": LONDON, "tail": JOHN, "relation": "no_relation"},
    ] * 3
    classification = [
        {"text": "cats eat fish " * (1 + i % 4), "text_pair": None, "label": "ab"[i % 2]}
        for i in range(8)
    ]
    specs = [
        (make_task("relation-extraction", tokenizer, RELATIONS, 64), rows, rows[:3]),
        (make_task("sequence-classification", tokenizer, ["a", "b"], 64), classification, None),
    ]
    compare(lambda: AdaptedModel(dropout_free_bert(len(tokenizer))), specs, "lora", tmp_path)


def test_marker_rows_enter_at_the_input_embeddings_per_row(task, tiny_bert) -> None:
    model = tiny_bert()
    rows_before = model.base.get_input_embeddings().weight.shape[0]
    model.add_adapter("re", make_config("lora"), head=task.build_head(32), task=task.task_info())
    model.add_adapter("plain", make_config("lora"))
    assert model.base.get_input_embeddings().weight.shape[0] == rows_before  # no new rows
    assert "head.markers" in model.head_parameters("re")  # saved with the bundle
    example = {"text": TEXT, "head": JOHN, "tail": ACME}
    batch = task.collate([task.encode(example)] * 2)
    seen: list[torch.Tensor] = []
    model.base.get_input_embeddings().register_forward_hook(lambda m, a, out: seen.append(out))
    markers = model.heads["re"].markers
    ids = batch["input_ids"]
    is_marker = ids >= task.first_marker_id
    model(**model_inputs(batch), adapter=["re", "plain"])  # one row each
    (looked_up,) = seen
    plain = model.base.get_input_embeddings().weight[ids.masked_fill(is_marker, 0)]
    # Row 0 (re): the head's marker rows at the marker positions, the lookup elsewhere.
    torch.testing.assert_close(
        looked_up[0][is_marker[0]], markers[ids[0][is_marker[0]] - len(task.tokenizer)]
    )
    torch.testing.assert_close(looked_up[0][~is_marker[0]], plain[0][~is_marker[0]])
    # Row 1 (another adapter): no marker rows of someone else's head.
    torch.testing.assert_close(looked_up[1], plain[1])
    # A head whose markers claim real ids (0..3: [PAD] [UNK] [CLS] [SEP]) changes its own
    # rows only: row 0 looks up exactly as before.
    odd = EntityPairHead(32, 3, first_marker_id=0)
    model.add_adapter("odd", make_config("lora"), head=odd, task=task.task_info())
    model(**model_inputs(batch), adapter=["re", "odd"])
    torch.testing.assert_close(seen[1][0], looked_up[0])
    torch.testing.assert_close(seen[1][1][0], odd.markers[2])  # [CLS]: its "<e2>" row
    # The marker rows learn: the loss reaches them.
    task.loss(
        head_forward(model, "re", batch), {**batch, "labels": torch.tensor([0, 0])}
    ).backward()
    assert markers.grad is not None and markers.grad[[0, 2]].abs().sum() > 0
