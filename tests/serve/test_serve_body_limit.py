"""The request-body limit of the real server: a body too large is refused with 413 before
it is read whole, whether it says its length or comes in chunks; others pass untouched."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from tests.serve.conftest import Served

from adapterkit.serve.launch import running_server
from adapterkit.serve.settings import ServeSettings

LIMIT = 2000


@pytest.fixture(scope="module")
def served(encoder_bundles: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    log = tmp_path_factory.mktemp("serve-body-log") / "server.log"
    args = ["--model", str(encoder_bundles.model_dir), "--adapters", str(encoder_bundles.adapters)]
    args += ["--max-body-bytes", str(LIMIT)]
    with running_server(args, log) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def _body(chars: int) -> bytes:
    return json.dumps({"adapter": "topic", "inputs": ["ball " * (chars // 5)]}).encode()


def _chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), 500):
        yield body[start : start + 500]


def test_a_body_over_the_limit_is_413_with_or_without_its_length(served: httpx.Client) -> None:
    large = _body(3 * LIMIT)
    headers = {"content-type": "application/json"}
    for content in (large, _chunks(large)):  # Content-Length, then chunked
        response = served.post("/v1/predict", content=content, headers=headers)
        assert response.status_code == 413, response.text
        assert "--max-body-bytes" in response.json()["detail"]
    assert served.get("/health").status_code == 200  # the server goes on


def test_bodies_within_the_limit_pass_untouched(served: httpx.Client) -> None:
    small = _body(100)
    headers = {"content-type": "application/json"}
    plain = served.post("/v1/predict", content=small, headers=headers)
    chunked = served.post("/v1/predict", content=_chunks(small), headers=headers)
    assert plain.status_code == chunked.status_code == 200, (plain.text, chunked.text)
    assert plain.json() == chunked.json()


def test_the_default_limit_leaves_room_for_the_largest_allowed_request(tmp_path) -> None:
    settings = ServeSettings(model="minilm", adapters=tmp_path, max_inputs=4, max_chars=100)
    largest = json.dumps({"adapter": "a", "inputs": ["\u0001" * 100] * 4}).encode()
    assert len(largest) <= settings.body_limit < 10 * len(largest) + 65_536
