"""The gated mix (``--method unipelt``): where each part goes, and that the gates gate."""

from __future__ import annotations

import torch
from tests.tiny import main_output, tiny_inputs, tiny_model

from adapterkit.host import AdapterHost
from adapterkit.methods import make_config
from adapterkit.methods.unipelt.layer import GatedBottleneck, GatedLora, GatedPrefix
from adapterkit.model import AdaptedModel


def _parts(model: AdaptedModel) -> dict[str, type]:
    return {
        name: type(host.adapters["a"])
        for name, host in model.base.named_modules()
        if isinstance(host, AdapterHost) and "a" in host.adapters
    }


def test_parts_go_to_their_layers_on_bert_and_llama() -> None:
    bert = AdaptedModel(tiny_model("bert"))
    bert.add_adapter("a", make_config("unipelt"))
    kinds = {
        name.split("layer.0.", 1)[1]: kind for name, kind in _parts(bert).items() if ".0." in name
    }
    assert kinds == {
        "attention.self.query": GatedLora,
        "attention.self.key": GatedPrefix,
        "attention.self.value": GatedPrefix,
        "attention.output.dense": GatedLora,
        "intermediate.dense": GatedLora,
        "output.dense": GatedBottleneck,
    }
    llama = AdaptedModel(tiny_model("llama"))
    llama.add_adapter("a", make_config("unipelt"))
    names = {name.rsplit(".", 1)[1]: kind for name, kind in _parts(llama).items()}
    assert names["k_proj"] is GatedPrefix and names["down_proj"] is GatedBottleneck
    assert names["q_proj"] is names["gate_proj"] is GatedLora


def test_closed_gates_shut_their_parts_out() -> None:
    """With every token gate at σ(-50) ≈ 0, the LoRA and bottleneck parts add nothing: the
    output equals the same adapter with those parts zeroed."""
    inputs = tiny_inputs("bert")
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("a", make_config("unipelt", prefix_projection=0))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.adapter_parameters("a").values():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        gated = [m for m in model.modules() if isinstance(m, GatedLora | GatedBottleneck)]
        for module in gated:
            module.token_gate.gate.weight.zero_()
            module.token_gate.gate.bias.fill_(-50.0)
        closed = main_output(model(**inputs, adapter="a"))
        for module in gated:
            for param in (
                (module.lora_B.weight,)
                if isinstance(module, GatedLora)
                else (
                    module.up.weight,
                    module.up.bias,
                )
            ):
                param.zero_()
        without = main_output(model(**inputs, adapter="a"))
        for module in gated:
            module.token_gate.gate.bias.fill_(0.0)
        assert (main_output(model(**inputs, adapter="a")) - without).abs().max() < 1e-6
    torch.testing.assert_close(closed, without, rtol=0, atol=1e-5)


def test_the_prefix_gate_scales_its_values_and_survives_the_bundle(tmp_path) -> None:
    inputs = tiny_inputs("gpt2")
    model = AdaptedModel(tiny_model("gpt2"))
    model.add_adapter("a", make_config("unipelt"))  # the prefix through its MLP
    prefixes = [m for m in model.modules() if isinstance(m, GatedPrefix)]
    with torch.no_grad():
        for prefix in prefixes:
            prefix.value_gate.fill_(1.5)
        tables = prefixes[0].tables()
        raw = prefixes[0].ungated_tables()
        torch.testing.assert_close(tables["value"], torch.sigmoid(torch.tensor(1.5)) * raw["value"])
        expected = main_output(model(**inputs, adapter="a"))
    model.save_adapter("a", tmp_path / "bundle")  # folds the MLP, keeps the gate apart
    fresh = AdaptedModel(tiny_model("gpt2"))
    fresh.load_adapter(tmp_path / "bundle")
    with torch.no_grad():
        torch.testing.assert_close(main_output(fresh(**inputs, adapter="a")), expected)


def test_cli_trains_and_predicts_with_the_mix(tmp_path) -> None:
    import json

    from tests.cli.test_cli_train import FILLER, TOPICS, _csv, _rows
    from tests.tiny import FINISHED, save_tiny_bert

    from adapterkit.cli import main

    save_tiny_bert(tmp_path / "model", [w for ws in TOPICS.values() for w in ws] + FILLER)
    args = ["train", "--model", str(tmp_path / "model"), "--max-length", "32"]
    args += ["--train", str(_csv(tmp_path / "train.csv", _rows(60, 1)))]
    out = tmp_path / "run"
    code = main(
        [*args, "--output", str(out), "--method", "unipelt", "--rank", "4", "--epochs", "1"]
    )
    assert code in FINISHED
    record = json.loads((out / "adapter" / "adapterkit.json").read_text())
    assert record["method"] == "unipelt" and record["config"]["r"] == 4
    assert record["config"]["prefix_projection"] == 0  # the bundle holds the folded prefix
    assert main(["predict", str(out / "adapter"), "goal team ball"]) == 0
