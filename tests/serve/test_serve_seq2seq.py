"""Generation on an encoder-decoder (a tiny T5) through the real server: ``--kind seq2seq``.

Prompts for different adapters share one ``generate`` call; each answer must equal
generating that prompt alone in-process (greedy), as for decoders.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch
from tests.generation.conftest import lm_model, word_tokenizer
from tests.serve.conftest import Served, add_random_adapter

from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer
from adapterkit.serve.launch import running_server

PROMPTS = {"A": "translate to spanish : the cat", "B": "the red apple", None: "my dog"}
NEW = 5


@pytest.fixture(scope="module")
def t5_bundles(tmp_path_factory: pytest.TempPathFactory) -> Served:
    root = tmp_path_factory.mktemp("serve-t5")
    tokenizer = word_tokenizer(chat=False, eos_suffix=True)
    lm_model("t5", tokenizer).save_pretrained(root / "t5")
    tokenizer.save_pretrained(root / "t5")
    model_dir = root / "t5"
    model = AdaptedModel(load_base(str(model_dir), "seq2seq"), name_or_path=str(model_dir))
    adapters = root / "adapters"
    for name, method, seed in (("A", "lora", 1), ("B", "pfeiffer", 2)):
        add_random_adapter(model, name, method, None, seed, adapters)
        model.task_info[name] = {"type": "seq2seq"}
        model.save_adapter(name, adapters / name)
    return Served(model_dir, adapters, model.eval(), load_tokenizer(str(model_dir)))


def _alone(served: Served, adapter: str | None, prompt: str) -> str:
    ids = served.tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        out = served.model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            adapter=adapter,
            max_new_tokens=NEW,
            do_sample=False,
        )[0, 1:].tolist()  # the decoder sequence starts with its start token
    eos = served.tokenizer.eos_token_id
    return served.tokenizer.decode(
        out[: out.index(eos)] if eos in out else out, skip_special_tokens=True
    )


@pytest.fixture(scope="module")
def served(t5_bundles: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    log = tmp_path_factory.mktemp("serve-t5-log") / "server.log"
    args = ["--model", str(t5_bundles.model_dir), "--adapters", str(t5_bundles.adapters)]
    args += ["--kind", "seq2seq", "--max-wait-ms", "150", "--max-new-tokens", "16"]
    with running_server(args, log) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def test_mixed_adapter_batch_equals_each_alone(served: httpx.Client, t5_bundles: Served) -> None:
    want = {a: _alone(t5_bundles, a, p) for a, p in PROMPTS.items()}
    assert len(set(want.values())) == 3, want  # the adapters really differ
    listed = {row["name"]: row for row in served.get("/v1/adapters").json()["adapters"]}
    assert {listed[n]["task"] for n in ("A", "B")} == {"seq2seq"}
    before = served.get("/health").json()

    def ask(adapter: str | None) -> dict:
        body = {"adapter": adapter, "prompt": PROMPTS[adapter], "max_new_tokens": NEW}
        return served.post("/v1/generate", json=body).json()

    with ThreadPoolExecutor(3) as pool:
        answers = dict(zip(PROMPTS, pool.map(ask, PROMPTS), strict=True))
    assert served.get("/health").json()["mixed_batches"] > before["mixed_batches"]
    for adapter, answer in answers.items():
        assert answer["text"] == want[adapter], (adapter, answer)


def test_completions_answer_from_a_seq2seq_adapter(
    served: httpx.Client, t5_bundles: Served
) -> None:
    body = {"model": "A", "prompt": [PROMPTS["B"]], "max_tokens": NEW, "temperature": 0}
    response = served.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["text"] == _alone(t5_bundles, "A", PROMPTS["B"])


def test_an_encoder_server_points_to_the_seq2seq_kind(tmp_path: Path, t5_bundles: Served) -> None:
    log = tmp_path / "server.log"
    empty = tmp_path / "none"
    empty.mkdir()
    args = ["--model", str(t5_bundles.model_dir), "--adapters", str(empty)]
    with running_server(args, log) as url, httpx.Client(base_url=url, timeout=60) as client:
        response = client.post("/v1/generate", json={"prompt": "the cat"})
    assert response.status_code == 400 and "seq2seq" in response.json()["detail"]
