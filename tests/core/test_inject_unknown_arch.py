"""Adapters on an architecture with no built-in target defaults (OPT here)."""

from __future__ import annotations

import pytest
import torch
from transformers import OPTConfig, OPTModel

from adapterkit import AdaptedModel, make_config
from adapterkit.errors import AdapterkitError
from adapterkit.host import AdapterHost
from adapterkit.inject import ARCH_DEFAULTS


@pytest.fixture
def opt() -> OPTModel:
    torch.manual_seed(0)
    config = OPTConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        ffn_dim=64,
        num_attention_heads=4,
        max_position_embeddings=64,
        word_embed_proj_dim=32,
    )
    return OPTModel(config).eval()


def test_opt_has_no_defaults_and_the_error_asks_for_target_modules(opt) -> None:
    assert opt.config.model_type not in ARCH_DEFAULTS
    with pytest.raises(AdapterkitError, match=r"pass target_modules.*fc2"):
        AdaptedModel(opt).add_adapter("p", make_config("parallel"))


def test_parallel_adapter_with_target_modules_finds_the_ffn_input_by_shape(opt) -> None:
    model = AdaptedModel(opt)
    targets = model.add_adapter("p", make_config("parallel", target_modules=["fc2"]))
    assert targets == ["decoder.layers.0.fc2", "decoder.layers.1.fc2"]
    for index in (0, 1):
        tap = opt.get_submodule(f"decoder.layers.{index}.fc1")
        target = opt.get_submodule(f"decoder.layers.{index}.fc2")
        assert isinstance(tap, AdapterHost) and tap.tap_key == f"decoder.layers.{index}"
        assert target.reads_block["p"] == tap.tap_key
    ids = torch.tensor([[2, 5, 7, 9]])
    with torch.no_grad():
        for param in model.adapter_parameters("p").values():
            param.normal_(0, 0.5)  # a fresh adapter is the identity; make it do something
        base_out = model(input_ids=ids, adapter=None).last_hidden_state
        adapted = model(input_ids=ids, adapter="p").last_hidden_state
    assert not torch.allclose(base_out, adapted)
