"""--attention-dropout replaces the base's attention-probability dropout for training."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.tiny import save_tiny_bert, tiny_model

from adapterkit.errors import AdapterkitError
from adapterkit.models import load_base, set_attention_dropout
from adapterkit.train.config import TrainConfig


def _attention_dropouts(model) -> list[float]:
    return [layer.attention.self.dropout.p for layer in model.encoder.layer]


def test_load_base_overrides_the_attention_dropout_only(tmp_path: Path) -> None:
    path = str(save_tiny_bert(tmp_path / "bert", ["ball", "goal"]))
    plain = load_base(path)
    assert _attention_dropouts(plain) == [0.1, 0.1]
    changed = load_base(path, attention_dropout=0.0)
    assert _attention_dropouts(changed) == [0.0, 0.0]
    # Hidden dropout is a different regulariser and stays as the model has it.
    assert changed.config.hidden_dropout_prob == plain.config.hidden_dropout_prob == 0.1
    for a, b in zip(plain.state_dict().values(), changed.state_dict().values(), strict=True):
        assert a.equal(b)  # same weights


def test_llama_and_gpt2_configs_take_it_too() -> None:
    for arch, key in (("llama", "attention_dropout"), ("gpt2", "attn_pdrop")):
        config = tiny_model(arch).config
        set_attention_dropout(config, 0.25)
        assert getattr(config, key) == 0.25, arch


def test_a_config_without_attention_dropout_gets_one_line() -> None:
    class Plain:
        hidden_size = 8

    with pytest.raises(AdapterkitError, match="names no attention dropout"):
        set_attention_dropout(Plain(), 0.0, "my-model")


def test_out_of_range_probability_is_refused() -> None:
    with pytest.raises(AdapterkitError, match="attention_dropout"):
        TrainConfig(attention_dropout=1.0)
