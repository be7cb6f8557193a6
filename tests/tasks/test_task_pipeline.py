"""The new tasks through the shared evaluate/predict code and the bundle's task record."""

from __future__ import annotations

import math

import pytest

from adapterkit.methods import make_config
from adapterkit.predict import predict_raw
from adapterkit.tasks import task_from_info
from adapterkit.tasks.base import encode_examples
from adapterkit.tasks.question_answering import QuestionAnsweringTask
from adapterkit.tasks.token_classification import TokenClassificationTask
from adapterkit.train.evaluate import evaluate_features

NER = [
    {"tokens": ["John", "Smith", "visited", "Paris"], "tags": ["B-PER", "I-PER", "O", "B-LOC"]},
    {
        "tokens": ["Mary", "lives", "in", "Washington", "city"],
        "tags": ["B-PER", "O", "O", "B-LOC", "I-LOC"],
    },
]
QA = [
    {
        "question": "Where was Mary born?",
        "context": "Mary was born in London.",
        "answers": {"text": ["London"], "answer_start": [17]},
    },
    {
        "question": "Who founded Acme?",
        "context": "Acme was founded by Bob.",
        "answers": {"text": ["Bob"], "answer_start": [20]},
    },
]


@pytest.mark.parametrize(
    ("task_class", "labels", "examples", "raw", "headline"),
    [
        (
            TokenClassificationTask,
            ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"],
            NER,
            "John  visited Paris",
            "f1",
        ),
        (
            QuestionAnsweringTask,
            None,
            QA,
            {"question": "Who was born?", "context": "Mary was born in London."},
            "exact_match",
        ),
    ],
)
def test_evaluate_predict_and_bundle_record(
    tokenizer, tiny_bert, task_class, labels, examples, raw, headline
) -> None:
    task = task_class(tokenizer, labels, max_length=32)
    model = tiny_bert()
    model.add_adapter(
        "a", make_config("lora", r=2), head=task.build_head(32), task=task.task_info()
    )
    # The shared code moves every batch value with .to(device): all must be tensors.
    metrics, loss, predictions = evaluate_features(
        model, "a", task, [task.encode(ex) for ex in examples], task.references(examples)
    )
    assert 0.0 <= metrics[headline] <= 1.0 and math.isfinite(loss)
    assert len(predictions) == len(examples)
    (answer,) = predict_raw(model, "a", task, [raw])
    assert set(answer) == (
        {"entities", "tags"} if labels else {"answer", "start", "end", "score", "no_answer_score"}
    )
    rebuilt = task_from_info(model.task_info["a"], tokenizer)
    assert type(rebuilt) is task_class
    assert (rebuilt.label_names, rebuilt.max_length) == (task.label_names, 32)


def test_long_qa_contexts_give_one_answer_per_example(tokenizer, tiny_bert) -> None:
    task = QuestionAnsweringTask(tokenizer, None, max_length=16)
    context = "Bob likes tea. " * 8 + "Mary was born in London."
    long = {
        "question": "Where was Mary born?",
        "context": context,
        "answers": {"text": ["London"], "answer_start": [context.index("London")]},
    }
    examples = [QA[0], long, QA[1]]
    model = tiny_bert()
    model.add_adapter("a", make_config("lora", r=2), head=task.build_head(32))
    features = encode_examples(task, examples)
    assert len(features) > len(examples)  # the long context became several windows
    metrics, _, predictions = evaluate_features(
        model, "a", task, features, task.references(examples)
    )
    assert len(predictions) == len(examples) and 0.0 <= metrics["f1"] <= 1.0
    raws = [{"question": ex["question"], "context": ex["context"]} for ex in examples]
    answers = predict_raw(model, "a", task, raws, batch_size=2)
    assert len(answers) == len(examples)
    # Evaluation and prediction merge the windows alike, into a span of the example's own context.
    for example, answer, prediction in zip(examples, answers, predictions, strict=True):
        assert example["context"][answer["start"] : answer["end"]] == answer["answer"]
        assert answer["answer"] == prediction
