"""The naive baseline (``--naive``) answers exactly like the batched path, one job at a time.

In-process (FastAPI's TestClient) to keep the suite fast: the subprocess tests
already cover starting the server as users do.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from fastapi.testclient import TestClient
from tests.serve.conftest import Served, close

from adapterkit.predict import predict_raw
from adapterkit.serve import ServeSettings, create_app
from adapterkit.tasks import task_from_info


def test_naive_predict_matches_in_process(encoder_bundles: Served) -> None:
    settings = ServeSettings(
        model=str(encoder_bundles.model_dir), adapters=encoder_bundles.adapters, naive=True
    )
    model = encoder_bundles.model
    long_context = {"question": "where", "context": "x " * 50 + "the team was in london"}
    inputs = {"topic": ["the ball", "apple code"], "ner": ["john in paris"], "qa": [long_context]}
    want = {
        name: predict_raw(
            model, name, task_from_info(model.task_info[name], encoder_bundles.tokenizer), texts
        )
        for name, texts in inputs.items()
    }
    qa = task_from_info(model.task_info["qa"], encoder_bundles.tokenizer)
    assert len(qa.encode_windows(long_context)) > 1  # merged back into one answer below
    with TestClient(create_app(settings)) as client:
        plan = ["topic", "ner", "qa"] * 4

        def ask(name: str) -> bool:
            answer = client.post("/v1/predict", json={"adapter": name, "inputs": inputs[name]})
            return close(answer.json()["predictions"], want[name])

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(ask, plan))
        health = client.get("/health").json()
        assert health["mode"] == "naive" and health["mixed_batches"] == 0
        assert health["batches"] == len(plan) and health["largest_batch"] == 2
        assert (
            client.post("/v1/predict", json={"adapter": "nope", "inputs": ["a"]}).status_code == 404
        )
        app_model = client.app.state.registry.model
        assert app_model.default_adapter is None  # the switch is undone after each request


def test_naive_generation_matches_in_process(decoder_bundles: Served) -> None:
    settings = ServeSettings(
        model=str(decoder_bundles.model_dir),
        adapters=decoder_bundles.adapters,
        kind="causal-lm",
        naive=True,
    )
    tokenizer, model = decoder_bundles.tokenizer, decoder_bundles.model
    ids = tokenizer("the ball")["input_ids"]
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([ids]),
            adapter="B",
            max_new_tokens=4,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        )[0, len(ids) :].tolist()
    if tokenizer.eos_token_id in out:
        out = out[: out.index(tokenizer.eos_token_id)]
    with TestClient(create_app(settings)) as client:
        body = {"adapter": "B", "prompt": "the ball", "max_new_tokens": 4}
        answer = client.post("/v1/generate", json=body).json()
    assert answer["text"] == tokenizer.decode(out, skip_special_tokens=True)
