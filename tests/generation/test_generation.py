"""Batched generation, adapters changing generations, stop strings, streaming, evaluation."""

from __future__ import annotations

import io

import pytest
import torch
from tests.generation.conftest import lm_model, word_tokenizer

from adapterkit.errors import BundleError, DataError
from adapterkit.generation import (
    DecodeOptions,
    StopStreamer,
    add_shots,
    evaluate_generation,
    generate_texts,
    pick_shots,
)
from adapterkit.generation.decode import context_room
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.tasks import make_task

PROMPTS = [
    "translate to spanish : the red cat",
    "hello",
    "summarize this paper we propose a method",
]
ARCHS = ["llama", "gpt2", "t5"]


def _setup(arch: str, chat: bool = False):
    tokenizer = word_tokenizer(chat=chat, eos_suffix=arch == "t5")
    model = AdaptedModel(lm_model(arch, tokenizer))
    task = make_task("seq2seq" if arch == "t5" else "causal-lm", tokenizer, None, 64)
    return model, task


@pytest.mark.parametrize("arch", ARCHS)
def test_left_padded_batch_equals_one_by_one(arch: str) -> None:
    model, task = _setup(arch)
    model.add_adapter("a", make_config("lora"))
    with torch.no_grad():  # a non-zero LoRA so the adapter really runs in every row
        for name, param in model.adapter_parameters("a").items():
            param.normal_(0, 0.3, generator=torch.Generator().manual_seed(len(name)))
    prompts = [task.prompt_ids({"prompt": p}) for p in PROMPTS]
    options = DecodeOptions(max_new_tokens=6, batch_size=8)
    batched = generate_texts(model, task.tokenizer, prompts, "a", options)
    alone = [generate_texts(model, task.tokenizer, [p], "a", options)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert all(g.completion_tokens >= 1 for g in batched)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_training_step_makes_the_adapter_generate_differently(arch: str) -> None:
    model, task = _setup(arch)
    model.add_adapter("a", make_config("lora"))
    model.train_adapter("a")
    example = {"prompt": "translate to spanish : the red cat", "response": "el gato rojo"}
    batch = task.collate([task.encode(example)])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    prompts = [task.prompt_ids(example)]
    options = DecodeOptions(max_new_tokens=4)
    before = generate_texts(model, task.tokenizer, prompts, "a", options)[0].text
    model.train()
    losses = []
    for _ in range(15):
        loss = task.loss(task.forward(model, "a", batch), batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    base = generate_texts(model, task.tokenizer, prompts, None, options)[0].text
    adapted = generate_texts(model, task.tokenizer, prompts, "a", options)[0].text
    assert before == base  # a fresh LoRA (B = 0) changes nothing
    assert adapted != base
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_an_adapter_whose_scores_overflow_is_refused_by_name(arch: str, temperature: float) -> None:
    """Greedy decoding of NaN scores picks token 0 as if answering, and sampling crashes:
    both end in the adapter's BundleError instead."""
    model, task = _setup(arch)
    model.add_adapter("huge", make_config("lora"))
    with torch.no_grad():  # finite weights whose products overflow float32
        for param in model.adapter_parameters("huge").values():
            param.fill_(1e30)
    prompts = [task.prompt_ids({"prompt": p}) for p in PROMPTS]
    options = DecodeOptions(max_new_tokens=3, temperature=temperature)
    with pytest.raises(BundleError, match="adapter 'huge' gives scores that are not finite"):
        generate_texts(model, task.tokenizer, prompts, "huge", options)
    assert len(generate_texts(model, task.tokenizer, prompts, None, options)) == len(prompts)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_generation_stops_where_the_bases_positions_end(arch: str) -> None:
    """Past its 64 positions GPT-2 had no position embedding left (an index error) and
    Llama wrote on regardless: each batch now ends where its longest prompt leaves room.
    T5's relative positions have no end."""
    model, task = _setup(arch)
    prompts = [task.prompt_ids({"prompt": p}) for p in PROMPTS]
    options = DecodeOptions(max_new_tokens=10_000, batch_size=8)
    generations = generate_texts(model, task.tokenizer, prompts, None, options)
    room = 64 - max(len(p) for p in prompts)
    assert all(1 <= g.completion_tokens <= room for g in generations)
    assert context_room(model, 10) == 54
    with pytest.raises(DataError, match="fills the base's context of 64 positions"):
        context_room(model, 64)
    assert context_room(_setup("t5")[0], 10_000) is None


def test_stop_strings_cut_and_streaming_prints_the_same_text() -> None:
    model, task = _setup("llama")
    prompts = [task.prompt_ids({"prompt": "hello"})]
    full = generate_texts(model, task.tokenizer, prompts, None, DecodeOptions(max_new_tokens=8))[0]
    words = full.text.split()
    stop = " ".join(words[2:4])
    options = DecodeOptions(max_new_tokens=8, stop=(stop,))
    cut = generate_texts(model, task.tokenizer, prompts, None, options)[0]
    assert cut.finish_reason == "stop"
    assert full.text.startswith(cut.text)
    assert stop not in cut.text
    out = io.StringIO()
    streamed = generate_texts(
        model,
        task.tokenizer,
        prompts,
        None,
        options,
        StopStreamer(task.tokenizer, options.stop, out),
    )[0]
    assert out.getvalue().rstrip("\n").strip() == streamed.text.strip() == cut.text.strip()


def test_sampling_is_seeded() -> None:
    model, task = _setup("gpt2")
    prompts = [task.prompt_ids({"prompt": p}) for p in PROMPTS]
    options = DecodeOptions(max_new_tokens=6, temperature=1.5, top_p=0.9, seed=3)
    first = [g.text for g in generate_texts(model, task.tokenizer, prompts, None, options)]
    again = [g.text for g in generate_texts(model, task.tokenizer, prompts, None, options)]
    assert first == again


@pytest.mark.parametrize("chat", [False, True])
def test_evaluate_generation_reports_every_metric_and_samples(chat: bool) -> None:
    model, task = _setup("llama", chat=chat)
    examples = [
        {"prompt": "translate to spanish : the cat", "response": "el gato", "reference": "el gato"},
        {
            "prompt": "translate to spanish : the dog",
            "response": "el perro",
            "references": ["el perro", "un perro"],
        },
    ]
    shots = pick_shots(examples, 1, seed=0)
    shot = add_shots(examples[1], shots)
    assert shot["messages"][-1]["role"] == "user" and shot["references"] == ["el perro", "un perro"]
    metrics, loss = evaluate_generation(model, None, task, examples, batch_size=2, shots=shots)
    for key in ("perplexity", "rouge1", "rouge2", "rougeL", "bleu", "chrf", "exact_match", "f1"):
        assert key in metrics
    assert loss is not None and metrics["perplexity"] > 1
    assert [s["reference"] for s in metrics["samples"]] == ["el gato", "el perro"]
    assert "1-shot" in metrics["decoding"]
    # capped by the longest reference (2 words) plus the margin
    assert metrics["decoding"].endswith("max_new_tokens 10, 1-shot")


def test_generating_over_many_batches_shows_progress(capsys) -> None:
    """A list longer than one batch draws a bar on stderr; one batch draws none."""
    model, task = _setup("llama")
    prompts = [task.prompt_ids({"prompt": p}) for p in PROMPTS]
    generate_texts(
        model, task.tokenizer, prompts, None, DecodeOptions(max_new_tokens=2, batch_size=1)
    )
    assert "generate" in capsys.readouterr().err
    generate_texts(
        model, task.tokenizer, prompts, None, DecodeOptions(max_new_tokens=2, batch_size=8)
    )
    assert "generate" not in capsys.readouterr().err
