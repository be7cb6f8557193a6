"""Fixtures shared by the training tests: a tiny BERT and small data files of each kind.

A test module that needs other words or files defines its own ``model_dir`` / ``data``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.tiny import save_tiny_bert

WORDS = ["good", "bad", "movie", "plot", "fun", "dull", "john", "paris", "visited", "likes"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("m") / "model", WORDS)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    sentiment = folder / "sentiment.csv"
    sentiment.write_text("text,label\n" + "good fun movie,pos\nbad dull plot,neg\n" * 8)
    ner = folder / "ner.conll"
    ner.write_text("john B-PER\nvisited O\nparis B-LOC\n\njohn B-PER\nlikes O\nparis B-LOC\n\n" * 5)
    empty = folder / "empty.csv"
    empty.write_text("text,label\n")
    chat = folder / "chat.jsonl"
    chat.write_text('{"prompt": "good movie", "response": "fun"}\n' * 6)
    return {"sentiment": sentiment, "ner": ner, "empty": empty, "chat": chat}
