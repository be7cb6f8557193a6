"""The real server (a subprocess, as users start it) on a tiny BERT with five bundles.

Every answer must equal the answer computed alone in-process with ``predict_raw``,
whatever else shares its batch; bad requests get their status and hurt no one.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serve.conftest import Served, add_random_adapter, close, dumps

from adapterkit.predict import predict_raw
from adapterkit.serve.launch import running_server
from adapterkit.tasks import make_task, task_from_info

INPUTS: dict[str, list[Any]] = {
    "topic": ["the ball was great", "my bread and cheese", {"text": "code", "text_pair": "robot"}],
    "tags": ["apple team today", "very great code"],
    "ner": ["john was in paris today", ["london", "a", "goal"], "the john the london"],
    "qa": [
        {"question": "who was great", "context": "john was great in paris today"},
        {"question": "where", "context": "the team was in london"},
        # Longer than the bundle's max_length 48: several windows, merged into one answer.
        {"question": "where", "context": "x " * 50 + "the team was in london"},
    ],
}


@pytest.fixture(scope="module")
def served(encoder_bundles: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    args = ["--model", str(encoder_bundles.model_dir), "--adapters", str(encoder_bundles.adapters)]
    args += ["--max-inputs", "8", "--max-chars", "200", "--max-wait-ms", "20"]
    with running_server(args, log) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, log


@pytest.fixture(scope="module")
def expected(encoder_bundles: Served) -> dict[str, list[dict]]:
    """In-process answers, one adapter at a time."""
    model = encoder_bundles.model
    return {
        name: predict_raw(
            model, name, task_from_info(model.task_info[name], encoder_bundles.tokenizer), inputs
        )
        for name, inputs in INPUTS.items()
    }


def _check_good(client: httpx.Client, expected: dict, name: str = "topic") -> None:
    response = client.post("/v1/predict", json={"adapter": name, "inputs": INPUTS[name]})
    assert response.status_code == 200, response.text
    assert close(response.json()["predictions"], expected[name]), dumps(response.json())


def test_start_loads_matching_bundles_and_skips_the_rest(served: tuple) -> None:
    client, log = served
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["mode"] == "batched" and health["adapters"] == 5
    assert health["precision"] == "fp32"  # auto, with the suite's CPU bf16 switched off
    rows = {row["name"]: row for row in client.get("/v1/adapters").json()["adapters"]}
    assert sorted(rows) == ["ner", "plain", "qa", "tags", "topic"]
    assert rows["topic"]["task"] == "sequence-classification"
    assert (
        rows["topic"]["labels"] == ["sport", "food", "tech"]
        and rows["topic"]["method"] == "bottleneck"
    )
    assert rows["topic"]["size_bytes"] > 1000 and rows["topic"]["trainable_params"] > 0
    assert rows["plain"]["task"] == "causal-lm"
    text = log.read_text()
    assert "skipped bundle foreign" in text and "made for base" in text
    assert "skipped bundle broken" in text
    assert client.get("/docs").status_code == 200
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_each_adapter_answers_as_in_process(served: tuple, expected: dict, name: str) -> None:
    _check_good(served[0], expected, name)


def test_many_threads_mixed_adapters_each_get_their_own_answer(
    served: tuple, expected: dict
) -> None:
    client, _ = served
    before = client.get("/health").json()
    rng = random.Random(0)
    # (adapter or None, input index); None = no adapter given, which predict refuses (422).
    plan = [(rng.choice(["topic", "ner", "qa", "tags", None]), rng.randrange(2)) for _ in range(64)]

    def ask(item: tuple[str | None, int]) -> str | None:
        name, i = item
        body: dict[str, Any] = {"inputs": [INPUTS[name or "topic"][i]]}
        if name is not None:
            body["adapter"] = name
        response = client.post("/v1/predict", json=body)
        if name is None:
            return None if response.status_code == 422 else f"no adapter: {response.status_code}"
        if response.status_code != 200:
            return f"{name}: {response.status_code} {response.text}"
        got = response.json()["predictions"][0]
        return None if close(got, expected[name][i]) else f"{name}[{i}]: {dumps(got)}"

    with ThreadPoolExecutor(16) as pool:
        problems = [p for p in pool.map(ask, plan) if p]
    assert not problems, problems[:3]
    after = client.get("/health").json()
    assert after["mixed_batches"] > before["mixed_batches"]  # batches really mixed adapters
    assert after["largest_batch"] > 1


BAD_REQUESTS = [
    ("unknown adapter", {"adapter": "nope", "inputs": ["a"]}, 404, "no adapter named 'nope'"),
    ("empty inputs", {"adapter": "topic", "inputs": []}, 422, ""),
    ("too many inputs", {"adapter": "topic", "inputs": ["a"] * 9}, 413, "--max-inputs"),
    ("text too long", {"adapter": "topic", "inputs": ["ball " * 50]}, 413, "--max-chars"),
    ("wrong input shape", {"adapter": "topic", "inputs": [42]}, 422, "input 0"),
    ("empty text", {"adapter": "ner", "inputs": ["   "]}, 422, "no words"),
    ("qa without context", {"adapter": "qa", "inputs": ["why"]}, 422, "question"),
    ("head-less adapter", {"adapter": "plain", "inputs": ["a"]}, 400, "generation adapter"),
    ("missing adapter", {"inputs": ["a"]}, 422, ""),
]


@pytest.mark.parametrize(
    ("why", "body", "status", "says"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_predict_requests_fail_alone(
    served: tuple, expected: dict, why: str, body: dict, status: int, says: str
) -> None:
    client, _ = served
    response = client.post("/v1/predict", json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"] if says else True
    _check_good(client, expected)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/predict", b"{not json", 422),
        ("/v1/generate", b'{"prompt": "x"}', 400),  # an encoder base cannot generate
        ("/v1/completions", b'{"model": "topic", "prompt": "x"}', 400),
    ],
)
def test_malformed_and_wrong_endpoint(
    served: tuple, expected: dict, path: str, body: bytes, status: int
) -> None:
    client, _ = served
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    _check_good(client, expected)


def test_load_and_delete_while_serving(
    served: tuple, expected: dict, encoder_bundles: Served
) -> None:
    client, _ = served
    model, adapters = encoder_bundles.model, encoder_bundles.adapters
    task = make_task("sequence-classification", encoder_bundles.tokenizer, ["yes", "no"], 48)
    add_random_adapter(model, "late", "lora", task, 7, adapters)
    want = predict_raw(model, "late", task, ["the ball", "apple"])

    response = client.post("/v1/adapters", json={"name": "late"})
    assert response.status_code == 201, response.text
    assert response.json()["labels"] == ["yes", "no"]
    got = client.post("/v1/predict", json={"adapter": "late", "inputs": ["the ball", "apple"]})
    assert close(got.json()["predictions"], want), got.text
    assert client.post("/v1/adapters", json={"name": "late"}).status_code == 409  # already loaded
    assert client.delete("/v1/adapters/late").json() == {"deleted": "late"}
    assert client.post("/v1/predict", json={"adapter": "late", "inputs": ["a"]}).status_code == 404
    assert client.delete("/v1/adapters/late").status_code == 404
    for name, status, says in [
        ("foreign", 409, "made for base"),
        ("absent", 404, "no bundle"),
        ("broken", 422, "not valid JSON"),
        ("../bert", 400, "invalid adapter name"),
        ("..", 400, "invalid"),
        ("a/b", 400, "invalid"),
    ]:
        response = client.post("/v1/adapters", json={"name": name})
        assert response.status_code == status, (name, response.text)
        assert says in response.json()["detail"], response.text
        _check_good(client, expected)
    assert Path(adapters / "late").is_dir()  # deleting unloads; it never removes files
    shutil.rmtree(adapters / "late")  # leave the shared bundles folder as other modules expect
    model.delete_adapter("late")


def test_bf16_serving_gives_the_fp32_answers_closely(
    encoder_bundles: Served, expected: dict, tmp_path: Path
) -> None:
    args = ["--model", str(encoder_bundles.model_dir), "--adapters", str(encoder_bundles.adapters)]
    with (
        running_server([*args, "--precision", "bf16"], tmp_path / "log") as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        assert client.get("/health").json()["precision"] == "bf16"
        for name in ("topic", "ner"):
            got = client.post("/v1/predict", json={"adapter": name, "inputs": INPUTS[name]})
            assert got.status_code == 200, got.text
            assert close(got.json()["predictions"], expected[name], tol=0.05), dumps(got.json())
