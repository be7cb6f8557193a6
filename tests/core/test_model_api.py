"""AdaptedModel management: counts, delete, disable, activate, errors, thread isolation."""

from __future__ import annotations

import threading

import pytest
import torch
from tests.tiny import main_output, tiny_inputs, tiny_model
from transformers import BertConfig, BertModel

from adapterkit.errors import AdapterkitError
from adapterkit.host import AdapterHost
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel


def test_houlsby_count_on_bert_base_matches_closed_form() -> None:
    # BERT-base: hidden 768, 12 layers. Houlsby puts two adapters per layer; reduction
    # factor 16 gives width 768/16 = 48. One adapter = down (768*48 + 48) + up (48*768 + 768).
    hidden, layers, width = 768, 12, 48
    per_adapter = (hidden * width + width) + (width * hidden + hidden)  # 74,544
    expected = 2 * layers * per_adapter  # 1,789,056
    base = BertModel(BertConfig())  # bert-base-uncased's shape; random weights
    model = AdaptedModel(base)
    model.add_adapter("h", make_config("houlsby", reduction_factor=16))
    report = model.parameter_report("h")
    assert report.trainable == expected == 1_789_056
    assert report.total == sum(p.numel() for p in base.parameters())  # wrapped base + adapter
    assert abs(report.percent - 100 * expected / report.total) < 1e-9


def test_lora_count_closed_form() -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("l", make_config("lora", r=4))
    # Every linear layer of 2 blocks but the key: q, v, attention output (32 -> 32), FFN
    # in (32 -> I) and out (I -> 32); each gets A (4 x in) + B (out x 4).
    inner = model.base.config.intermediate_size
    per_block = 3 * (4 * 32 + 32 * 4) + 2 * (4 * 32 + inner * 4)
    assert model.parameter_report("l").trainable == 2 * per_block


def test_delete_restores_plain_layers() -> None:
    base = tiny_model("llama")
    model = AdaptedModel(base)
    model.add_adapter("p", make_config("parallel"))
    model.add_adapter("l", make_config("lora"))
    model.delete_adapter("p")
    hosts = [m for m in base.modules() if isinstance(m, AdapterHost)]
    assert hosts and all("l" in h.adapters for h in hosts)  # only LoRA hosts remain
    model.delete_adapter("l")
    assert not any(isinstance(m, AdapterHost) for m in base.modules())
    assert model.adapter_names == []


def test_disable_and_activate() -> None:
    model = AdaptedModel(tiny_model("gpt2"))
    model.add_adapter("a", make_config("lora"))
    with torch.no_grad():
        for param in model.adapter_parameters("a").values():
            param.normal_(std=0.3)
    inputs = tiny_inputs("gpt2")
    with torch.no_grad():
        base = main_output(model(**inputs, adapter=None))
        adapted = main_output(model(**inputs, adapter="a"))
        model.activate("a")
        assert torch.equal(main_output(model(**inputs)), adapted)
        with model.disable_adapters():
            assert torch.equal(main_output(model(**inputs)), base)
    assert (adapted - base).abs().max() > 1e-3


def test_unknown_names_and_bad_names() -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config("lora"))
    with pytest.raises(AdapterkitError, match="no adapter named 'b'"):
        model(**tiny_inputs("bert"), adapter="b")
    with pytest.raises(AdapterkitError, match="already exists"):
        model.add_adapter("a", make_config("lora"))
    with pytest.raises(AdapterkitError, match="must be 1-64"):
        model.add_adapter("../x", make_config("lora"))
    with pytest.raises(AdapterkitError, match="unknown adapter method"):
        make_config("nope")
    with pytest.raises(AdapterkitError, match="placement"):
        make_config("bottleneck", placement="sideways")


def test_unknown_architecture_lists_candidates() -> None:
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleList(
                [torch.nn.ModuleDict({"fc_in": torch.nn.Linear(4, 4)})]
            )

    with pytest.raises(AdapterkitError, match=r"no default targets.*blocks\.\*\.fc_in"):
        AdaptedModel(Tiny()).add_adapter("a", make_config("lora"))
    model = AdaptedModel(Tiny())
    # rank 4: a rank above the layer's width (4) is refused
    assert model.add_adapter("a", make_config("lora", r=4, target_modules=["fc_in"])) == [
        "blocks.0.fc_in"
    ]


def test_custom_targets_and_layers() -> None:
    model = AdaptedModel(tiny_model("bert"))
    targets = model.add_adapter("a", make_config("lora", target_modules=["key"], layers=[1]))
    assert targets == ["encoder.layer.1.attention.self.key"]
    with pytest.raises(AdapterkitError, match="match no"):
        model.add_adapter("b", make_config("lora", target_modules=["nothing_here"]))


def test_threads_do_not_trample_each_other() -> None:
    torch.manual_seed(0)
    base = BertModel(
        BertConfig(
            vocab_size=97,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
        )
    ).eval()
    model = AdaptedModel(base)
    for name in ("A", "B"):
        model.add_adapter(name, make_config("parallel", reduction_factor=4))
        with torch.no_grad():
            for param in model.adapter_parameters(name).values():
                param.normal_(std=0.3)
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        expected = {n: model(**inputs, adapter=n).last_hidden_state for n in ("A", "B", None)}
    errors: list[str] = []

    def worker(name: str | None) -> None:
        for _ in range(20):
            with torch.no_grad():
                got = model(**inputs, adapter=name).last_hidden_state
            if not torch.equal(got, expected[name]):
                errors.append(str(name))

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("A", "B", None) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, f"{len(errors)} calls saw another thread's adapter: {errors[:5]}"


KEY_PROJECTIONS = {"key", "k_proj", "k_lin", "k"}


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "gpt2", "llama", "t5"])
def test_default_lora_targets_every_linear_layer_of_the_blocks_but_the_key(arch: str) -> None:
    from adapterkit.inject import leaf_layers, resolve_targets

    model = tiny_model(arch)
    targets = set(resolve_targets(model, make_config("lora")))
    # Every layer a bottleneck adapter sits on is a LoRA target too...
    assert set(resolve_targets(model, make_config("houlsby"))) <= targets
    # ...and so is every other linear layer inside a numbered block (not heads or poolers),
    # except separate key projections (GPT-2's fused c_attn has none).
    in_blocks = {name for name in leaf_layers(model) if any(p.isdigit() for p in name.split("."))}
    keys = {name for name in in_blocks if name.split(".")[-1] in KEY_PROJECTIONS}
    assert (arch == "gpt2") == (not keys)
    assert targets == in_blocks - keys, sorted(in_blocks - keys - targets)
