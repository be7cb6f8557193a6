"""The causal-lm task: prompt masking, chat templates, truncation, packing, loss."""

from __future__ import annotations

import pytest
import torch
from tests.generation.conftest import lm_model, word_tokenizer

from adapterkit.errors import DataError
from adapterkit.model import AdaptedModel
from adapterkit.tasks import make_task
from adapterkit.tasks.causal_lm import IGNORE

EXAMPLE = {"prompt": "translate to spanish : the red cat", "response": "el gato rojo"}


@pytest.mark.parametrize("chat", [False, True])
def test_labels_are_minus_100_exactly_on_prompt_tokens(chat: bool) -> None:
    tokenizer = word_tokenizer(chat=chat)
    task = make_task("causal-lm", tokenizer, None, 64)
    prompt = task.prompt_ids(EXAMPLE)
    features = task.encode(EXAMPLE)
    ids, labels = features["input_ids"], features["labels"]
    assert ids[: len(prompt)] == prompt  # training sees exactly the prompt generation sees
    assert labels[: len(prompt)] == [IGNORE] * len(prompt)
    assert labels[len(prompt) :] == ids[len(prompt) :]
    answer = tokenizer.decode(ids[len(prompt) :], skip_special_tokens=True)
    assert answer == "el gato rojo"
    assert ids[-1] == tokenizer.eos_token_id  # the model learns to stop


def test_every_assistant_turn_is_learned_and_nothing_else() -> None:
    tokenizer = word_tokenizer(chat=True)
    task = make_task("causal-lm", tokenizer, None, 64)
    example = {
        "messages": [
            {"role": "system", "content": "hi"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi how are you"},
            {"role": "user", "content": "one two"},
            {"role": "assistant", "content": "three four"},
        ]
    }
    features = task.encode(example)
    learned = [
        i
        for i, label in zip(features["input_ids"], features["labels"], strict=True)
        if label != IGNORE
    ]
    # Each assistant turn's words and its end-of-turn token, nothing of the other turns.
    assert tokenizer.decode(learned) == "hi how are you </s> three four </s>"


def test_plain_dialogue_without_template() -> None:
    tokenizer = word_tokenizer()
    task = make_task("causal-lm", tokenizer, None, 64)
    example = {
        "messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    }
    features = task.encode(example)
    learned = [
        i
        for i, label in zip(features["input_ids"], features["labels"], strict=True)
        if label != IGNORE
    ]
    assert tokenizer.decode(learned) == "hi </s>"


def test_long_examples_are_truncated_and_counted() -> None:
    task = make_task("causal-lm", word_tokenizer(), None, 10)
    long = {
        "prompt": "translate to spanish : the cat",
        "response": "el gato es grande y rojo y pequeño",
    }
    features = task.encode(long)
    task.encode(EXAMPLE)
    assert len(features["input_ids"]) == 10
    assert features["labels"][-1] != IGNORE
    notes = task.pop_notes()
    assert notes and notes[0].startswith("2 of 2 examples longer than max_length 10")
    assert task.pop_notes() == []


def test_prompt_longer_than_the_cap_is_one_clear_error() -> None:
    task = make_task("causal-lm", word_tokenizer(), None, 5)
    with pytest.raises(
        DataError, match=r"a prompt of 7 tokens \('translate to spanish.*max_length 5"
    ):
        task.encode(EXAMPLE)


def test_packing_joins_whole_examples_up_to_the_cap() -> None:
    task = make_task("causal-lm", word_tokenizer(), None, 24)
    features = [task.encode(EXAMPLE) for _ in range(5)]  # 11 tokens each
    packed = task.pack(features)
    assert [len(f["input_ids"]) for f in packed] == [22, 22, 11]
    assert packed[0]["labels"] == features[0]["labels"] + features[1]["labels"]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "t5"])
def test_loss_equals_the_models_own_shifted_loss(arch: str) -> None:
    tokenizer = word_tokenizer(eos_suffix=arch == "t5")
    model = AdaptedModel(lm_model(arch, tokenizer))
    task = make_task("seq2seq" if arch == "t5" else "causal-lm", tokenizer, None, 64)
    other = {"prompt": "hello", "response": "hi how are you"}
    batch = task.collate([task.encode(EXAMPLE), task.encode(other)])
    logits = task.forward(model, None, batch)
    ours = task.loss(logits, batch)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    theirs = model(**inputs, adapter=None).loss
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    if arch != "t5":  # only the positions that predict labels reach the LM head
        assert logits.shape[1] <= batch["input_ids"].shape[1]
    # perplexity of the batch = exp(mean NLL) when both rows are summed
    nll = sum(row[0] for row in task.decode(logits, batch))
    tokens = sum(row[1] for row in task.decode(logits, batch))
    assert task.metrics([], task.decode(logits, batch))["perplexity"] == pytest.approx(
        torch.exp(torch.tensor(nll / tokens)).item(), rel=1e-5
    )
