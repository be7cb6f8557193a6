"""The server on the real MiniLM: random-weight bundles answer exactly as in-process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.serve.conftest import TOPICS, add_random_adapter, close

from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer
from adapterkit.predict import predict_raw
from adapterkit.serve.launch import running_server
from adapterkit.tasks import make_task

pytestmark = pytest.mark.real

TEXTS = ["Who wrote Hamlet?", "How far is the Moon?", "Where is the Eiffel Tower?"]
NER_TEXTS = ["John Smith flew from London to Paris ."]


def test_minilm_bundles_served_like_in_process(tmp_path: Path) -> None:
    tokenizer = load_tokenizer("minilm")
    model = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    adapters = tmp_path / "adapters"
    topic = make_task("sequence-classification", tokenizer, TOPICS, 64)
    ner = make_task(
        "token-classification", tokenizer, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], 64
    )
    add_random_adapter(model, "topic", "pfeiffer", topic, 1, adapters)
    add_random_adapter(model, "ner", "lora", ner, 2, adapters)
    add_random_adapter(model, "topic-ia3", "ia3", topic, 3, adapters)
    add_random_adapter(model, "ner-dora", "dora", ner, 4, adapters)
    want_topic = predict_raw(model, "topic", topic, TEXTS)
    want_ner = predict_raw(model, "ner", ner, NER_TEXTS)
    want_ia3 = predict_raw(model, "topic-ia3", topic, TEXTS)
    want_dora = predict_raw(model, "ner-dora", ner, NER_TEXTS)
    args = ["--model", "minilm", "--adapters", str(adapters)]
    with (
        running_server(args, tmp_path / "server.log", threads=None) as url,
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        got = client.post("/v1/predict", json={"adapter": "topic", "inputs": TEXTS})
        assert close(got.json()["predictions"], want_topic, 1e-3), got.text
        got = client.post("/v1/predict", json={"adapter": "ner", "inputs": NER_TEXTS})
        assert close(got.json()["predictions"], want_ner, 1e-3), got.text
        got = client.post("/v1/predict", json={"adapter": "topic-ia3", "inputs": TEXTS})
        assert close(got.json()["predictions"], want_ia3, 1e-3), got.text
        got = client.post("/v1/predict", json={"adapter": "ner-dora", "inputs": NER_TEXTS})
        assert close(got.json()["predictions"], want_dora, 1e-3), got.text
        names = {row["name"] for row in client.get("/v1/adapters").json()["adapters"]}
        assert names == {"topic", "ner", "topic-ia3", "ner-dora"}
