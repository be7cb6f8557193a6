"""Bad input through the CLI: one clear line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.tiny import save_tiny_bert

from adapterkit.cli import main

WORDS = ["good", "bad", "movie", "plot", "actor", "fun", "dull"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("m") / "model", WORDS)


def _fails_with(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("adapterkit: error:") and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _train_args(model_dir: Path, tmp_path: Path, train: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model",
        str(model_dir),
        "--train",
        str(train),
        "--output",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        *extra,
    ]


def test_missing_file(capsys, model_dir: Path, tmp_path: Path) -> None:
    _fails_with(capsys, _train_args(model_dir, tmp_path, tmp_path / "nope.csv"), "nope.csv")


def test_missing_column(capsys, model_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "t.csv"
    train.write_text("sentence,label\ngood movie,pos\nbad plot,neg\n")
    _fails_with(capsys, _train_args(model_dir, tmp_path, train), "text", "sentence")


def test_empty_data_set(capsys, model_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "t.csv"
    train.write_text("text,label\n")
    _fails_with(capsys, _train_args(model_dir, tmp_path, train))


def test_a_rank_above_the_layers_width_leaves_no_run_folder(
    capsys, model_dir: Path, tmp_path: Path
) -> None:
    train = tmp_path / "t.csv"
    train.write_text("text,label\n" + "good movie,pos\nbad plot,neg\n" * 5)
    argv = _train_args(model_dir, tmp_path, train, "--method", "lora", "--rank", "1000")
    _fails_with(capsys, argv, "rank r=1000 is above the layer's width")
    assert not (tmp_path / "run").exists()  # refused when the layers are wrapped, before writing


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--method", "lora", "--rank", "0"], "lora: r (--rank) must be >= 1, got 0"),
        (["--method", "houlsby", "--reduction-factor", "-1"], "bottleneck: reduction_factor must"),
        (["--method", "lora", "--adapter-dropout", "1.5"], "dropout (--adapter-dropout) must"),
        (["--seed", "-1"], "seed must be >= 0 and <= 4294967295, got -1"),  # not 4.29497e+09
    ],
)
def test_a_bad_method_option_names_the_flag_the_user_typed(
    capsys, model_dir: Path, tmp_path: Path, flags: list[str], named: str
) -> None:
    train = tmp_path / "t.csv"
    train.write_text("text,label\n" + "good movie,pos\nbad plot,neg\n" * 5)
    _fails_with(capsys, _train_args(model_dir, tmp_path, train, *flags), named)
    assert not (tmp_path / "run").exists()


def test_unseen_test_label_is_named(capsys, model_dir: Path, tmp_path: Path) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("text,label\n" + "good movie,pos\nbad plot,neg\n" * 5)
    test.write_text("text,label\ngood fun,pos\ndull actor,meh\n")
    _fails_with(capsys, _train_args(model_dir, tmp_path, train, "--test", str(test)), "'meh'")


def test_malformed_conll_line(capsys, model_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "train.conll"
    train.write_text("good B-X\nmovie O\n\nbadline\nplot O\n")
    _fails_with(capsys, _train_args(model_dir, tmp_path, train), "train.conll:4")


def test_non_utf8(capsys, model_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "t.csv"
    train.write_bytes(b"text,label\ngood movie,pos\nbad \xff\xfe plot,neg\n")
    _fails_with(capsys, _train_args(model_dir, tmp_path, train), "UTF-8")


def test_unknown_model_offline(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train = tmp_path / "t.csv"
    train.write_text("text,label\n" + "good movie,pos\nbad plot,neg\n" * 5)
    _fails_with(
        capsys,
        _train_args(Path("no-such-org/no-such-model"), tmp_path, train),
        "no-such-org/no-such-model",
    )


def test_bundle_for_another_base(capsys, model_dir: Path, tmp_path: Path) -> None:
    train = tmp_path / "t.csv"
    train.write_text("text,label\n" + "good movie,pos\nbad plot,neg\n" * 5)
    assert main(_train_args(model_dir, tmp_path, train, "--method", "lora")) == 0
    other = save_tiny_bert(tmp_path / "other", WORDS, seed=5)  # same shapes, other weights
    capsys.readouterr()
    _fails_with(
        capsys,
        ["predict", str(tmp_path / "run" / "adapter"), "good movie", "--model", str(other)],
        "was made for base",
        "not this base",
    )


def test_corrupt_bundle_and_missing_bundle(capsys, tmp_path: Path) -> None:
    _fails_with(capsys, ["info", str(tmp_path / "nothing")], "no bundle directory")


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "adapterkit", "predict", str(tmp_path / "x"), "hi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("adapterkit: error:")


def test_a_refused_training_option_is_one_line_on_stderr_offline(tmp_path: Path) -> None:
    # A subprocess: the libraries training imports (peft -> bitsandbytes -> kernels) log
    # on import when the hub is offline, which an in-process run has long since done.
    argv = ["train", "--data", "trec", "--method", "lora", "--prefix-length", "5"]
    result = subprocess.run(
        [sys.executable, "-m", "adapterkit", *argv, "--output", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2
    assert (
        result.stderr.splitlines() == [result.stderr.strip()]
        and "--prefix-length does not apply to method 'lora'" in result.stderr
    ), result.stderr
    assert not (tmp_path / "run").exists()
