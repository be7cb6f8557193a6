"""Generation through the real server on a tiny GPT-2 with two LoRA bundles.

Prompts for different adapters share one ``generate`` call (left-padded); each
continuation must equal generating that prompt alone in-process (greedy).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.serve.conftest import Served, alone

from adapterkit.serve.launch import running_server

PROMPTS = {"A": "the ball was", "B": "john and the very great team of paris", None: "my apple"}
NEW = 6


@pytest.fixture(scope="module")
def served(decoder_bundles: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    log = tmp_path_factory.mktemp("serve-gen-log") / "server.log"
    args = ["--model", str(decoder_bundles.model_dir), "--adapters", str(decoder_bundles.adapters)]
    args += ["--kind", "causal-lm", "--max-wait-ms", "150", "--max-new-tokens", "32"]
    args += ["--max-chars", "120"]
    with running_server(args, log) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def _good(client: httpx.Client, decoder_bundles: Served) -> None:
    response = client.post(
        "/v1/generate", json={"adapter": "A", "prompt": PROMPTS["A"], "max_new_tokens": NEW}
    )
    assert response.status_code == 200, response.text
    ids = decoder_bundles.tokenizer(PROMPTS["A"])["input_ids"]
    assert response.json()["text"] == alone(decoder_bundles, "A", ids)


def test_mixed_adapter_batch_equals_each_alone(
    served: httpx.Client, decoder_bundles: Served
) -> None:
    tokenizer = decoder_bundles.tokenizer
    want = {a: alone(decoder_bundles, a, tokenizer(p)["input_ids"]) for a, p in PROMPTS.items()}
    assert len(set(want.values())) == 3  # the adapters really differ
    before = served.get("/health").json()

    def ask(adapter: str | None) -> dict:
        body = {"adapter": adapter, "prompt": PROMPTS[adapter], "max_new_tokens": NEW}
        return served.post("/v1/generate", json=body).json()

    with ThreadPoolExecutor(3) as pool:
        answers = dict(zip(PROMPTS, pool.map(ask, PROMPTS), strict=True))
    after = served.get("/health").json()
    assert after["mixed_batches"] > before["mixed_batches"]  # they shared a generate call
    for adapter, answer in answers.items():
        assert answer["text"] == want[adapter], (adapter, answer)
        assert answer["adapter"] == adapter and answer["finish_reason"] in ("stop", "length")
        assert answer["usage"]["prompt_tokens"] == len(tokenizer(PROMPTS[adapter])["input_ids"])


def test_completions_is_openai_shaped(served: httpx.Client, decoder_bundles: Served) -> None:
    prompts = [PROMPTS["A"], PROMPTS["B"]]
    body = {"model": "B", "prompt": prompts, "max_tokens": NEW, "temperature": 0}
    response = served.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["object"] == "text_completion" and data["model"] == "B"
    assert data["id"].startswith("cmpl-") and isinstance(data["created"], int)
    assert [c["index"] for c in data["choices"]] == [0, 1]
    ids = [decoder_bundles.tokenizer(p)["input_ids"] for p in prompts]
    assert [c["text"] for c in data["choices"]] == [alone(decoder_bundles, "B", i) for i in ids]
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    base = served.post("/v1/completions", json={"prompt": "a", "max_tokens": 2}).json()
    assert base["model"] == str(decoder_bundles.model_dir)  # no model: the base alone


def test_messages_use_the_chat_template(served: httpx.Client, decoder_bundles: Served) -> None:
    messages = [{"role": "user", "content": "the ball"}]
    body = {"adapter": "B", "messages": messages, "max_new_tokens": NEW}
    response = served.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    tokenizer = decoder_bundles.tokenizer
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[1] != tokenizer.cls_token_id  # one BOS
    assert response.json()["text"] == alone(decoder_bundles, "B", ids)


def test_stop_strings_and_sampling(served: httpx.Client, decoder_bundles: Served) -> None:
    body = {"adapter": "A", "prompt": PROMPTS["A"], "max_new_tokens": NEW}
    full = served.post("/v1/generate", json=body).json()["text"]
    words = full.split()
    assert len(words) >= 2, full
    cut = served.post("/v1/generate", json={**body, "stop": [words[1]]}).json()
    assert cut["text"] == full[: full.find(words[1])] and cut["finish_reason"] == "stop"
    sampled = served.post("/v1/generate", json={**body, "temperature": 0.9, "top_p": 0.9})
    assert sampled.status_code == 200 and sampled.json()["usage"]["completion_tokens"] <= NEW


BAD = [
    ("/v1/generate", {"adapter": "cls", "prompt": "a"}, 400, "use /v1/predict"),
    ("/v1/predict", {"adapter": "A", "inputs": ["a"]}, 400, "generation adapter"),
    ("/v1/generate", {"adapter": "zz", "prompt": "a"}, 404, "no adapter named 'zz'"),
    ("/v1/completions", {"model": "zz", "prompt": "a"}, 404, "no adapter named 'zz'"),
    ("/v1/generate", {"prompt": "a", "max_new_tokens": 33}, 413, "--max-new-tokens"),
    ("/v1/generate", {"prompt": "ball " * 25}, 413, "--max-chars"),
    ("/v1/generate", {"prompt": "xqz " * 12, "max_new_tokens": 32}, 400, "context of 64"),
    ("/v1/generate", {"prompt": "a", "messages": [{"role": "user", "content": "a"}]}, 422, ""),
    ("/v1/generate", {"prompt": "a", "temperature": -1}, 422, ""),
    ("/v1/completions", {"prompt": []}, 422, "empty"),
    ("/v1/completions", {"prompt": "a", "n": 2}, 422, ""),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "says"), BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_generation_requests_fail_alone(
    served: httpx.Client, decoder_bundles: Served, path: str, body: dict, status: int, says: str
) -> None:
    response = served.post(path, json=body)
    assert response.status_code == status, response.text
    if says:
        assert says in response.json()["detail"], response.text
    _good(served, decoder_bundles)


def test_classification_head_on_a_decoder(served: httpx.Client) -> None:
    response = served.post("/v1/predict", json={"adapter": "cls", "inputs": ["the ball", "apple"]})
    assert response.status_code == 200, response.text
    assert all(p["label"] in ("sport", "food", "tech") for p in response.json()["predictions"])
