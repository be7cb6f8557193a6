"""``train --init-from``: continuing a bundle with new data and labels, replay, the anchor,
the forgetting report, the parent record, and refusals in one line with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.tiny import FINISHED, save_tiny_bert

from adapterkit.bundle import read_bundle_config
from adapterkit.cli import main
from adapterkit.model import AdaptedModel
from adapterkit.train.config import TrainConfig
from adapterkit.train.continual import Anchor, Lineage, replay_count, replay_sample
from adapterkit.train.job import TrainJob

WORDS = ["good", "bad", "movie", "plot", "fun", "dull", "okay", "fine", "john", "paris"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("m") / "model", WORDS)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    files = {
        "old": "good fun movie,pos\nbad dull plot,neg\n" * 10,
        "new": "okay fine movie,neutral\ngood fun plot,pos\n" * 10,
        "stranger": "okay okay,meh\ngood,pos\n" * 10,
    }
    paths = {}
    for name, rows in files.items():
        paths[name] = folder / f"{name}.csv"
        paths[name].write_text("text,label\n" + rows)
    paths["ner"] = folder / "ner.conll"
    paths["ner"].write_text("john B-PER\nlikes O\nparis B-LOC\n\n" * 10)
    return paths


def _train(model_dir: Path, out: Path, *args: str) -> int:
    common = ["--batch-size", "4", "--report-to", "none"]
    return main(["train", "--model", str(model_dir), "--output", str(out), *common, *args])


@pytest.fixture(scope="module")
def parent(model_dir: Path, data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("parent") / "run"
    args = ["--train", str(data["old"]), "--method", "pfeiffer", "--epochs", "2", "--name", "v1"]
    code = _train(model_dir, out, *args)
    assert code in FINISHED
    return out / "adapter"


def test_a_continued_run_starts_from_the_parent_and_widens_its_head(
    model_dir, data, parent, tmp_path, capsys
) -> None:
    out = tmp_path / "v2"
    # A step far too small to move anything: the bundle shows where training started.
    args = ["--train", str(data["new"]), "--epochs", "1", "--lr", "1e-12", "--weight-decay", "0"]
    assert _train(model_dir, out, "--init-from", str(parent), *args) in FINISHED
    assert "1 new label(s) join the head: neutral" in capsys.readouterr().out
    old, new = read_bundle_config(parent), read_bundle_config(out / "adapter")
    assert old["task"]["labels"] == ["neg", "pos"]
    assert new["task"]["labels"] == ["neg", "pos", "neutral"]  # parent's rows keep their place
    assert new["method"] == old["method"] and new["config"] == old["config"]
    before = load_file(str(parent / "adapterkit.safetensors"))
    after = load_file(str(out / "adapter" / "adapterkit.safetensors"))
    assert set(before) == set(after)
    for key, tensor in before.items():
        grown = after[key][: tensor.shape[0]] if tensor.dim() else after[key]
        torch.testing.assert_close(grown, tensor, atol=1e-6, rtol=0)
    assert after["head.out.weight"].shape[0] == 3
    assert after["head.out.weight"][2].abs().sum() > 0  # the new label's row starts fresh
    # The parent is recorded, and `info` traces it.
    (entry,) = new["parents"]
    assert entry == {
        "name": "v1",
        "sha256": old["files"]["adapterkit.safetensors"]["sha256"],
        "relation": "init-from",
    }
    assert main(["info", str(out / "adapter")]) == 0
    assert json.loads(capsys.readouterr().out)["parents"] == [entry]


def test_old_data_reports_the_parent_before_and_the_new_adapter_after(
    model_dir, data, parent, tmp_path, capsys
) -> None:
    out = tmp_path / "v2"
    args = ["--train", str(data["new"]), "--epochs", "2", "--old-data", str(data["old"])]
    assert _train(model_dir, out, "--init-from", str(parent), *args) in FINISHED
    forgetting = json.loads((out / "metrics.json").read_text())["forgetting"]
    row = forgetting["validation"]  # a single old file: validation is carved from it
    assert row["metric"] == "accuracy"
    assert row["forgetting"] == pytest.approx(row["before"] - row["after"])
    # "before" is the parent as saved, scored on the same carved split.
    scored = tmp_path / "parent-scores"
    args = ["--data", str(data["old"]), "--split", "validation", "--output", str(scored)]
    assert main(["evaluate", str(parent), *args]) == 0
    parent_metrics = json.loads(next(scored.glob("*metrics.json")).read_text())
    assert row["before"] == pytest.approx(parent_metrics["accuracy"])


def test_replay_mixes_a_share_of_old_rows_into_each_epoch(
    model_dir, data, parent, tmp_path, capsys
) -> None:
    out = tmp_path / "v2"
    args = ["--train", str(data["new"]), "--epochs", "1", "--replay", str(data["old"])]
    assert _train(model_dir, out, "--init-from", str(parent), *args, "--replay-ratio", "0.2") in (
        FINISHED
    )
    # 18 new training rows (2 carved for validation); 5 old ones of 16 make a fifth of 23.
    assert "replay: 5 of 16 old rows join each epoch" in capsys.readouterr().out


def test_the_epoch_holds_every_new_row_and_a_seeded_sample_of_old_ones() -> None:
    assert replay_count(80, 1000, 0.2) == 20  # 20 of 100 rows are old
    assert replay_count(80, 5, 0.2) == 5  # all there are
    job = TrainJob("j", None, [{}] * 30, None, TrainConfig(batch_size=4, seed=3), 1e-3, Path())  # type: ignore[arg-type]
    job.fresh_rows, job.replay_per_epoch = 10, 5
    first = job.epoch_rows()
    assert first[:10] == list(range(10)) and len(first) == 15
    assert all(10 <= row < 30 for row in first[10:]) and len(set(first)) == 15
    assert job.epoch_rows() == first  # the same again: a resumed epoch sees the same rows
    job.state.epoch = 1
    assert job.epoch_rows() != first  # another sample each epoch
    epoch = set()
    for _ in range(4):  # 15 rows in batches of 4
        epoch.update(job.next_rows())
        job.count_batch(0.0)
    assert epoch == set(job.epoch_rows())  # the epoch's batches run exactly its rows
    assert replay_sample(20, 5, 3, 0) == [r - 10 for r in first[10:]]


def test_the_anchor_pulls_towards_the_parent_rows_it_knows() -> None:
    weight = torch.nn.Parameter(torch.zeros(3, 2))
    start = {"head.out.weight": torch.ones(2, 2)}  # the parent had two labels
    lineage = Lineage(Path("p"), {}, start)
    anchor = Anchor.of(0.5, lineage, {"head.out.weight": weight})
    loss = anchor.penalty()
    assert loss.item() == pytest.approx(0.5 * 4)  # the third (new) row is free
    loss.backward()
    expected = torch.tensor([[-1.0, -1.0], [-1.0, -1.0], [0.0, 0.0]])  # 2·w·(θ − θ0)
    torch.testing.assert_close(weight.grad, expected)


def test_a_heavy_anchor_keeps_the_adapter_near_its_parent(model_dir, data, parent, tmp_path):
    def drift(anchor: str) -> float:
        out = tmp_path / f"anchor{anchor}"
        args = ["--train", str(data["new"]), "--epochs", "2", "--anchor-weight", anchor]
        assert _train(model_dir, out, "--init-from", str(parent), *args) in FINISHED
        before = load_file(str(parent / "adapterkit.safetensors"))
        after = load_file(str(out / "adapter" / "adapterkit.safetensors"))
        return sum(float((after[k][: v.shape[0]] - v).pow(2).sum()) for k, v in before.items())

    assert drift("100") < 0.2 * drift("0")


BAD = {
    "another method": (["--method", "lora"], "continues its bottleneck adapter, not lora"),
    "another option": (["--reduction-factor", "4"], "reduction_factor=16"),
    "a stray option": (["--rank", "4"], "has no field(s) r"),
    "another task": (["--train", "{ner}"], "a sequence-classification bundle"),
    "unknown old labels": (["--old-data", "{stranger}"], "label(s) meh are not among"),
    "replay of another task": (["--replay", "{ner}"], "--replay"),
    "a ratio of 1": (["--replay", "{old}", "--replay-ratio", "1"], "replay_ratio"),
    "a pooling of its own": (["--pooling", "cls"], "pools by mean"),
    "full fine-tuning": (["--method", "full"], "continuing into full fine-tuning"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_continuations_are_one_line_and_write_nothing(
    case, model_dir, data, parent, tmp_path, capsys
) -> None:
    extra, message = BAD[case]
    extra = [word.format(**{k: str(v) for k, v in data.items()}) for word in extra]
    out = tmp_path / "v2"
    train = [] if "--train" in extra else ["--train", str(data["new"])]
    code = _train(model_dir, out, "--init-from", str(parent), *train, *extra, "--epochs", "1")
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replay", "x.csv"], "--replay needs --init-from"),
        (["--anchor-weight", "1"], "--anchor-weight needs --init-from"),
        (["--old-data", "x.csv"], "--old-data needs --init-from"),
        (["--replay-ratio", "0.3"], "--replay-ratio needs --replay"),
    ],
)
def test_options_against_forgetting_need_a_parent(args, message, model_dir, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(model_dir, out, "--train", str(data["new"]), *args) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_an_output_over_the_parent_is_refused(model_dir, data, parent, capsys) -> None:
    out = parent.parent  # the parent's own run folder: the new bundle would replace it
    before = sorted(p.name for p in out.iterdir())
    assert _train(model_dir, out, "--init-from", str(parent), "--train", str(data["new"])) == 2
    err = capsys.readouterr().err
    assert "--output" in err and "is (or holds) --init-from" in err
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_parent_of_another_base_is_refused(data, parent, tmp_path, capsys) -> None:
    other = save_tiny_bert(tmp_path / "other", WORDS, seed=1)
    out = tmp_path / "v2"
    code = _train(other, out, "--init-from", str(parent), "--train", str(data["new"]))
    assert code == 2 and "bundle was made for base" in capsys.readouterr().err
    assert not out.exists()


def test_the_continued_bundle_loads_and_predicts_its_new_label(
    model_dir, data, parent, tmp_path
) -> None:
    out = tmp_path / "v2"
    assert _train(model_dir, out, "--init-from", str(parent), "--train", str(data["new"])) in (
        FINISHED
    )
    from transformers import AutoModel

    model = AdaptedModel(AutoModel.from_pretrained(model_dir))
    name = model.load_adapter(out / "adapter")
    assert model.task_info[name]["labels"] == ["neg", "pos", "neutral"]
