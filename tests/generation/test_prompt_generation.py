"""Generation with prompt tuning through adapterkit's decoding: left-padded batches, a
training step on the causal-lm / seq2seq tasks, stop strings and streaming."""

from __future__ import annotations

import io

import pytest
import torch
from tests.generation.conftest import lm_model, word_tokenizer

from adapterkit.generation import DecodeOptions, StopStreamer, generate_texts
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.tasks import make_task

PROMPTS = [
    "translate to spanish : the red cat",
    "hello",
    "summarize this paper we propose a method",
]


def _setup(arch: str):
    tokenizer = word_tokenizer(eos_suffix=arch == "t5")
    model = AdaptedModel(lm_model(arch, tokenizer))
    model.add_adapter("p", make_config("prompt", num_virtual_tokens=4))
    task = make_task("seq2seq" if arch == "t5" else "causal-lm", tokenizer, None, 64)
    return model, task


@pytest.mark.parametrize("arch", ["llama", "gpt2", "t5"])
def test_training_the_prompt_changes_generation_and_batches_equal_rows_alone(arch: str) -> None:
    model, task = _setup(arch)
    model.train_adapter("p")
    example = {"prompt": "translate to spanish : the red cat", "response": "el gato rojo"}
    batch = task.collate([task.encode(example)])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    losses = []
    model.eval()  # no dropout: the loss moves by the prompt alone
    for _ in range(15):
        loss = task.loss(task.forward(model, "p", batch), batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.02
    prompts = [task.prompt_ids({"prompt": p}) for p in PROMPTS]
    options = DecodeOptions(max_new_tokens=5, batch_size=8)
    batched = generate_texts(model, task.tokenizer, prompts, "p", options)
    alone = [generate_texts(model, task.tokenizer, [p], "p", options)[0] for p in prompts]
    base = generate_texts(model, task.tokenizer, prompts, None, options)
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.text for g in batched] != [g.text for g in base]
    assert [g.prompt_tokens for g in batched] == [len(p) for p in prompts]  # the user's own


def test_stop_strings_and_streaming_see_the_continuation_only() -> None:
    model, task = _setup("llama")
    with torch.no_grad():
        model.adapter_parameters("p")["adapter.model.embed_tokens.embedding"].normal_(0, 1.0)
    prompts = [task.prompt_ids({"prompt": "hello"})]
    full = generate_texts(model, task.tokenizer, prompts, "p", DecodeOptions(max_new_tokens=8))[0]
    words = full.text.split()
    assert len(words) >= 2, full.text
    stop = words[1]
    options = DecodeOptions(max_new_tokens=8, stop=(stop,))
    cut = generate_texts(model, task.tokenizer, prompts, "p", options)[0]
    assert cut.finish_reason == "stop" and full.text.startswith(cut.text) and stop not in cut.text
    assert "hello" not in full.text
    kept = generate_texts(model, task.tokenizer, prompts, "p", DecodeOptions(8, stop=("hello",)))[0]
    assert kept.text == full.text  # the caller's prompt "hello" is not what was generated
    out = io.StringIO()
    streamer = StopStreamer(task.tokenizer, options.stop, out)
    streamed = generate_texts(model, task.tokenizer, prompts, "p", options, streamer)[0]
    assert out.getvalue().rstrip("\n").strip() == streamed.text.strip() == cut.text.strip()
