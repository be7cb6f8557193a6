"""``--head-dropout``: the task head's dropout while training, recorded in the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from adapterkit.cli import main
from adapterkit.errors import AdapterkitError
from adapterkit.heads import ClassificationHead, SpanQAHead, TokenClassificationHead


@pytest.mark.parametrize("head", [ClassificationHead(8, 3), TokenClassificationHead(8, 3)])
def test_a_head_takes_another_dropout_rate(head) -> None:
    head.set_dropout(0.25)
    rates = [m.p for m in head.modules() if isinstance(m, nn.Dropout)]
    assert rates and all(rate == 0.25 for rate in rates)
    assert head.head_config["dropout"] == 0.25


def test_a_head_without_dropout_refuses_one() -> None:
    with pytest.raises(AdapterkitError, match="the span-qa head has no dropout"):
        SpanQAHead(8).set_dropout(0.2)


def test_train_records_the_head_dropout_in_the_bundle(tmp_path: Path) -> None:
    from tests.tiny import save_tiny_bert

    words = ["cat", "dog", "house", "red"]
    model = save_tiny_bert(tmp_path / "bert", words)
    rows = [{"text": f"{a} {b}", "label": a} for a in words for b in words]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "run"
    argv = ["train", "--model", str(model), "--train", str(data), "--method", "lora"]
    argv += ["--epochs", "1", "--head-dropout", "0", "--report-to", "none", "--output", str(out)]
    assert main(argv) in (0, 3)  # 3: a one-epoch toy may learn nothing; the bundle is kept
    record = json.loads((out / "adapter" / "adapterkit.json").read_text())
    assert record["head"]["config"]["dropout"] == 0.0
