"""A relation-extraction bundle served with no server change: the batched path (rows of an
RE bundle and a classification bundle in one forward) and the naive path answer exactly
as ``predict_raw`` does alone; a bad span is a 422 naming the input."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from tests.serve.conftest import WORDS, add_random_adapter, close
from tests.tiny import save_tiny_bert

from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer
from adapterkit.predict import predict_raw
from adapterkit.serve import ServeSettings, create_app
from adapterkit.serve.compute import predict_rows
from adapterkit.tasks import make_task

RELATIONS = ["born_in", "no_relation", "works_for"]
INPUTS = {
    "rel": [
        {"text": "john was in paris today", "head": [0, 4], "tail": [12, 17]},
        {"text": "the team was in london", "head": [16, 22], "tail": [4, 8]},  # head after tail
        {"text": "my code", "head": {"start": 3, "end": 7}, "tail": [0, 2]},
    ],
    "topic": ["the ball was great", "my bread and cheese"],
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("serve-re")
    model_dir = save_tiny_bert(root / "bert", WORDS, seed=0)
    tokenizer = load_tokenizer(str(model_dir))
    model = AdaptedModel(load_base(str(model_dir)), name_or_path=str(model_dir))
    adapters = root / "adapters"
    rel = make_task("relation-extraction", tokenizer, RELATIONS, 48)
    add_random_adapter(model, "rel", "lora", rel, 1, adapters)
    add_random_adapter(model, "rel2", "pfeiffer", rel, 3, adapters)  # other marker rows
    topic = make_task("sequence-classification", tokenizer, ["sport", "food", "tech"], 48)
    add_random_adapter(model, "topic", "pfeiffer", topic, 2, adapters)
    model.eval()
    want = {
        "rel": predict_raw(model, "rel", rel, INPUTS["rel"]),
        "rel2": predict_raw(model, "rel2", rel, INPUTS["rel"]),
        "topic": predict_raw(model, "topic", topic, INPUTS["topic"]),
    }
    return model_dir, adapters, want


@pytest.mark.parametrize("naive", [False, True])
def test_an_re_bundle_answers_like_predict_raw(bundles, naive: bool) -> None:
    model_dir, adapters, want = bundles
    assert want["rel"][0]["relation"] in RELATIONS and set(want["rel"][0]["scores"]) == set(
        RELATIONS
    )
    settings = ServeSettings(model=str(model_dir), adapters=adapters, naive=naive, max_wait_ms=20)
    with TestClient(create_app(settings)) as client:

        def ask(name: str) -> bool:
            answer = client.post("/v1/predict", json={"adapter": name, "inputs": INPUTS[name]})
            return answer.status_code == 200 and close(answer.json()["predictions"], want[name])

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(ask, ["rel", "topic"] * 4))
        bad = {"text": "john was in paris", "head": [0, 4], "tail": [2, 9]}
        answer = client.post("/v1/predict", json={"adapter": "rel", "inputs": [bad]})
        assert answer.status_code == 422
        assert answer.json()["detail"].startswith("input 0: ") and "overlap" in answer.text
        plain = client.post("/v1/predict", json={"adapter": "rel", "inputs": ["john"]})
        assert plain.status_code == 422 and "'head': [start, end]" in plain.text
        if not naive:  # one forward over interleaved rows of both bundles, deterministically
            registry = client.app.state.registry
            rows = []
            for i in range(2):
                for name in ("rel", "topic", "rel2"):
                    task = registry.entries[name].task
                    example = task.parse_input(INPUTS[name.rstrip("2")][i])
                    rows.append((name, task, example, task.encode(example)))
            with torch.no_grad():
                answers = predict_rows(registry, rows)
            want_rows = [want[name][i] for i in range(2) for name in ("rel", "topic", "rel2")]
            assert want_rows[0] != want_rows[2]  # the two RE bundles answer differently
            assert close(answers, want_rows)
