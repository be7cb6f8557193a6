"""Bundles: round trip into a fresh base, and clear refusals of bad bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.tiny import ARCHS, METHODS, main_output, tiny_inputs, tiny_model

from adapterkit.bundle import CONFIG_FILE, WEIGHTS_FILE
from adapterkit.errors import BundleError
from adapterkit.heads import ClassificationHead
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel


def _trained(arch: str, method: str) -> AdaptedModel:
    model = AdaptedModel(tiny_model(arch))
    head = ClassificationHead(32, 3) if arch == "bert" else None
    model.add_adapter(
        "a", make_config(method), head=head, task={"type": "demo", "labels": ["x", "y", "z"]}
    )
    with torch.no_grad():
        for param in [
            *model.adapter_parameters("a").values(),
            *model.head_parameters("a").values(),
        ]:
            param.normal_(std=0.2)
    return model


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip(tmp_path: Path, arch: str, method: str) -> None:
    model = _trained(arch, method)
    inputs = tiny_inputs(arch)
    path = model.save_adapter("a", tmp_path / "bundle")
    fresh = AdaptedModel(tiny_model(arch))  # same seed: same base weights
    name = fresh.load_adapter(path)
    assert name == "a" and fresh.task_info["a"]["labels"] == ["x", "y", "z"]
    with torch.no_grad():
        expected = main_output(model(**inputs, adapter="a"))
        got = main_output(fresh(**inputs, adapter="a"))
        assert torch.equal(expected, got)
        if arch == "bert":
            hidden = model(**inputs, adapter="a").last_hidden_state
            assert torch.equal(model.head_logits("a", hidden), fresh.head_logits("a", hidden))


def test_bundle_files_and_size(tmp_path: Path) -> None:
    model = _trained("bert", "lora")
    path = model.save_adapter("a", tmp_path / "b")
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["method"] == "lora" and config["format_version"] == 2
    assert config["base_model"]["fingerprint"]["structure"] == model.base_fingerprint["structure"]
    assert config["head"]["type"] == "classification"
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    assert not list(tmp_path.glob(".*tmp*")), "temporary directory left behind"


def test_refuses_other_base(tmp_path: Path) -> None:
    path = _trained("bert", "pfeiffer").save_adapter("a", tmp_path / "b")
    torch.manual_seed(123)
    from transformers import BertConfig, BertModel

    other = BertModel(
        BertConfig(
            vocab_size=97,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    )
    with pytest.raises(BundleError, match=r"was made for base .* not this base"):
        AdaptedModel(other).load_adapter(path)
    with pytest.raises(BundleError, match="was made for base"):
        AdaptedModel(tiny_model("gpt2")).load_adapter(path)


def test_refuses_truncated_weights(tmp_path: Path) -> None:
    path = _trained("bert", "lora").save_adapter("a", tmp_path / "b")
    weights = path / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])
    fresh = AdaptedModel(tiny_model("bert"))
    with pytest.raises(BundleError, match="truncated"):
        fresh.load_adapter(path)
    assert fresh.adapter_names == []


def test_refuses_corrupt_weights_with_same_size(tmp_path: Path) -> None:
    path = _trained("bert", "lora").save_adapter("a", tmp_path / "b")
    weights = path / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="corrupt"):
        AdaptedModel(tiny_model("bert")).load_adapter(path)


def _edit_config(path: Path, **changes) -> None:
    config = json.loads((path / CONFIG_FILE).read_text())
    config.update(changes)
    (path / CONFIG_FILE).write_text(json.dumps(config))


def test_refuses_unknown_method(tmp_path: Path) -> None:
    path = _trained("bert", "lora").save_adapter("a", tmp_path / "b")
    _edit_config(path, method="ia3000")
    with pytest.raises(Exception, match="unknown adapter method 'ia3000'"):
        AdaptedModel(tiny_model("bert")).load_adapter(path)


def test_refuses_newer_format_and_missing_files(tmp_path: Path) -> None:
    path = _trained("bert", "lora").save_adapter("a", tmp_path / "b")
    _edit_config(path, format_version=99)
    with pytest.raises(BundleError, match="version 99 is newer"):
        AdaptedModel(tiny_model("bert")).load_adapter(path)
    with pytest.raises(BundleError, match="no bundle directory"):
        AdaptedModel(tiny_model("bert")).load_adapter(tmp_path / "nowhere")
    path2 = _trained("bert", "lora").save_adapter("a", tmp_path / "c")
    (path2 / WEIGHTS_FILE).unlink()
    with pytest.raises(BundleError, match="is missing"):
        AdaptedModel(tiny_model("bert")).load_adapter(path2)
    (path2 / CONFIG_FILE).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        AdaptedModel(tiny_model("bert")).load_adapter(path2)


def test_save_replaces_existing_bundle_atomically(tmp_path: Path) -> None:
    model = _trained("bert", "lora")
    path = model.save_adapter("a", tmp_path / "b")
    with torch.no_grad():
        next(iter(model.adapter_parameters("a").values())).add_(1.0)
    model.save_adapter("a", path)
    fresh = AdaptedModel(tiny_model("bert"))
    fresh.load_adapter(path)
    key = next(iter(model.adapter_parameters("a")))
    assert torch.equal(fresh.adapter_parameters("a")[key], model.adapter_parameters("a")[key])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_full_model_bundle_round_trip(tmp_path: Path) -> None:
    model = AdaptedModel(tiny_model("bert"))
    model.add_adapter("full", make_config("full"), head=ClassificationHead(32, 3))
    with torch.no_grad():  # stand-in for full fine-tuning: the base weights move
        model.base.encoder.layer[0].intermediate.dense.weight.add_(0.5)
    path = model.save_adapter("full", tmp_path / "b", include_base=True)
    fresh = AdaptedModel(tiny_model("bert"))  # pretrained weights: the structure matches
    fresh.load_adapter(path)
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        assert torch.equal(
            model(**inputs, adapter="full").last_hidden_state,
            fresh(**inputs, adapter="full").last_hidden_state,
        )


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_a_format_1_bundle_still_loads_and_answers_as_when_it_was_saved() -> None:
    """tests/fixtures/bundle_v1 was written by adapterkit 0.1.0 at format version 1 (commit
    914ab35: PEFT's file names), a LoRA with a classification head on tiny_model("bert");
    bundle_v1_logits.json holds its head's logits on tiny_inputs("bert") then."""
    model = AdaptedModel(tiny_model("bert"))
    assert model.load_adapter(FIXTURES / "bundle_v1") == "v1"
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        hidden = model(**inputs, adapter="v1").last_hidden_state
        logits = model.head_logits("v1", hidden, inputs.get("attention_mask"))
    expected = torch.tensor(json.loads((FIXTURES / "bundle_v1_logits.json").read_text())["logits"])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_peft_refuses_a_bundle_cleanly_instead_of_misreading_it(tmp_path: Path) -> None:
    """Our bundle's files no longer carry PEFT's names, so PEFT says it finds no adapter."""
    peft = pytest.importorskip("peft")
    path = _trained("bert", "lora").save_adapter("a", tmp_path / "bundle")
    assert not (path / "adapter_config.json").exists()
    with pytest.raises(ValueError, match=r"adapter_config\.json"):
        peft.PeftConfig.from_pretrained(str(path))
