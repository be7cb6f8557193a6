"""The generation path through the CLI: train, evaluate, predict/generate, prompt baselines,
and bad input as one clear line with a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.generation.conftest import lm_model, word_tokenizer
from tests.tiny import FINISHED

from adapterkit.cli import main

PAIRS = [
    ("the cat", "el gato"),
    ("the dog", "el perro"),
    ("the house", "la casa"),
    ("a cat", "un gato"),
    ("a dog", "un perro"),
    ("the red cat", "el gato rojo"),
    ("the big dog", "el perro grande"),
    ("the small house", "la casa pequeño"),
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def save_lm(directory: Path, arch: str = "llama", chat: bool = True, shift: float = 0.0) -> Path:
    """A tiny random LM and its tokenizer, written with save_pretrained."""
    tokenizer = word_tokenizer(chat=chat, eos_suffix=arch == "t5")
    model = lm_model(arch, tokenizer)
    if shift:  # another base of the same shape
        with torch.no_grad():
            for param in model.parameters():
                param.add_(shift)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    rows = [{"prompt": f"translate to spanish : {en}", "response": es} for en, es in PAIRS]
    _write_jsonl(folder / "train.jsonl", rows * 3)
    _write_jsonl(folder / "validation.jsonl", rows[:4])
    _write_jsonl(folder / "test.jsonl", rows[4:])
    return folder


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_lm(tmp_path_factory.mktemp("m") / "llama")


@pytest.fixture(scope="module")
def bundle(llama_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    argv = ["train", "--model", str(llama_dir), "--data", str(data_dir), "--method", "lora"]
    argv += ["--epochs", "2", "--batch-size", "8", "--max-length", "32", "--output", str(out)]
    assert main(argv) == 0
    return out / "adapter"


def test_train_writes_generation_metrics_and_samples(bundle: Path) -> None:
    metrics = json.loads((bundle.parent / "metrics.json").read_text())
    for key in ("chrf", "bleu", "rougeL", "exact_match", "f1", "perplexity", "trainable_percent"):
        assert key in metrics, key
    assert metrics["split"] == "test" and len(metrics["samples"]) == 4
    validation = json.loads((bundle.parent / "validation_metrics.json").read_text())
    assert "perplexity" in validation and "chrf" not in validation  # validation is not decoded
    report = (bundle.parent / "report.md").read_text()
    assert "## Sample generations" in report and "el perro" in report
    config = json.loads((bundle / "adapterkit.json").read_text())
    assert config["task"]["type"] == "causal-lm" and config["head"] is None


def test_predict_and_generate_with_the_bundle(bundle: Path, capsys) -> None:
    assert main(["predict", str(bundle), "translate to spanish : the cat", "hello"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["input"] for r in rows] == ["translate to spanish : the cat", "hello"]
    assert all({"text", "finish_reason", "completion_tokens"} <= set(r) for r in rows)
    assert main(["generate", "--adapter", str(bundle), "translate to spanish : the cat"]) == 0
    streamed = capsys.readouterr().out
    assert streamed.strip() == rows[0]["text"].strip()  # greedy: the same text, streamed
    argv = ["generate", "--adapter", str(bundle), "hello", "--max-new-tokens", "100000"]
    assert main([*argv, "--no-stream"]) == 0  # the tiny Llama has 64 positions
    said = capsys.readouterr()
    assert "max_new_tokens 100000 lowered to" in said.err
    assert json.loads(said.out)["completion_tokens"] < 64


def test_evaluate_bundle_and_prompt_baselines(
    bundle: Path, llama_dir: Path, data_dir: Path, tmp_path: Path, capsys
) -> None:
    assert (
        main(["evaluate", str(bundle), "--data", str(data_dir), "--output", str(tmp_path / "a")])
        == 0
    )
    trained = json.loads((tmp_path / "a" / "metrics.json").read_text())
    for shots in ("0", "2"):
        out = tmp_path / f"shots{shots}"
        argv = ["evaluate", "--model", str(llama_dir), "--method", "none", "--shots", shots]
        assert main([*argv, "--data", str(data_dir), "--split", "test", "--output", str(out)]) == 0
        baseline = json.loads((out / "metrics.json").read_text())
        assert baseline["method"] == "none" and baseline["shots"] == int(shots)
        assert {"chrf", "bleu", "rougeL", "exact_match"} <= set(baseline)
    assert trained["chrf"] >= 0
    capsys.readouterr()


def test_seq2seq_t5_trains_and_generates(data_dir: Path, tmp_path: Path, capsys) -> None:
    t5 = save_lm(tmp_path / "t5", arch="t5", chat=False)
    out = tmp_path / "run"
    argv = ["train", "--model", str(t5), "--data", str(data_dir), "--method", "pfeiffer"]
    assert main([*argv, "--epochs", "1", "--max-length", "32", "--output", str(out)]) == 0
    assert (
        json.loads((out / "adapter" / "adapterkit.json").read_text())["task"]["type"] == "seq2seq"
    )
    assert main(["generate", "--adapter", str(out / "adapter"), "--no-stream", "the cat"]) == 0
    assert "text" in json.loads(capsys.readouterr().out.splitlines()[-1])


def test_packing_trains(llama_dir: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    argv = ["train", "--model", str(llama_dir), "--data", str(data_dir), "--packing"]
    assert (
        main([*argv, "--epochs", "1", "--max-length", "32", "--output", str(tmp_path / "r")]) == 0
    )
    assert "packing: 24 training examples into" in capsys.readouterr().out


# Bad input --------------------------------------------------------------------------------
def _fails_with(capsys, argv: list[str], *fragments: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("adapterkit: error:") and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def _train(llama_dir: Path, train: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model",
        str(llama_dir),
        "--train",
        str(train),
        "--output",
        str(tmp_path / "r"),
        *extra,
    ]


def test_line_without_prompt_or_response(llama_dir: Path, tmp_path: Path, capsys) -> None:
    rows = [{"prompt": "the cat", "response": "el gato"}] * 2 + [{"prompt": "the dog"}]
    train = _write_jsonl(tmp_path / "t.jsonl", rows)
    _fails_with(capsys, _train(llama_dir, train, tmp_path), "t.jsonl:3", "'prompt' and 'response'")


def test_empty_response(llama_dir: Path, tmp_path: Path, capsys) -> None:
    rows = [{"prompt": "the cat", "response": "el gato"}, {"prompt": "the dog", "response": " "}]
    train = _write_jsonl(tmp_path / "t.jsonl", rows)
    _fails_with(capsys, _train(llama_dir, train, tmp_path), "t.jsonl:2", "empty 'response'")


def test_prompt_longer_than_the_cap(llama_dir: Path, tmp_path: Path, capsys) -> None:
    rows = [{"prompt": "the cat " * 20, "response": "el gato"}] * 3
    train = _write_jsonl(tmp_path / "t.jsonl", rows)
    _fails_with(
        capsys,
        _train(llama_dir, train, tmp_path, "--max-length", "16"),
        "does not fit max_length 16",
        "--max-length",
    )


def test_bundle_of_another_base(bundle: Path, tmp_path: Path, capsys) -> None:
    other = save_lm(tmp_path / "other", shift=0.01)
    _fails_with(
        capsys,
        ["generate", "--model", str(other), "--adapter", str(bundle), "hi"],
        "bundle was made for base",
    )


def test_head_bundle_is_not_a_generation_adapter(tmp_path: Path, capsys) -> None:
    from tests.tiny import save_tiny_bert

    bert = save_tiny_bert(tmp_path / "bert", ["good", "bad"])
    train = tmp_path / "t.csv"
    train.write_text("text,label\n" + "good,pos\nbad,neg\n" * 10)
    assert (
        main(
            [
                "train",
                "--model",
                str(bert),
                "--train",
                str(train),
                "--epochs",
                "1",
                "--output",
                str(tmp_path / "r"),
            ]
        )
        in FINISHED
    )
    capsys.readouterr()
    _fails_with(
        capsys,
        ["generate", "--adapter", str(tmp_path / "r" / "adapter"), "hi"],
        "not a text-generation one",
    )


def test_head_method_has_nothing_to_train(
    llama_dir: Path, data_dir: Path, tmp_path: Path, capsys
) -> None:
    argv = ["train", "--model", str(llama_dir), "--data", str(data_dir), "--method", "head"]
    _fails_with(capsys, [*argv, "--output", str(tmp_path / "r")], "nothing to train for causal-lm")


def test_method_none_takes_no_bundle(bundle: Path, data_dir: Path, capsys) -> None:
    argv = ["evaluate", str(bundle), "--method", "none", "--data", str(data_dir)]
    _fails_with(capsys, argv, "drop the bundle argument")


def test_generation_refuses_a_low_inference_precision(bundle: Path, data_dir: Path, capsys) -> None:
    argv = ["predict", str(bundle), "the cat", "--precision", "bf16"]
    _fails_with(capsys, argv, "--precision bf16 applies to task-head bundles")
    assert main(["predict", str(bundle), "the cat", "--precision", "fp32"]) == 0


def test_head_tasks_on_a_t5_base_read_its_encoder(tmp_path: Path, capsys) -> None:
    """Classification, tagging and extractive-QA heads on a T5-style base train on its
    encoder stack alone (T5EncoderModel): the bundles predict, and record only encoder layers."""
    t5 = save_lm(tmp_path / "t5", arch="t5", chat=False)
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"the cat {i},{'ab'[i % 2]}\n" for i in range(20)))
    out = tmp_path / "run"
    argv = ["train", "--model", str(t5), "--train", str(data), "--output", str(out)]
    assert main([*argv, "--epochs", "1", "--method", "lora"]) in FINISHED
    record = json.loads((out / "adapter" / "adapterkit.json").read_text())
    assert record["task"]["type"] == "sequence-classification" and record["targets"]
    assert all(t.startswith("encoder.") for t in record["targets"]), record["targets"][:3]
    capsys.readouterr()
    assert main(["predict", str(out / "adapter"), "the cat 3"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in ("a", "b")

    tags = tmp_path / "tags.jsonl"
    rows = [{"tokens": ["the", "cat", str(i)], "tags": ["O", "B-X", "O"]} for i in range(12)]
    _write_jsonl(tags, rows)
    argv = ["train", "--model", str(t5), "--train", str(tags), "--output", str(tmp_path / "ner")]
    assert main([*argv, "--epochs", "1"]) in FINISHED
    assert main(["predict", str(tmp_path / "ner" / "adapter"), "the cat 5"]) == 0

    qa = tmp_path / "qa.jsonl"
    context = "the cat sat on the red mat"
    answer = {"text": ["red mat"], "answer_start": [context.index("red mat")]}
    _write_jsonl(qa, [{"question": "where ?", "context": context, "answers": answer}] * 12)
    argv = ["train", "--model", str(t5), "--train", str(qa), "--output", str(tmp_path / "qa")]
    assert main([*argv, "--epochs", "1"]) in FINISHED
    capsys.readouterr()
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"question": "where ?", "context": context}) + "\n")
    assert main(["predict", str(tmp_path / "qa" / "adapter"), "--file", str(questions)]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] in context


def test_head_task_on_a_bart_base_is_one_line(tmp_path: Path, capsys) -> None:
    """An encoder-decoder with no encoder-only class in transformers is refused in one line."""
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = word_tokenizer(chat=False)
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
    )
    BartForConditionalGeneration(config).save_pretrained(tmp_path / "bart")
    tokenizer.save_pretrained(tmp_path / "bart")
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"the cat {i},{'ab'[i % 2]}\n" for i in range(20)))
    argv = ["train", "--model", str(tmp_path / "bart"), "--train", str(data)]
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "encoder-decoder (bart)" in err and "--task seq2seq" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "adapter").exists()
