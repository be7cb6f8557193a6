"""``--quantize``: adapters in full precision on a bitsandbytes 4-bit or 8-bit base (QLoRA).

The tiny BERT here is 64 wide: bitsandbytes' CPU kernels quantize 4-bit rows in blocks of 64.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest
import torch
from tests.tiny import FINISHED, tiny_tokenizer

from adapterkit.cli import main
from adapterkit.errors import AdapterkitError, BundleError
from adapterkit.methods import make_config
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, quantization_config, quantization_of

pytest.importorskip("bitsandbytes")
WORDS = ["good", "bad", "movie", "plot", "actor", "fun", "dull", "john", "paris"]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's refusals
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bert64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertModel

    directory = tmp_path_factory.mktemp("bert64") / "bert"
    tokenizer = tiny_tokenizer(WORDS)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.csv"
    rows = ["good movie,pos", "bad plot,neg", "fun actor,pos", "dull movie,neg"]
    path.write_text("text,label\n" + "\n".join(rows * 4) + "\n")
    return path


@pytest.mark.parametrize("quantize", ["4bit", "8bit"])
def test_train_predict_and_refuse_the_unquantized_base(
    quantize: str, bert64: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    code, _, err = run(
        "train", "--model", str(bert64), "--train", str(data), "--output", str(out),
        "--epochs", "2", "--report-to", "none", "--method", "lora", "--quantize", quantize,
    )  # fmt: skip
    assert code in FINISHED, err
    record = json.loads((out / "adapter" / "adapterkit.json").read_text())
    assert record["base_model"]["quantize"] == quantize
    # predict quantizes the base as the bundle's was, with no flag
    code, answer, err = run("predict", str(out / "adapter"), "good movie")
    assert code == 0, err
    assert json.loads(answer)["label"] in ("pos", "neg")
    plain = AdaptedModel(load_base(str(bert64)), name_or_path=str(bert64))
    with pytest.raises(BundleError, match=f"quantized to {quantize}.*--quantize {quantize}"):
        plain.load_adapter(out / "adapter")


@pytest.mark.parametrize("method", ["lora", "dora", "ia3", "pfeiffer"])
def test_mixed_batches_on_a_4bit_base_equal_rows_alone(method: str, bert64: Path) -> None:
    base = load_base(str(bert64), quantize="4bit")
    assert quantization_of(base) == "4bit"
    model = AdaptedModel(base, name_or_path=str(bert64))
    for name in ("A", "B"):
        model.add_adapter(name, make_config(method))
        with torch.no_grad():
            for param in model.adapter_parameters(name).values():
                assert param.dtype == torch.float32  # adapters stay full precision
                param.add_(torch.randn(param.shape) * 0.1)
    ids = torch.randint(5, 20, (3, 7))
    routes = ["A", None, "B"]
    with torch.no_grad():
        mixed = model(input_ids=ids, adapter=routes).last_hidden_state
        plain = model(input_ids=ids, adapter=None).last_hidden_state
        for row, name in enumerate(routes):
            alone = model(input_ids=ids[row : row + 1], adapter=name).last_hidden_state
            torch.testing.assert_close(mixed[row : row + 1], alone, rtol=1e-4, atol=1e-4)
    assert (mixed[0] - plain[0]).abs().max() > 1e-3
    if method != "pfeiffer":  # the mergeable methods refuse a quantized base
        with pytest.raises(AdapterkitError, match="cannot be merged into a quantized"):
            model.merge_adapter("A")


def test_quantize_refusals_are_one_line(
    bert64: Path, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(
        "train", "--model", str(bert64), "--train", str(data), "--output", str(tmp_path / "f"),
        "--method", "full", "--quantize", "4bit",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "full fine-tuning" in err
    code, _, err = run("train", "--train", str(data), "--quantize", "2bit")
    assert code == 2 and err.count("\n") == 1 and "2bit" in err
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if it were not installed
    with pytest.raises(AdapterkitError, match=r"pip install 'adapterkit\[quant\]'"):
        quantization_config("4bit")
    assert not (tmp_path / "f").exists()


def test_the_server_serves_a_4bit_bundle_on_a_4bit_base(
    bert64: Path, data: Path, tmp_path: Path
) -> None:
    import httpx

    from adapterkit.serve.launch import running_server

    run(
        "train", "--model", str(bert64), "--train", str(data), "--output", str(tmp_path / "run"),
        "--epochs", "1", "--report-to", "none", "--method", "dora", "--quantize", "4bit",
    )  # fmt: skip
    adapters = tmp_path / "adapters"
    adapters.mkdir()
    (tmp_path / "run" / "adapter").rename(adapters / "sentiment")
    args = ["--model", str(bert64), "--adapters", str(adapters), "--quantize", "4bit"]
    with (
        running_server(args, tmp_path / "server.log") as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        names = [a["name"] for a in client.get("/v1/adapters").json()["adapters"]]
        assert names == ["sentiment"]
        got = client.post("/v1/predict", json={"adapter": "sentiment", "inputs": ["good movie"]})
        assert got.status_code == 200 and got.json()["predictions"][0]["label"] in ("pos", "neg")
