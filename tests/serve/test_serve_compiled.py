"""``serve --compile`` (a real server subprocess): rows routed by index through one compiled
graph answer as each adapter alone, and a bundle that cannot be routed by index is skipped
with its reason."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.serve.conftest import Served, add_random_adapter, close, dumps

from adapterkit.predict import predict_raw
from adapterkit.serve.launch import running_server
from adapterkit.tasks import make_task, task_from_info

INPUTS = {
    "topic": ["the ball was great", "my bread and cheese", "code robot today"],
    "tags": ["apple team today", "very great code"],
    "ner": ["john was in paris today", "the john the london"],
    "qa": [{"question": "who was great", "context": "john was great in paris today"}],
}


@pytest.fixture(scope="module")
def served(encoder_bundles: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    root = tmp_path_factory.mktemp("serve-compiled")
    adapters = root / "adapters"
    shutil.copytree(encoder_bundles.adapters, adapters)
    model = encoder_bundles.model  # the session's model: the prefix adapter leaves it again
    topic = make_task("sequence-classification", encoder_bundles.tokenizer, ["a", "b"], 48)
    add_random_adapter(model, "pre", "prefix", topic, 9, adapters, prefix_length=2)
    model.delete_adapter("pre")
    log = root / "server.log"
    args = ["--model", str(encoder_bundles.model_dir), "--adapters", str(adapters), "--compile"]
    args += ["--max-wait-ms", "50", "--threads", "1"]
    with running_server(args, log) as url, httpx.Client(base_url=url, timeout=300) as client:
        yield client, log


def test_compiled_server_answers_as_each_adapter_alone(encoder_bundles: Served, served) -> None:
    client, log = served
    assert client.get("/health").json()["compiled"] is True
    rows = {row["name"] for row in client.get("/v1/adapters").json()["adapters"]}
    assert rows == {"ner", "plain", "qa", "tags", "topic"}
    text = log.read_text()
    assert "skipped bundle pre" in text and "cannot be routed by index" in text
    model = encoder_bundles.model
    want = {
        name: predict_raw(
            model, name, task_from_info(model.task_info[name], encoder_bundles.tokenizer), inputs
        )
        for name, inputs in INPUTS.items()
    }

    def ask(name: str) -> tuple[str, int, object]:
        answer = client.post("/v1/predict", json={"adapter": name, "inputs": INPUTS[name]})
        return name, answer.status_code, answer.json()

    with ThreadPoolExecutor(8) as pool:  # concurrent: batches mix the adapters
        answers = list(pool.map(ask, list(INPUTS) * 3))
    for name, status, body in answers:
        assert status == 200, body
        assert close(body["predictions"], want[name]), (name, dumps(body))
