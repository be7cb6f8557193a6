"""Every bad request and hostile bundle of the corpus is answered 4xx with a JSON
``detail``, and leaves the server as it was: healthy, the same adapters loaded, and
the good adapter answering exactly as before."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from tests.fuzz.bundle_mutations import OVERFLOW
from tests.fuzz.http_corpus import BUNDLES, REQUESTS, Request
from tests.serve.conftest import Served, close, decoder_bundles, encoder_bundles  # noqa: F401

from adapterkit.bundle import CONFIG_FILE
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base
from adapterkit.serve import ServeSettings, create_app

PROBE = {"adapter": "topic", "inputs": ["the ball was great", "my bread and cheese"]}
GENERATION = {"generate", "completions"}


class Server:
    """An in-process app over a private copy of a bundles folder, and what it answered
    before any attack."""

    def __init__(self, client: TestClient, adapters: Path, probe: Any) -> None:
        self.client, self.adapters, self.probe = client, adapters, probe
        self.loaded = self.names()

    def names(self) -> list[str]:
        response = self.client.get("/v1/adapters")
        assert response.status_code == 200, response.text
        return sorted(row["name"] for row in response.json()["adapters"])

    def check_unharmed(self) -> None:
        assert self.client.get("/health").status_code == 200
        assert self.names() == self.loaded
        if self.probe is not None:
            assert self.client.post("/v1/predict", json=PROBE).json() == self.probe


def _server(served: Served, tmp: Path, kind: str) -> Iterator[Server]:
    adapters = shutil.copytree(served.adapters, tmp / "adapters")
    settings = ServeSettings(model=str(served.model_dir), adapters=adapters, kind=kind)
    with TestClient(create_app(settings)) as client:
        probe = client.post("/v1/predict", json=PROBE).json() if kind == "encoder" else None
        yield Server(client, adapters, probe)


@pytest.fixture(scope="module")
def encoder_server(encoder_bundles: Served, tmp_path_factory) -> Iterator[Server]:  # noqa: F811
    yield from _server(encoder_bundles, tmp_path_factory.mktemp("fuzz-enc"), "encoder")


@pytest.fixture(scope="module")
def decoder_server(decoder_bundles: Served, tmp_path_factory) -> Iterator[Server]:  # noqa: F811
    yield from _server(decoder_bundles, tmp_path_factory.mktemp("fuzz-dec"), "causal-lm")


def assert_refused(response: Any) -> None:
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    detail = response.json()["detail"]
    assert detail and isinstance(detail, str | list), detail


@pytest.mark.parametrize("case", REQUESTS, ids=[r.id for r in REQUESTS])
def test_bad_request(case: Request, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue(
        "decoder_server" if case.klass in GENERATION else "encoder_server"
    )
    if case.raw is not None:
        headers = {"content-type": "application/json"}
        response = server.client.request(case.method, case.path, content=case.raw, headers=headers)
    elif case.body is not None:
        response = server.client.request(case.method, case.path, json=case.body)
    else:
        response = server.client.request(case.method, case.path)
    assert_refused(response)
    server.check_unharmed()


@pytest.mark.parametrize("mutation", sorted(BUNDLES))
def test_hostile_bundle(mutation: str, encoder_server: Server) -> None:
    name = "m-" + mutation
    folder = shutil.copytree(encoder_server.adapters / "topic", encoder_server.adapters / name)
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["name"] = name
    BUNDLES[mutation](config, folder)
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    for _ in range(2):  # the second try gets the same refusal: the first left no trace
        response = encoder_server.client.post("/v1/adapters", json={"name": name})
        assert_refused(response)
        assert response.status_code != 409, response.text
        encoder_server.check_unharmed()


def test_bundle_with_base_weights_is_refused(encoder_server: Server, encoder_bundles) -> None:  # noqa: F811
    """A full fine-tuning bundle would overwrite the one base every adapter shares."""
    model = AdaptedModel(load_base(str(encoder_bundles.model_dir)))
    model.add_adapter("full", make_config("full"), task={"type": "sequence-classification"})
    with torch.no_grad():
        for param in model.base.parameters():
            param.add_(1.0)
    model.save_adapter("full", encoder_server.adapters / "full", include_base=True)
    response = encoder_server.client.post("/v1/adapters", json={"name": "full"})
    assert response.status_code == 422 and "base weights" in response.json()["detail"]
    encoder_server.check_unharmed()


def test_head_for_another_width_is_refused(encoder_server: Server) -> None:
    folder = shutil.copytree(encoder_server.adapters / "topic", encoder_server.adapters / "wide")
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["name"], config["head"]["config"]["hidden_size"] = "wide", 64
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    response = encoder_server.client.post("/v1/adapters", json={"name": "wide"})
    assert response.status_code == 422 and "width 64" in response.json()["detail"]
    encoder_server.check_unharmed()


def _overflowing_copy(server: Server, source: str, name: str) -> None:
    """Load a copy of adapter ``source`` whose weights are finite but overflow float32."""
    folder = shutil.copytree(server.adapters / source, server.adapters / name)
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["name"] = name
    OVERFLOW(config, folder)
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    assert server.client.post("/v1/adapters", json={"name": name}).status_code == 201


def _side_by_side(client: TestClient, path: str, bodies: list[dict]) -> list[Any]:
    """POST every body at once, so the batcher may join them in one batch."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: client.post(path, json=body), bodies))


def test_adapter_whose_scores_overflow(encoder_server: Server) -> None:
    """A bundle with finite weights too large for float32 loads, but its scores would be
    NaN (not JSON): its requests are refused 422 naming it, alone or in a batch beside a
    good adapter's, and the good adapter answers as before."""
    _overflowing_copy(encoder_server, "topic", "overflow")
    try:
        bad = {**PROBE, "adapter": "overflow"}
        answers = _side_by_side(encoder_server.client, "/v1/predict", [bad, PROBE] * 2)
        for response in answers[0::2]:
            assert_refused(response)
            assert response.status_code == 422 and "'overflow'" in response.json()["detail"]
        # Batched beside other rows, padding differs: equal within float noise.
        assert all(close(response.json(), encoder_server.probe) for response in answers[1::2])
    finally:
        assert encoder_server.client.delete("/v1/adapters/overflow").status_code == 200
        shutil.rmtree(encoder_server.adapters / "overflow")
    encoder_server.check_unharmed()


GENERATIONS = {
    "/v1/generate": lambda adapter, temperature: {
        "adapter": adapter,
        "prompt": "hello",
        "max_new_tokens": 3,
        "temperature": temperature,
    },
    "/v1/chat/completions": lambda adapter, temperature: {
        "model": adapter,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 3,
        "temperature": temperature,
    },
}


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("path", sorted(GENERATIONS))
def test_generation_whose_scores_overflow(
    decoder_server: Server, path: str, temperature: float
) -> None:
    """Greedy decoding of NaN scores answered token 0 as if it were text, and sampling
    answered 500: both are the adapter's 422 now, and its batch neighbours still answer."""
    _overflowing_copy(decoder_server, "A", "overflow")
    try:
        body = GENERATIONS[path]
        answers = _side_by_side(
            decoder_server.client, path, [body("overflow", temperature), body("A", temperature)] * 2
        )
        for response in answers[0::2]:
            assert_refused(response)
            assert response.status_code == 422 and "'overflow'" in response.json()["detail"]
        assert all(response.status_code == 200 for response in answers[1::2])
    finally:
        assert decoder_server.client.delete("/v1/adapters/overflow").status_code == 200
        shutil.rmtree(decoder_server.adapters / "overflow")
    decoder_server.check_unharmed()
