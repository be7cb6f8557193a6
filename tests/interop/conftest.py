"""Tiny BERT and Llama folders on disk, as a user's local models are."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.interop.helpers import WORDS
from tests.tiny import save_tiny_bert


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("bert") / "bert", WORDS)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.generation.conftest import lm_model, word_tokenizer

    tokenizer = word_tokenizer()
    directory = tmp_path_factory.mktemp("llama") / "llama"
    lm_model("llama", tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
