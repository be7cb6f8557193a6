"""Tiny BERT, Llama and GPT-2 folders on disk, as a user's local models are."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.interop.helpers import WORDS
from tests.tiny import save_tiny_bert


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("bert") / "bert", WORDS)


def _lm_dir(arch: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.generation.conftest import lm_model, word_tokenizer

    tokenizer = word_tokenizer()
    directory = tmp_path_factory.mktemp(arch) / arch
    lm_model(arch, tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _lm_dir("llama", tmp_path_factory)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GPT-2 keeps its layers as Conv1D, weights (in, out): PEFT's fan_in_fan_out."""
    return _lm_dir("gpt2", tmp_path_factory)
