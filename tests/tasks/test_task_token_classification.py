"""TokenClassificationTask: label alignment, decoding, truncation, entities, metrics, training."""

from __future__ import annotations

import json

import pytest
import torch

from adapterkit.errors import DataError
from adapterkit.methods import make_config
from adapterkit.tasks import TASK_CLASSES, head_forward, make_task
from adapterkit.tasks.token_classification import TokenClassificationTask, group_entities

LABELS = ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
ID = {label: i for i, label in enumerate(LABELS)}


def spiked_logits(task: TokenClassificationTask, features: dict, tags: list[str]) -> torch.Tensor:
    """(T, L) logits whose argmax at each word's FIRST sub-token is that word's tag.

    Every other position spikes on a different, wrong tag ("I-PER"), so a decoder that
    read any sub-token but the first would return wrong tags.
    """
    word_ids = features["word_ids"]
    logits = torch.zeros(len(word_ids), len(LABELS))
    logits[:, ID["I-PER"]] = 5.0
    seen: set[int] = set()
    for pos, word in enumerate(word_ids):
        if word >= 0 and word not in seen:
            seen.add(word)
            logits[pos] = 0.0
            logits[pos, ID[tags[word]]] = 5.0
    return logits


def test_registered_and_built_by_name(tokenizer) -> None:
    assert TASK_CLASSES["token-classification"] is TokenClassificationTask
    task = make_task("token-classification", tokenizer, LABELS, 32)
    assert task.task_info() == {"type": "token-classification", "labels": LABELS, "max_length": 32}
    assert task.build_head(32)(torch.zeros(2, 5, 32)).shape == (2, 5, len(LABELS))


def test_only_the_first_subtoken_of_a_word_is_labelled(tokenizer) -> None:
    task = TokenClassificationTask(tokenizer, LABELS)
    example = {
        "tokens": ["John", "visited", "Washington", "."],
        "tags": ["B-PER", "O", "B-LOC", "O"],
    }
    features = task.encode(example)
    pieces = tokenizer.convert_ids_to_tokens(features["input_ids"])
    assert pieces == ["[CLS]", "john", "visited", "wash", "##ing", "##ton", ".", "[SEP]"]
    x = -100  # [CLS], "##ing", "##ton" and [SEP] carry no label
    assert features["labels"] == [x, ID["B-PER"], ID["O"], ID["B-LOC"], x, x, ID["O"], x]
    assert features["word_ids"] == [-1, 0, 1, 2, 2, 2, 3, -1]
    assert features["num_words"] == 4


def test_bad_tags_are_data_errors(tokenizer) -> None:
    task = TokenClassificationTask(tokenizer, LABELS)
    with pytest.raises(DataError, match="2 tokens but 1 tags"):
        task.encode({"tokens": ["John", "Smith"], "tags": ["B-PER"]})
    with pytest.raises(DataError, match="'B-ORG' is not one of"):
        task.encode({"tokens": ["Acme"], "tags": ["B-ORG"]})


def test_collate_pads_labels_with_ignore_index(tokenizer) -> None:
    task = TokenClassificationTask(tokenizer, LABELS)
    short = task.encode({"tokens": ["Paris"], "tags": ["B-LOC"]})
    long = task.encode(
        {"tokens": ["John", "visited", "Washington"], "tags": ["B-PER", "O", "B-LOC"]}
    )
    batch = task.collate([short, long])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 7)
    assert batch["labels"][0].tolist() == [-100, ID["B-LOC"], -100, -100, -100, -100, -100]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0, 0]
    assert batch["word_ids"][0].tolist() == [-1, 0, -1, -1, -1, -1, -1]
    assert batch["num_words"].tolist() == [1, 3]


def test_decode_round_trip_reads_first_subtokens(tokenizer) -> None:
    task = TokenClassificationTask(tokenizer, LABELS)
    sentences = [
        (
            ["Mary", "Washington", "lives", "in", "New", "York"],
            ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"],
        ),
        (["Washington"], ["B-LOC"]),
    ]
    features = [task.encode({"tokens": words}) for words, _ in sentences]
    batch = task.collate(features)
    logits = torch.full((*batch["input_ids"].shape, len(LABELS)), -1.0)
    for i, (feat, (_, tags)) in enumerate(zip(features, sentences, strict=True)):
        logits[i, : len(feat["input_ids"])] = spiked_logits(task, feat, tags)
    assert task.decode(logits, batch) == [tags for _, tags in sentences]


def test_truncation_keeps_one_tag_per_word(tokenizer) -> None:
    task = TokenClassificationTask(tokenizer, LABELS, max_length=6)
    words = ["John", "Smith", "visited", "Washington", "and", "Paris", "."]
    features = task.encode({"tokens": words, "tags": ["O"] * len(words)})
    assert len(features["input_ids"]) == 6  # [CLS] john smith visited wash [SEP]
    batch = task.collate([features])
    logits = torch.zeros(1, 6, len(LABELS))
    logits[..., ID["B-PER"]] = 3.0  # every surviving token says B-PER
    (tags,) = task.decode(logits, batch)
    assert len(tags) == len(words)
    assert tags == ["B-PER"] * 4 + ["O"] * 3  # words cut off are predicted "O"
    assert task.metrics([["O"] * len(words)], [tags])["accuracy"] == pytest.approx(3 / 7)
    task.encode({"tokens": ["Paris", "."], "tags": ["B-LOC", "O"]})  # fits: not counted
    (note,) = task.pop_notes()  # what the trainer logs
    assert note.startswith("1 of 2 examples were longer than max_length 6 sub-tokens")
    assert "last 3 words in all were cut off" in note
    assert task.pop_notes() == []  # reset after each call


def test_parse_input_keeps_character_offsets(tokenizer) -> None:
    task = TokenClassificationTask(tokenizer, LABELS)
    parsed = task.parse_input("  John\tSmith  lives.")
    assert parsed["tokens"] == ["John", "Smith", "lives."]
    assert parsed["offsets"] == [(2, 6), (7, 12), (14, 20)]
    listed = task.parse_input(["New", "York"])
    assert listed == {"tokens": ["New", "York"], "offsets": [(0, 3), (4, 8)], "text": "New York"}
    with pytest.raises(DataError):
        task.parse_input("   ")
    with pytest.raises(DataError):
        task.parse_input(42)


def test_format_prediction_entities_with_exact_offsets(tokenizer) -> None:
    task = TokenClassificationTask(tokenizer, LABELS)
    text = "Yesterday  John Washington visited New York."
    example = task.parse_input(text)
    features = task.encode(example)
    tags = ["O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC"]  # "York." is one whitespace word
    logits = spiked_logits(task, features, tags)
    padded = torch.cat([logits, torch.zeros(3, len(LABELS))])  # as sliced out of a padded batch
    result = task.format_prediction(example, padded, features)
    assert result["tags"] == tags
    per, loc = result["entities"]
    assert (per["type"], per["text"], per["start"], per["end"]) == (
        "PER",
        "John Washington",
        11,
        26,
    )
    assert (loc["type"], loc["text"], loc["start"], loc["end"]) == ("LOC", "New York.", 35, 44)
    assert text[per["start"] : per["end"]] == per["text"]
    p_top = torch.tensor([5.0, 0, 0, 0, 0]).softmax(-1)[0].item()  # prob of a spiked tag
    assert per["score"] == pytest.approx(p_top) and loc["score"] == pytest.approx(p_top)


def test_group_entities_follows_strict_iob2() -> None:
    # A dangling I-PER starts nothing (as seqeval strict scores it); I-LOC after B-LOC joins.
    assert group_entities(["I-PER", "B-LOC", "I-LOC", "I-PER", "B-PER"]) == [
        ("LOC", 1, 2),
        ("PER", 4, 4),
    ]


def test_perfect_predictions_score_one(tokenizer) -> None:
    task = TokenClassificationTask(tokenizer, LABELS)
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-LOC"]]
    scores = task.metrics(
        task.references([{"tokens": ["x"] * 4, "tags": gold[0]}, {"tags": gold[1]}]), gold
    )
    assert scores["f1"] == scores["precision"] == scores["recall"] == scores["accuracy"] == 1.0


TRAIN = [
    ("John Smith visited Paris .", "B-PER I-PER O B-LOC O"),
    ("Mary lives in London .", "B-PER O O B-LOC O"),
    ("Bob likes New York", "B-PER O B-LOC I-LOC"),
    ("the capital of France is Paris", "O O O B-LOC O B-LOC"),
]


def test_a_few_lora_steps_reduce_the_loss(tokenizer, tiny_bert) -> None:
    task = TokenClassificationTask(tokenizer, LABELS)
    model = tiny_bert()
    model.add_adapter(
        "ner", make_config("lora", r=4), head=task.build_head(32), task=task.task_info()
    )
    model.train_adapter("ner")
    model.train()
    examples = [{"tokens": s.split(), "tags": t.split()} for s, t in TRAIN]
    batch = task.collate([task.encode(ex) for ex in examples])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    losses = []
    for _ in range(15):
        loss = task.loss(head_forward(model, "ner", batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    with torch.no_grad():
        predictions = task.decode(head_forward(model, "ner", batch), batch)
    assert [len(p) for p in predictions] == [len(ex["tokens"]) for ex in examples]


@pytest.mark.real
def test_alignment_with_the_real_minilm_tokenizer() -> None:
    from adapterkit.models import load_tokenizer

    task = TokenClassificationTask(load_tokenizer("minilm"), LABELS)
    words, tags = ["Huggingface", "hired", "Zdzisław", "."], ["B-LOC", "O", "B-PER", "O"]
    features = task.encode({"tokens": words, "tags": tags})
    first = {}
    for pos, word in enumerate(features["word_ids"]):
        first.setdefault(word, pos)
    assert max(features["word_ids"].count(w) for w in range(4)) > 1  # some word is split
    expected = [
        ID[tags[w]] if w >= 0 and first[w] == pos else -100
        for pos, w in enumerate(features["word_ids"])
    ]
    assert features["labels"] == expected
    logits = spiked_logits(task, features, tags)
    assert task.decode(logits[None], task.collate([features])) == [tags]


POS = ["DT", "NN", "NNP", "VBD"]  # a plain tag set: no B-/I- prefixes, no "O"


def test_a_plain_tag_set_is_scored_word_by_word(tokenizer) -> None:
    """POS or IO tags mark no entity spans: scored as classification of every word (strict
    IOB2 scoring refused them after the first epoch's training)."""
    task = TokenClassificationTask(tokenizer, POS)
    assert task.plain_tags and not TokenClassificationTask(tokenizer, LABELS).plain_tags
    gold = [["NNP", "VBD", "NNP"], ["DT", "NN", "VBD"]]
    guess = [["NNP", "VBD", "NN"], ["DT", "NN", "VBD"]]
    scores = task.metrics(gold, guess)
    assert scores["accuracy"] == pytest.approx(5 / 6)
    assert scores["per_class"]["NNP"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": 2 / 3,
        "support": 2,
    }
    assert scores["f1"] == pytest.approx((1.0 + 2 / 3 + 2 / 3 + 1.0) / 4)  # macro over tags
    # The floor "learned nothing" is judged against: every word the most frequent tag.
    majority = task.metrics(gold, [["NNP"] * 3, ["NNP"] * 3])["f1"]
    assert task.trivial_score(gold) == pytest.approx(majority) and 0 < majority < 1
    assert "most frequent tag" in task.trivial_predictor
    assert TokenClassificationTask(tokenizer, LABELS).trivial_score([["B-PER", "O"]]) == 0.0


def test_plain_tags_train_evaluate_and_predict_from_the_cli(tmp_path, capsys) -> None:
    """A POS-tagging run trains past its validations, beats the most-frequent-tag floor,
    and its bundle evaluates and predicts word tags (no entities)."""
    from tests.tiny import save_tiny_bert

    from adapterkit.cli import main

    words = {"the": "DT", "a": "DT", "cat": "NN", "dog": "NN", "john": "NNP", "mary": "NNP"}
    words |= {"saw": "VBD", "ran": "VBD"}
    model = save_tiny_bert(tmp_path / "bert", sorted(words))
    sentences = [
        ["john", "saw", "the", "cat"], ["mary", "ran"], ["the", "dog", "ran"],
        ["a", "cat", "saw", "mary"], ["john", "ran"], ["the", "cat", "saw", "a", "dog"],
    ]  # fmt: skip
    rows = [{"tokens": s, "tags": [words[w] for w in s]} for s in sentences * 6]
    data = tmp_path / "pos.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "run"
    argv = ["train", "--model", str(model), "--train", str(data), "--output", str(out)]
    argv += ["--method", "lora", "--epochs", "10", "--lr", "0.01", "--report-to", "none"]
    assert main(argv) == 0  # 3: learned nothing
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_class"]) == {"DT", "NN", "NNP", "VBD"}
    assert metrics["accuracy"] > 0.5
    bundle = str(out / "adapter")
    assert main(["evaluate", bundle, "--data", str(data), "--split", "train"]) == 0
    capsys.readouterr()
    assert main(["predict", bundle, "john saw the dog"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["entities"] == [] and set(answer["tags"]) <= set(POS) and len(answer["tags"]) == 4
