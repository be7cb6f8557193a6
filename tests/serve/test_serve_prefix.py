"""Prefix and MAM bundles served with no server change (in-process, FastAPI's TestClient):
rows of a prefix, a MAM and a Pfeiffer bundle in one forward answer as each alone, and
prompts for a prefix and a LoRA bundle share one ``generate`` call yet continue as alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from tests.serve.conftest import (
    TOPICS,
    WORDS,
    Served,
    add_random_adapter,
    alone,
    close,
    save_tiny_gpt2,
)
from tests.tiny import save_tiny_bert

from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer
from adapterkit.predict import predict_raw
from adapterkit.serve import ServeSettings, create_app
from adapterkit.serve.compute import predict_rows
from adapterkit.tasks import make_task

INPUTS = ["the ball was great", "my bread and cheese", "code robot today"]
NAMES = ("prefix", "mam", "pfeiffer")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("serve-prefix")
    model_dir = save_tiny_bert(root / "bert", WORDS, seed=0)
    tokenizer = load_tokenizer(str(model_dir))
    model = AdaptedModel(load_base(str(model_dir)), name_or_path=str(model_dir))
    topic = make_task("sequence-classification", tokenizer, TOPICS, 48)
    adapters = root / "adapters"
    options = {"prefix": {"prefix_length": 4}, "mam": {"prefix_length": 3}, "pfeiffer": {}}
    for seed, name in enumerate(NAMES):
        add_random_adapter(model, name, name, topic, seed, adapters, **options[name])
    model.eval()
    want = {name: predict_raw(model, name, topic, INPUTS) for name in NAMES}
    return model_dir, adapters, want


def test_prefix_and_mam_bundles_answer_as_alone_in_mixed_batches(encoder) -> None:
    model_dir, adapters, want = encoder
    assert want["prefix"] != want["mam"]  # the bundles really differ
    settings = ServeSettings(model=str(model_dir), adapters=adapters, max_wait_ms=20)
    with TestClient(create_app(settings)) as client:

        def ask(name: str) -> bool:
            answer = client.post("/v1/predict", json={"adapter": name, "inputs": INPUTS})
            return answer.status_code == 200 and close(answer.json()["predictions"], want[name])

        with ThreadPoolExecutor(3) as pool:
            assert all(pool.map(ask, NAMES * 3))
        registry = client.app.state.registry  # one forward over interleaved rows, for sure
        rows = []
        for text in INPUTS:
            for name in NAMES:
                task = registry.entries[name].task
                example = task.parse_input(text)
                rows.append((name, task, example, task.encode(example)))
        with torch.no_grad():
            answers = predict_rows(registry, rows)
        assert close(answers, [want[name][i] for i in range(len(INPUTS)) for name in NAMES])


def test_prefix_generation_shares_a_batch_with_lora(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("serve-prefix-gen")
    model_dir = save_tiny_gpt2(root / "gpt2")
    tokenizer = load_tokenizer(str(model_dir))
    model = AdaptedModel(load_base(str(model_dir), "causal-lm"), name_or_path=str(model_dir))
    adapters = root / "adapters"
    add_random_adapter(model, "P", "prefix", None, 21, adapters, prefix_length=4)
    add_random_adapter(model, "A", "lora", None, 22, adapters, r=4)
    served = Served(model_dir, adapters, model.eval(), tokenizer)
    prompts = {"P": "the ball was", "A": "john and the very great team of paris", None: "my apple"}
    want = {a: alone(served, a, tokenizer(p)["input_ids"]) for a, p in prompts.items()}
    assert want["P"] != want[None]
    settings = ServeSettings(
        model=str(model_dir), adapters=adapters, kind="causal-lm", max_wait_ms=150
    )
    with TestClient(create_app(settings)) as client:

        def ask(adapter: str | None) -> str:
            body = {"adapter": adapter, "prompt": prompts[adapter], "max_new_tokens": 6}
            return client.post("/v1/generate", json=body).json()["text"]

        with ThreadPoolExecutor(3) as pool:
            answers = dict(zip(prompts, pool.map(ask, prompts), strict=True))
        assert client.get("/health").json()["mixed_batches"] >= 1
    assert answers == want
