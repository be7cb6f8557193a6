"""Prompt tuning on every architecture of the matrix: per-row routing beside other methods,
outputs mapped back to the user's tokens (checked against soft tokens put in by hand),
generation with and without the KV cache, bundles with a head, init, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.tiny import ARCHS, main_output, tiny_inputs, tiny_model, tiny_tokenizer
from transformers import StoppingCriteria, StoppingCriteriaList

from adapterkit.errors import AdapterkitError
from adapterkit.heads import ClassificationHead, SpanQAHead, TokenClassificationHead
from adapterkit.host import AdapterHost
from adapterkit.methods import make_config
from adapterkit.methods.prompt import PromptEmbedding
from adapterkit.model import AdaptedModel

DECODERS = ["gpt2", "llama"]


def _rows(inputs: dict[str, torch.Tensor], row: int) -> dict[str, torch.Tensor]:
    return {k: v[row : row + 1] for k, v in inputs.items()}


def _randomise(model: AdaptedModel, name: str, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.adapter_parameters(name).values():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def _mixed_model(arch: str) -> AdaptedModel:
    """Two prompts of different lengths, a LoRA and a bottleneck adapter, all acting."""
    model = AdaptedModel(tiny_model(arch))
    model.add_adapter("A", make_config("prompt", num_virtual_tokens=3))
    model.add_adapter("B", make_config("prompt", num_virtual_tokens=5))
    model.add_adapter("L", make_config("lora"))
    model.add_adapter("P", make_config("pfeiffer", reduction_factor=4))
    for seed, name in enumerate("ABLP"):
        _randomise(model, name, seed)
    return model


def _by_hand(model: AdaptedModel, arch: str, name: str, inputs: dict[str, torch.Tensor]):
    """The base run on ``inputs_embeds`` with ``name``'s soft tokens put in front by hand
    (no adapterkit on the way): what prompting must reproduce, token for token."""
    soft = model.adapter_parameters(name)
    (tokens,) = soft.values()  # (k, C)
    k = tokens.shape[0]
    base = model.base
    table = base.get_encoder().embed_tokens if arch == "t5" else base.get_input_embeddings()
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    embeds = torch.cat([tokens.expand(len(ids), -1, -1), table.base_layer(ids)], dim=1)
    mask = torch.cat([torch.ones_like(mask[:, :k]), mask], dim=1)
    kwargs = {"inputs_embeds": embeds, "attention_mask": mask}
    if arch == "t5":
        kwargs["decoder_input_ids"] = inputs["decoder_input_ids"]
    elif arch == "roberta":  # RoBERTa counts tokens past its pad id (1); pads sit at 1
        real = torch.cat([torch.ones_like(ids[:, :k]), (ids != 1).long()], dim=1)
        kwargs["position_ids"] = torch.where(real == 1, 1 + real.cumsum(1), 1)
    with model.disable_adapters():
        return base(**kwargs, output_hidden_states=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_mixed_batch_with_lora_and_bottleneck_equals_rows_alone(arch: str) -> None:
    model = _mixed_model(arch)
    inputs = tiny_inputs(arch, batch=6)
    routes = ["A", None, "B", "L", "P", "B"]  # the last row is padded
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=routes))
        base = main_output(model(**inputs, adapter=None))
        for row, name in enumerate(routes):
            alone = main_output(model(**_rows(inputs, row), adapter=name))
            # Float rounding of sequences of other lengths (T5's logits reach ~4): 1e-4.
            torch.testing.assert_close(mixed[row : row + 1], alone, rtol=1e-4, atol=1e-4)
    assert mixed.shape == base.shape and torch.isfinite(mixed).all()
    for row, name in enumerate(routes):  # prompts act on their rows only
        changed = (mixed[row] - base[row]).abs().max().item()
        assert changed > 1e-3 if name else changed <= 1e-5, (row, name, changed)


@pytest.mark.parametrize("arch", ARCHS)
def test_outputs_are_the_users_tokens_with_the_prompt_in_front(arch: str) -> None:
    model = _mixed_model(arch)
    inputs = tiny_inputs(arch, batch=3)
    k = 5
    with torch.no_grad():
        out = model(**inputs, adapter="B", output_hidden_states=True)
        reference = _by_hand(model, arch, "B", inputs)
    length = inputs["input_ids"].shape[1]
    if arch == "t5":  # the encoder's outputs lose the prompt; the decoder's keep their length
        hidden, expected = out.encoder_hidden_states, reference.encoder_hidden_states
        assert out.encoder_last_hidden_state.shape[1] == length
        torch.testing.assert_close(out.logits, reference.logits, rtol=1e-5, atol=1e-5)
    else:
        hidden, expected = out.hidden_states, reference.hidden_states
        if arch in DECODERS:
            assert out.logits.shape[1] == length
            torch.testing.assert_close(out.logits, reference.logits[:, k:], rtol=1e-5, atol=1e-5)
        else:
            torch.testing.assert_close(
                out.last_hidden_state, reference.last_hidden_state[:, k:], rtol=1e-5, atol=1e-5
            )
    assert len(hidden) == len(expected)
    for got, want in zip(hidden, expected, strict=True):
        assert got.shape[1] == length
        torch.testing.assert_close(got, want[:, k:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_token_classification_and_qa_heads_read_the_users_tokens(arch: str) -> None:
    model = AdaptedModel(tiny_model(arch))
    model.add_adapter("tag", make_config("prompt", num_virtual_tokens=4))
    model.set_head("tag", TokenClassificationHead(32, 5))
    model.add_adapter("qa", make_config("prompt", num_virtual_tokens=2))
    model.set_head("qa", SpanQAHead(32))
    _randomise(model, "tag", 1)
    _randomise(model, "qa", 2)
    inputs = tiny_inputs(arch, batch=2)
    with torch.no_grad():
        for name in ("tag", "qa"):
            hidden = model(**inputs, adapter=name).last_hidden_state
            logits = model.head_logits(name, hidden, inputs["attention_mask"])
            assert logits.shape[:2] == inputs["input_ids"].shape  # one per user token
            by_hand = _by_hand(model, arch, name, inputs).last_hidden_state
            k = by_hand.shape[1] - hidden.shape[1]
            expected = model.head_logits(name, by_hand[:, k:], inputs["attention_mask"])
            torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", DECODERS)
def test_labels_logits_to_keep_and_gradients(arch: str) -> None:
    model = _mixed_model(arch)
    inputs = tiny_inputs(arch, batch=3)
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    out = model(**inputs, labels=labels, adapter="B")
    assert out.logits.shape[:2] == labels.shape
    # The base's own loss reads the user's labels only (the prompt's are -100); the first
    # user token is now predicted too, from the last soft token (as PEFT's prompt tuning).
    with torch.no_grad():
        logits = _by_hand(model, arch, "B", inputs).logits[:, 4:-1]  # k - 1 = 4 on
    reference = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
    torch.testing.assert_close(out.loss, reference, rtol=1e-5, atol=1e-5)
    mixed = model(**inputs, labels=labels, adapter=["A", "B", None])
    assert torch.isfinite(mixed.loss)
    mixed.loss.backward()
    for name in ("A", "B"):
        (param,) = model.adapter_parameters(name).values()
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    with torch.no_grad():
        kept = model(**inputs, adapter="A", logits_to_keep=2).logits
        full = model(**inputs, adapter="A").logits
    torch.testing.assert_close(kept, full[:, -2:], rtol=1e-5, atol=1e-5)


class _Widths(StoppingCriteria):
    """Records the width of the ids a stopping criterion is shown."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        self.widths.append(input_ids.shape[1])
        return torch.zeros(len(input_ids), dtype=torch.bool)


@pytest.mark.parametrize("arch", [*DECODERS, "t5"])
def test_generation_with_cache_equals_without_and_rows_alone(arch: str) -> None:
    model = _mixed_model(arch)
    ids = torch.tensor([[0, 5, 6, 7], [0, 0, 9, 10], [11, 12, 13, 14], [0, 15, 16, 17]])
    inputs = {
        "input_ids": ids,
        "attention_mask": (torch.arange(4) >= (ids == 0).sum(1, True)).long(),
    }
    routes = ["A", None, "B", "L"]
    settings = {"max_new_tokens": 5, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        watch = _Widths()
        cached = model.generate(
            **inputs, adapter=routes, stopping_criteria=StoppingCriteriaList([watch]), **settings
        )
        uncached = model.generate(**inputs, adapter=routes, use_cache=False, **settings)
        assert torch.equal(cached, uncached)
        for row, name in enumerate(routes):
            start = 0 if arch == "t5" else int((ids[row] == 0).sum())  # its left padding
            one = model.generate(
                **{k: v[row : row + 1, start:] for k, v in inputs.items()}, adapter=name, **settings
            )[0]
            # A row that ends early (EOS) is padded in the batch.
            assert torch.equal(cached[row, start : start + len(one)], one), (row, name)
        base = model.generate(**inputs, adapter=None, **settings)
    if arch != "t5":  # the caller sees its own prompt, then the continuation
        assert torch.equal(cached[:, :4], ids) and cached.shape[1] == 9
        assert watch.widths[0] == 5  # stopping criteria see the caller's ids, not the prompt's
    assert not torch.equal(cached[[0, 2]], base[[0, 2]])


@pytest.mark.parametrize("arch", DECODERS)
def test_generate_equals_greedy_decoding_by_forward_calls(arch: str) -> None:
    model = _mixed_model(arch)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        generated = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            adapter="B",
            max_new_tokens=4,
            do_sample=False,
            pad_token_id=0,
        )
        current = ids
        for _ in range(4):  # positions from the attention mask (generate) == ours (forward)
            logits = model(input_ids=current, adapter="B").logits
            current = torch.cat([current, logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(generated, current)


def test_bundle_round_trip_with_head_serves_in_a_mixed_batch(tmp_path: Path) -> None:
    model = AdaptedModel(tiny_model("bert"))
    task = {"type": "classification", "labels": ["x", "y", "z"]}
    model.add_adapter(
        "p", make_config("prompt", num_virtual_tokens=4), ClassificationHead(32, 3), task
    )
    _randomise(model, "p", 3)
    assert list(model.adapter_parameters("p")) == ["adapter.embeddings.word_embeddings.embedding"]
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        hidden = model(**inputs, adapter="p").last_hidden_state
        logits = model.head_logits("p", hidden, inputs["attention_mask"])
    path = model.save_adapter("p", tmp_path / "p")

    fresh = AdaptedModel(tiny_model("bert"))
    fresh.add_adapter("L", make_config("lora"))
    _randomise(fresh, "L", 4)
    name = fresh.load_adapter(path)
    assert fresh.configs[name].num_virtual_tokens == 4
    with torch.no_grad():
        mixed = fresh(**inputs, adapter=[name, "L", name]).last_hidden_state
        again = fresh.head_logits(name, mixed, inputs["attention_mask"])
    torch.testing.assert_close(again[[0, 2]], logits[[0, 2]], rtol=1e-5, atol=1e-5)

    fresh.delete_adapter(name)  # the embedding layer is unwrapped once no prompt is left
    assert not isinstance(fresh.base.get_input_embeddings(), AdapterHost)


def test_training_moves_only_the_prompt_and_head() -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("A", make_config("prompt", num_virtual_tokens=4), ClassificationHead(32, 3))
    model.add_adapter("other", make_config("prompt"))
    model.train_adapter("A")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    inputs = tiny_inputs("bert")
    for _ in range(2):
        hidden = model(**inputs, adapter="A").last_hidden_state
        loss = model.head_logits("A", hidden, inputs["attention_mask"]).logsumexp(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable and any("adapters.A.embedding" in n for n in changed)


def test_init_from_vocabulary_rows_or_text() -> None:
    base = tiny_model("bert")
    table = base.get_input_embeddings().weight.detach().clone()
    model = AdaptedModel(base)
    torch.manual_seed(7)
    model.add_adapter("v1", make_config("prompt", num_virtual_tokens=6))
    torch.manual_seed(7)
    model.add_adapter("v2", make_config("prompt", num_virtual_tokens=6))
    (v1,) = model.adapter_parameters("v1").values()
    (v2,) = model.adapter_parameters("v2").values()
    assert torch.equal(v1, v2)  # seeded
    assert all((table == row).all(1).any() for row in v1)  # each a row of the table

    tokenizer = tiny_tokenizer(["describe", "the", "topic"])
    config = make_config(
        "prompt", num_virtual_tokens=5, prompt_init="text", prompt_init_text="describe the topic"
    ).prepare(tokenizer, max_length=32, context=64)
    ids = tokenizer("describe the topic", add_special_tokens=False)["input_ids"]
    assert config.prompt_init_ids == ids and len(ids) == 3
    model.add_adapter("t", config)
    (t,) = model.adapter_parameters("t").values()
    assert torch.equal(t, table[(ids * 2)[:5]])  # repeated, then cut to length
    untokenized = make_config("prompt", prompt_init="text", prompt_init_text="the topic")
    with pytest.raises(AdapterkitError, match="needs the text's token ids"):
        model.add_adapter("u", untokenized)
    with pytest.raises(AdapterkitError, match="past the model's 97 embeddings"):
        model.add_adapter("u", make_config("prompt", prompt_init="text", prompt_init_ids=[500]))
    assert "u" not in model.adapter_names


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target_modules": ["query"]}, r"^--target-modules does not apply to method 'prompt'"),
        ({"layers": [0]}, r"^--layers does not apply to method 'prompt'"),
        ({"prompt_init_text": "hi"}, r"^--prompt-init-text does not apply to method 'prompt'"),
        (
            {"prompt_init": "text"},
            r"^method 'prompt' with --prompt-init text needs --prompt-init-text",
        ),
        ({"num_virtual_tokens": 0}, r"num_virtual_tokens"),
    ],
)
def test_options_that_do_not_apply_are_refused(options: dict, message: str) -> None:
    with pytest.raises(AdapterkitError, match=message):
        make_config("prompt", **options)


def test_a_prompt_that_does_not_fit_the_positions_is_refused() -> None:
    config = make_config("prompt", num_virtual_tokens=40)
    with pytest.raises(
        AdapterkitError,
        match=r"^method 'prompt': --num-virtual-tokens 40 \+ --max-length 32 exceed the model's 64 positions; lower --max-length to 24",
    ):
        config.prepare(None, max_length=32, context=64)
    assert config.prepare(None, max_length=24, context=64) is config
    model = AdaptedModel(tiny_model("gpt2"))  # 64 positions
    model.add_adapter("A", config)
    ids = torch.ones(1, 30, dtype=torch.long)
    with pytest.raises(
        AdapterkitError, match=r"^method 'prompt': .* 70 positions, but the model has 64"
    ):
        model(input_ids=ids, adapter="A")
    model(input_ids=ids, adapter=None)  # without the prompt it fits


def test_inputs_it_cannot_lengthen_are_refused() -> None:
    model = AdaptedModel(tiny_model("gpt2"))
    model.add_adapter("A", make_config("prompt", num_virtual_tokens=3))
    ids = torch.ones(1, 4, dtype=torch.long)
    with pytest.raises(AdapterkitError, match="input_ids as a keyword"):
        model(inputs_embeds=torch.zeros(1, 4, 32), adapter="A")
    with pytest.raises(AdapterkitError, match="position ids itself"):
        model(input_ids=ids, position_ids=torch.arange(4)[None], adapter="A")
    assert [type(m) for m in model.base.modules() if isinstance(m, PromptEmbedding)]


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_a_prompts_gradients_do_not_depend_on_its_neighbours(arch: str) -> None:
    """Packed training: the rows of a prompt job beside a LoRA job's give the gradients
    that the prompt's rows give alone."""
    model = _mixed_model(arch)
    inputs = tiny_inputs(arch, batch=4)
    routes = ["B", "L", "B", None]

    def grads(batch: dict[str, torch.Tensor], adapter, rows: list[int]) -> dict[str, torch.Tensor]:
        model.zero_grad()
        out = main_output(model(**batch, adapter=adapter))
        out[rows].pow(2).mean().backward()
        return {
            n: p.grad.clone()
            for n, p in model.named_parameters()
            if p.grad is not None and p.grad.abs().sum() > 0
        }

    mixed = grads(inputs, routes, [0, 2])
    alone = grads({k: v[[0, 2]] for k, v in inputs.items()}, "B", [0, 1])
    assert mixed.keys() == alone.keys() and any("adapters.B" in n for n in mixed)
    for name in mixed:
        torch.testing.assert_close(mixed[name], alone[name], rtol=1e-4, atol=1e-6)


def test_entity_markers_of_a_relation_head_work_under_a_prompt() -> None:
    """Relation extraction's marker rows (ids past the table, put in at the embeddings)
    and a prompt on the same adapter: both reach the base, at the user's positions."""
    from tests.tiny import VOCAB

    from adapterkit.heads import EntityPairHead

    model = AdaptedModel(tiny_model("bert"))
    head = EntityPairHead(32, 3, first_marker_id=VOCAB)
    model.add_adapter("re", make_config("prompt", num_virtual_tokens=3), head=head)
    model.add_adapter("plain", make_config("prompt", num_virtual_tokens=3))
    with torch.no_grad():
        model.adapter_parameters("plain")[next(iter(model.adapter_parameters("plain")))].copy_(
            next(iter(model.adapter_parameters("re").values()))
        )
    ids = torch.tensor([[5, VOCAB, 6, VOCAB + 1, 7, VOCAB + 2, 8, VOCAB + 3]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        marked = model(input_ids=ids, attention_mask=mask, adapter="re").last_hidden_state
        mixed = model(
            input_ids=ids.repeat(2, 1), attention_mask=mask.repeat(2, 1), adapter=["re", "plain"]
        ).last_hidden_state
        head.markers.zero_()  # other marker rows change the outputs: the markers went in
        unmarked = model(input_ids=ids, attention_mask=mask, adapter="re").last_hidden_state
    assert marked.shape[1] == ids.shape[1]
    torch.testing.assert_close(mixed[:1], marked, rtol=1e-5, atol=1e-5)
    assert (marked - unmarked).abs().max() > 1e-3
    assert (mixed[0] - mixed[1]).abs().max() > 1e-3  # "plain" has the same prompt, no markers


@pytest.mark.parametrize("arch", ["bert", "gpt2", "t5"])
def test_one_batch_with_every_other_method_equals_rows_alone(arch: str) -> None:
    model = _mixed_model(arch)  # two prompts, LoRA, Pfeiffer
    others = {"houlsby": {"reduction_factor": 4}, "parallel": {"reduction_factor": 4}}
    others |= {"ia3": {}, "dora": {}, "prefix": {"prefix_length": 4}}
    for seed, (method, options) in enumerate(others.items(), start=10):
        model.add_adapter(method, make_config(method, **options))
        _randomise(model, method, seed)
    routes = ["A", *others, "B", None, "L", "P"]
    inputs = tiny_inputs(arch, batch=len(routes))
    with torch.no_grad():
        mixed = main_output(model(**inputs, adapter=routes))
        for row, name in enumerate(routes):
            alone = main_output(model(**_rows(inputs, row), adapter=name))
            torch.testing.assert_close(mixed[row : row + 1], alone, rtol=1e-4, atol=1e-4)
