"""A fusion on the real MiniLM: ``train --fuse`` over two quickly built adapters, and the
saved bundle reloads with identical logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.lifecycle.helpers import run
from tests.tiny import FINISHED

from adapterkit.bundle import read_bundle
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer

pytestmark = pytest.mark.real

TEXTS = ["Who wrote Hamlet?", "Where is the Eiffel Tower?", "How far is the Moon?"]


def _part(path: Path, method: str, seed: int, **options) -> None:
    """A MiniLM bundle of ``method`` with its weights moved from their start (seeded)."""
    model = AdaptedModel(load_base("minilm"), name_or_path="minilm")
    torch.manual_seed(seed)
    model.add_adapter("part", make_config(method, **options))
    with torch.no_grad():
        for param in model.adapter_parameters("part").values():
            param.add_(torch.randn(param.shape) * 0.02)
    model.save_adapter("part", path)


def test_a_fusion_on_minilm_trains_and_reloads_with_identical_logits(tmp_path: Path) -> None:
    _part(tmp_path / "a", "pfeiffer", 1)
    _part(tmp_path / "b", "lora", 2, target_modules=[r"(.*\.)?layer\.\d+\.output\.dense"])
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "who is he?,person\nwhere is it?,place\n" * 8)
    out = tmp_path / "run"
    code, _, stderr = run(
        "train", "--model", "minilm", "--train", data, "--output", out, "--fuse",
        tmp_path / "a", tmp_path / "b", "--epochs", "1", "--batch-size", "8",
        "--max-length", "32", "--report-to", "none",
    )  # fmt: skip
    assert code in FINISHED, stderr
    record, tensors = read_bundle(out / "adapter")
    assert [p["relation"] for p in record["parents"]] == ["part", "part"]
    batch = load_tokenizer("minilm")(TEXTS, padding=True, return_tensors="pt")
    logits = []
    for _ in range(2):  # two fresh bases: the bundle alone decides the logits
        model = AdaptedModel(load_base("minilm"), name_or_path="minilm").eval()
        name = model.load_adapter(out / "adapter")
        with torch.no_grad():
            hidden = model(**batch, adapter=name).last_hidden_state
            logits.append(model.head_logits(name, hidden, batch["attention_mask"]))
        saved = {k: v.detach() for k, v in model.bundle_contents(name)[1].items()}
        assert all(torch.equal(saved[k], tensors[k]) for k in tensors)
    assert logits[0].shape == (3, 2) and torch.equal(logits[0], logits[1])
