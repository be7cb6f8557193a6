"""QuestionAnsweringTask: positions, span decoding, truncation, offsets, metrics, training."""

from __future__ import annotations

import itertools

import pytest
import torch

from adapterkit.errors import DataError
from adapterkit.methods import make_config
from adapterkit.tasks import TASK_CLASSES, head_forward, make_task
from adapterkit.tasks.base import merge_windows
from adapterkit.tasks.question_answering import QuestionAnsweringTask, best_span


def qa(question: str, context: str, answer: str) -> dict:
    start = context.index(answer)
    return {
        "question": question,
        "context": context,
        "answers": {"text": [answer], "answer_start": [start]},
    }


EXAMPLES = [
    qa("Who founded Acme?", "Acme was founded by John Smith in London.", "John Smith"),
    qa("Where was Mary born?", "Mary was born in Paris, the capital of France.", "Paris"),
    qa("What do cats eat?", "Cats eat fish.", "fish"),
    qa("Where does Bob work?", "Bob works at Acme in Washington city.", "Washington"),
    # The question's own "Paris" must not be picked: answers come from the context only.
    qa("What is Paris?", "Paris is the capital of France.", "the capital of France"),
]


def spiked(batch: dict[str, torch.Tensor], height: float = 20.0) -> torch.Tensor:
    """(B, T, 2) logits with one spike at each gold start and end position."""
    logits = torch.zeros(*batch["input_ids"].shape, 2)
    rows = torch.arange(len(logits))
    logits[rows, batch["start_positions"], 0] = height
    logits[rows, batch["end_positions"], 1] = height
    return logits


def test_registered_label_free(tokenizer) -> None:
    assert TASK_CLASSES["question-answering"] is QuestionAnsweringTask
    task = make_task("question-answering", tokenizer, None, 64)
    assert task.label_names == [] and task.task_info()["labels"] == []
    assert task.build_head(32)(torch.zeros(2, 7, 32)).shape == (2, 7, 2)


def test_answer_positions_cover_the_answer_subtokens(tokenizer) -> None:
    task = QuestionAnsweringTask(tokenizer, None)
    features = task.encode(EXAMPLES[3])
    pieces = tokenizer.convert_ids_to_tokens(features["input_ids"])
    start, end = features["start_positions"], features["end_positions"]
    assert pieces[start : end + 1] == ["wash", "##ing", "##ton"]
    assert features["token_type_ids"][start] == 1 and features["context_mask"][start] == 1


def test_gold_positions_decode_back_to_the_exact_answers(tokenizer) -> None:
    task = QuestionAnsweringTask(tokenizer, None)
    batch = task.collate([task.encode(ex) for ex in EXAMPLES])
    predictions = task.decode(spiked(batch), batch)
    assert predictions == [ex["answers"]["text"][0] for ex in EXAMPLES]
    scores = task.metrics(task.references(EXAMPLES), predictions)
    assert scores == {"exact_match": 1.0, "f1": 1.0}


def test_decoding_never_leaves_the_context_or_exceeds_the_length_cap() -> None:
    mask = torch.tensor([0, 0, 1, 1, 1, 1, 0])
    start_logits = torch.tensor([9.0, 9.0, 0.0, 1.0, 0.0, 0.0, 9.0])
    end_logits = torch.tensor([9.0, 9.0, 2.0, 0.0, 0.0, 0.0, 9.0])
    # Best unconstrained pair would be (3, 2), an end before its start; (2, 2) is the best legal one.
    start, end, score = best_span(start_logits, end_logits, mask)
    assert (start, end) == (2, 2) and 0.0 < score < 1.0
    end_logits = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0])
    start_logits = torch.tensor([0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0])
    assert best_span(start_logits, end_logits, mask)[:2] == (2, 5)
    start, end, _ = best_span(start_logits, end_logits, mask, max_tokens=2)
    assert 2 <= start <= end <= 5 and end - start <= 1


LONG_CONTEXT = "Bob likes tea. " * 12 + "Mary was born in London."


def test_a_long_context_becomes_overlapping_windows(tokenizer) -> None:
    task = QuestionAnsweringTask(tokenizer, None, max_length=24)
    windows = task.encode_windows(qa("Where was Mary born?", LONG_CONTEXT, "London"))
    count = len(windows)
    assert count > 1 and [w["window"] for w in windows] == [[i, count] for i in range(count)]
    assert all(len(w["input_ids"]) <= 24 for w in windows)
    # The windows cover the whole context, each overlapping the one before it.
    spans = [
        [o for o, keep in zip(w["offsets"], w["context_mask"], strict=True) if keep]
        for w in windows
    ]
    assert spans[0][0][0] == 0 and spans[-1][-1][1] == len(LONG_CONTEXT)
    assert all(b[0][0] < a[-1][1] for a, b in itertools.pairwise(spans))
    # Only a window that holds the whole answer points at it; the others point at CLS.
    holding = [w for w in windows if w["start_positions"] != 0]
    assert holding and len(holding) < count
    for w in holding:
        start, end = w["offsets"][w["start_positions"]][0], w["offsets"][w["end_positions"]][1]
        assert LONG_CONTEXT[start:end] == "London"
    batch = task.collate(windows)
    loss = task.loss(torch.zeros(*batch["input_ids"].shape, 2, requires_grad=True), batch)
    assert torch.isfinite(loss)
    (note,) = task.pop_notes()  # what the trainer logs
    assert note == (
        f"1 of 1 contexts did not fit max_length 24 with their question and were split "
        f"into {count} overlapping windows"
    )
    assert task.encode(EXAMPLES[2]).get("window") is None and task.pop_notes() == []


def test_windows_merge_into_the_most_probable_answer(tokenizer) -> None:
    task = QuestionAnsweringTask(tokenizer, None, max_length=24)
    example = qa("Where was Mary born?", LONG_CONTEXT, "London")
    windows = task.encode_windows(example)
    features = [task.encode(EXAMPLES[2]), *windows, task.encode(EXAMPLES[0])]
    batch = task.collate(features)
    logits = spiked(batch)  # windows without the answer spike on CLS: weak context spans
    decoded = task.decode(logits, batch)
    assert len(decoded) == len(features)
    assert merge_windows(task, features, decoded) == ["fish", "London", "John Smith"]
    # The same merge picks among formatted answers (prediction and serving).
    parsed = task.parse_input({"question": example["question"], "context": LONG_CONTEXT})
    rows = [task.format_prediction(parsed, logits[1 + i], w) for i, w in enumerate(windows)]
    best = task.merge_window_predictions(rows)
    assert best["answer"] == "London" == LONG_CONTEXT[best["start"] : best["end"]]
    assert best["score"] > 0.99 and min(r["score"] for r in rows) < 0.01


def test_an_answer_longer_than_the_overlap_is_counted(tokenizer) -> None:
    task = QuestionAnsweringTask(tokenizer, None, max_length=16)
    context = "Bob likes tea. " * 6 + "one two three four five six seven eight nine ten. " * 2
    answer = "one two three four five six seven eight nine ten"
    windows = task.encode_windows(qa("What?", context, answer))
    assert all(w["start_positions"] == 0 for w in windows)
    assert task.pop_notes()[1].startswith("1 answers fit in no single window")


def test_question_too_long_is_a_data_error(tokenizer) -> None:
    task = QuestionAnsweringTask(tokenizer, None, max_length=8)
    with pytest.raises(DataError, match="cannot fit question and context into 8 tokens"):
        task.encode(qa("who was born in the capital of france?", "Mary was.", "Mary"))


def test_format_prediction_offsets_slice_the_context(tokenizer) -> None:
    task = QuestionAnsweringTask(tokenizer, None)
    features_list = [task.encode(ex) for ex in EXAMPLES]
    batch = task.collate(features_list)
    logits = spiked(batch)
    for i, ex in enumerate(EXAMPLES):
        example = task.parse_input({"question": ex["question"], "context": ex["context"]})
        result = task.format_prediction(example, logits[i], features_list[i])
        answer = ex["answers"]["text"][0]
        assert result["answer"] == answer == ex["context"][result["start"] : result["end"]]
        assert result["start"] == ex["answers"]["answer_start"][0]
        assert result["score"] > 0.99


def test_parse_input_needs_question_and_context(tokenizer) -> None:
    task = QuestionAnsweringTask(tokenizer, None)
    with pytest.raises(DataError):
        task.parse_input("just a string")
    with pytest.raises(DataError):
        task.parse_input({"question": "who?", "context": " "})


def test_a_few_pfeiffer_steps_reduce_the_loss(tokenizer, tiny_bert) -> None:
    task = QuestionAnsweringTask(tokenizer, None)
    model = tiny_bert()
    model.add_adapter(
        "qa", make_config("pfeiffer"), head=task.build_head(32), task=task.task_info()
    )
    model.train_adapter("qa")
    model.train()
    batch = task.collate([task.encode(ex) for ex in EXAMPLES])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(20):
        loss = task.loss(head_forward(model, "qa", batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Dropout makes single steps noisy; over 20 steps the loss roughly halves (2.7 -> ~1.3).
    assert losses[-1] < 0.75 * losses[0]


@pytest.mark.real
def test_round_trip_with_the_real_minilm_tokenizer() -> None:
    from adapterkit.models import load_tokenizer

    task = QuestionAnsweringTask(load_tokenizer("minilm"), None)
    hired = qa(
        "Who hired Zdzisław?", "Huggingface hired Zdzisław Kowalski in 2019.", "Zdzisław Kowalski"
    )
    examples = [*EXAMPLES, hired]
    features = [task.encode(ex) for ex in examples]
    batch = task.collate(features)
    assert task.decode(spiked(batch), batch) == [ex["answers"]["text"][0] for ex in examples]
    result = task.format_prediction(examples[-1], spiked(batch)[-1], features[-1])
    assert (result["start"], result["end"]) == (18, 35)
    # A long context through the real tokenizer: windows, merged back into the answer.
    task = QuestionAnsweringTask(load_tokenizer("minilm"), None, max_length=32)
    long = qa(
        "Where was Zdzisław born?", "Bob likes tea. " * 20 + "Zdzisław was born in Łódź.", "Łódź"
    )
    windows = task.encode_windows(long)
    assert len(windows) > 2
    batch = task.collate(windows)
    assert merge_windows(task, windows, task.decode(spiked(batch), batch)) == ["Łódź"]
