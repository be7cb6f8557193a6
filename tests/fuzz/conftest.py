"""What the hostile-input suites attack: a tiny BERT on disk, small data files, one
trained bundle, all built once per session."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.tiny import FINISHED, save_tiny_bert

from adapterkit.cli import main

WORDS = ["good", "bad", "movie", "plot", "actor", "fun", "dull", "john", "paris"]


@dataclass(frozen=True)
class Env:
    """Paths the cases build their arguments from."""

    root: Path
    model: Path
    train: Path
    """A valid CSV (text,label), two labels."""
    bundle: Path
    """A valid sequence-classification bundle (Pfeiffer) trained on ``train``."""


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("fuzz")
    model = save_tiny_bert(root / "bert", WORDS)
    train = root / "train.csv"
    rows = ["good movie,pos", "bad plot,neg", "fun actor,pos", "dull movie,neg"]
    train.write_text("text,label\n" + "\n".join(rows * 4) + "\n")
    argv = ["train", "--model", str(model), "--train", str(train), "--output", str(root / "run")]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main([*argv, "--method", "pfeiffer", "--epochs", "1", "--report-to", "none"])
    assert code in FINISHED
    return Env(root, model, train, root / "run" / "adapter")
