"""The server's batched path with prompt tuning: one base forward (or one ``generate``) for
rows of prompt bundles and other methods' bundles, each row answered as alone."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import torch
from tests.serve.conftest import Served, add_random_adapter, alone, close, dumps

from adapterkit.generation.batch import Sampling
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base
from adapterkit.padding import pad_token_id
from adapterkit.predict import predict_raw
from adapterkit.serve.compute import predict_rows
from adapterkit.serve.generation import generate_rows
from adapterkit.serve.jobs import GenerateJob
from adapterkit.tasks import make_task, task_from_info

TEXTS = ["the ball was great", "john was in paris today", "my bread and cheese", "code robot"]
QUESTION = {"question": "who was great", "context": "john was great in paris today"}


def test_one_forward_for_prompt_and_other_bundles(encoder_bundles: Served, tmp_path: Path) -> None:
    tokenizer = encoder_bundles.tokenizer
    writer = AdaptedModel(load_base(str(encoder_bundles.model_dir)))
    topics = make_task("sequence-classification", tokenizer, ["sport", "food", "tech"], 48)
    tags = make_task("token-classification", tokenizer, ["O", "B-PER", "I-PER", "B-LOC"], 48)
    add_random_adapter(writer, "ptopic", "prompt", topics, 21, tmp_path, num_virtual_tokens=5)
    add_random_adapter(writer, "pner", "prompt", tags, 22, tmp_path, num_virtual_tokens=3)
    qa = make_task("question-answering", tokenizer, None, 48)
    add_random_adapter(writer, "pqa", "prompt", qa, 24, tmp_path, num_virtual_tokens=4)

    model = AdaptedModel(load_base(str(encoder_bundles.model_dir))).eval()
    for name in ("topic", "ner"):  # a Pfeiffer and a LoRA bundle beside the prompts
        model.load_adapter(encoder_bundles.adapters / name)
    for name in ("ptopic", "pner", "pqa"):
        model.load_adapter(tmp_path / name)
    tasks = {name: task_from_info(model.task_info[name], tokenizer) for name in model.configs}
    names = ["ptopic", "ner", "pner", "pqa", "topic", "ptopic", "pner", "pqa"]
    raws = [QUESTION if name == "pqa" else TEXTS[i % len(TEXTS)] for i, name in enumerate(names)]
    rows = []
    for name, raw in zip(names, raws, strict=True):
        example = tasks[name].parse_input(raw)
        rows.append((name, tasks[name], example, tasks[name].encode(example)))
    registry = SimpleNamespace(
        model=model,
        pad_id=pad_token_id(tokenizer),
        device=torch.device("cpu"),
        kind="encoder",
        autocast=nullcontext,
    )
    with torch.no_grad():
        batched = predict_rows(registry, rows)
    for i, (name, raw) in enumerate(zip(names, raws, strict=True)):
        one = predict_raw(model, name, tasks[name], [raw])[0]
        assert close(batched[i], one), (name, dumps(batched[i]), dumps(one))
    # Spans are the user's words: the answer is text of the context.
    assert all(batched[i]["answer"] in QUESTION["context"] for i in (3, 7))
    ner_rows = [b for b, n in zip(batched, names, strict=True) if n == "pner"]
    assert all("entities" in answer for answer in ner_rows)


def test_one_generate_for_prompt_and_lora_bundles(decoder_bundles: Served, tmp_path: Path) -> None:
    model = decoder_bundles.model
    add_random_adapter(model, "P", "prompt", None, 23, None, num_virtual_tokens=4)
    try:
        prompts = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
        adapters = ["P", "A", "P"]
        jobs = [GenerateJob(a, p, 6, Sampling()) for a, p in zip(adapters, prompts, strict=True)]
        with torch.no_grad():
            batched = generate_rows(model, decoder_bundles.tokenizer, jobs, adapters)
        for job, result in zip(jobs, batched, strict=True):
            assert result.text == alone(decoder_bundles, job.adapter, job.prompt_ids), job.adapter
        assert batched[0].text != alone(decoder_bundles, None, prompts[0])
    finally:
        model.delete_adapter("P")
