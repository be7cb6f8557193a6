"""``adapterkit train --method prompt`` end to end on a tiny BERT, and its bad input lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.test_cli_train import _train, workspace  # noqa: F401 (a fixture)
from tests.tiny import FINISHED

from adapterkit.cli import main


def test_train_predict_and_info(
    workspace: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    flags = ("--method", "prompt", "--num-virtual-tokens", "6", "--epochs", "1")
    assert (
        _train(workspace, out, *flags, "--prompt-init", "text", "--prompt-init-text", "a topic")
        in FINISHED
    )
    used = (out / "config.yaml").read_text()
    assert "num_virtual_tokens: 6" in used and "lr: 0.01" in used  # prompt's own default rate
    record = json.loads((out / "adapter" / "adapterkit.json").read_text())
    assert record["method"] == "prompt" and record["config"]["prompt_init_ids"]
    assert record["targets"] == ["embeddings.word_embeddings"]
    capsys.readouterr()
    assert main(["evaluate", str(out / "adapter"), "--data", str(workspace / "test.csv")]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["predict", str(out / "adapter"), "goal team ball match", "bread soup"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all(abs(sum(x["scores"].values()) - 1) < 1e-5 for x in lines)


@pytest.mark.parametrize(
    ("flags", "wanted"),
    [
        # 40 soft tokens + max_length 32 > the tiny BERT's 64 positions
        (("--num-virtual-tokens", "40"), "--num-virtual-tokens 40 + --max-length 32"),
        (("--target-modules", "query"), "--target-modules does not apply to method 'prompt'"),
        (("--prompt-init-text", "hello"), "--prompt-init-text does not apply to method 'prompt'"),
        (("--prompt-init", "text"), "needs --prompt-init-text"),
        (("--rank", "4"), "--rank does not apply to method 'prompt'"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    workspace: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
    wanted: str,
) -> None:
    out = tmp_path / "run"
    assert _train(workspace, out, "--method", "prompt", "--epochs", "1", *flags) == 2
    err = capsys.readouterr().err
    assert wanted in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert not out.exists()  # refused before the run folder is made


def test_a_max_length_past_the_context_is_lowered_to_leave_the_soft_tokens_room(
    workspace: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 100 is past the tiny BERT's 64 positions: it is lowered, and the 20 soft tokens
    # (prompt's default) come off too, as a user who left --max-length alone would need.
    out = tmp_path / "run"
    flags = ("--method", "prompt", "--epochs", "1", "--max-length", "100")
    assert _train(workspace, out, *flags) in FINISHED
    assert "max_length 100 lowered to 44: " in capsys.readouterr().out
    record = json.loads((out / "adapter" / "adapterkit.json").read_text())
    assert record["task"]["max_length"] == 44
    # A method that lengthens nothing is lowered to the whole context.
    assert (
        _train(
            workspace, tmp_path / "lora", "--method", "lora", "--epochs", "1", "--max-length", "100"
        )
        in FINISHED
    )
    assert "max_length 100 lowered to 64: " in capsys.readouterr().out
