"""The official ``openai`` client (a test-only dependency) against ``adapterkit serve``.

Models listed as vLLM lists LoRA adapters; completions and chat completions, plain and
streamed, give what generating the same prompt alone in-process gives; an option the
server does not implement is refused, never ignored.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.serve.conftest import Served, alone

from adapterkit.serve.generation import chat_prompt
from adapterkit.serve.launch import running_server

openai = pytest.importorskip("openai")
NEW = 6
MESSAGES = [{"role": "user", "content": "the ball was"}]


@pytest.fixture(scope="module")
def client(decoder_bundles: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    log = tmp_path_factory.mktemp("serve-openai-log") / "server.log"
    args = ["--model", str(decoder_bundles.model_dir), "--adapters", str(decoder_bundles.adapters)]
    args += ["--kind", "causal-lm", "--max-new-tokens", "32"]
    with running_server(args, log) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_models_lists_the_base_and_its_adapters(client, decoder_bundles: Served) -> None:
    models = {m.id: m for m in client.models.list().data}
    base = str(decoder_bundles.model_dir)
    assert set(models) == {base, "A", "B"}
    assert models["A"].parent == base and models[base].parent is None


@pytest.mark.parametrize("stream", [False, True])
def test_completions_plain_and_streamed(client, decoder_bundles: Served, stream: bool) -> None:
    prompt = "john and the very great team"
    want = alone(decoder_bundles, "A", decoder_bundles.tokenizer(prompt)["input_ids"], NEW)
    answer = client.completions.create(
        model="A", prompt=prompt, max_tokens=NEW, temperature=0, stream=stream
    )
    text = "".join(c.choices[0].text for c in answer) if stream else answer.choices[0].text
    assert text == want


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completions_plain_and_streamed(client, decoder_bundles: Served, stream: bool) -> None:
    tokenizer = decoder_bundles.tokenizer
    prompt, has_specials = chat_prompt(tokenizer, MESSAGES)
    ids = tokenizer(prompt, add_special_tokens=not has_specials)["input_ids"]
    want = alone(decoder_bundles, "B", ids, NEW)
    answer = client.chat.completions.create(
        model="B", messages=MESSAGES, max_tokens=NEW, temperature=0, stream=stream
    )
    if stream:
        chunks = list(answer)
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    else:
        text = answer.choices[0].message.content
        assert answer.choices[0].message.role == "assistant" and answer.usage.completion_tokens > 0
    assert text == want


def test_options_not_implemented_are_refused_not_ignored(client) -> None:
    with pytest.raises(openai.UnprocessableEntityError, match="logprobs"):
        client.completions.create(model="A", prompt="the ball", max_tokens=2, logprobs=2)
    with pytest.raises(openai.UnprocessableEntityError, match="presence_penalty"):
        client.chat.completions.create(
            model="A", messages=MESSAGES, max_tokens=2, presence_penalty=0.5
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MESSAGES, max_tokens=2)


def test_chat_without_max_tokens_fits_what_the_context_has_left(
    client, decoder_bundles: Served
) -> None:
    """The tiny GPT-2 has 64 positions: 64 new tokens after a prompt would not fit, so the
    default takes what is left instead of refusing."""
    answer = client.chat.completions.create(model="A", messages=MESSAGES, temperature=0)
    prompt, has_specials = chat_prompt(decoder_bundles.tokenizer, MESSAGES)
    used = len(decoder_bundles.tokenizer(prompt, add_special_tokens=not has_specials)["input_ids"])
    assert answer.usage.prompt_tokens == used
    assert (
        1 <= answer.usage.completion_tokens <= decoder_bundles.model.base.config.n_positions - used
    )
