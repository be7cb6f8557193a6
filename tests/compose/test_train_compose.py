"""``train --fuse`` and ``train --stack-on`` on a tiny saved BERT: frozen parts stay
bit-identical, the new parts train, parents are recorded; bad runs are one line with no
run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.compose.helpers import FFN_OUT, composed_key
from tests.lifecycle.helpers import make_bundle, other_base, run
from tests.tiny import FINISHED, save_tiny_bert

from adapterkit.bundle import read_bundle
from adapterkit.lifecycle.compose_bundles import compose_bundles
from adapterkit.models import load_base

WORDS = ["good", "bad", "movie", "plot", "fun", "dull", "okay", "fine"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fuse")
    found = {"model": save_tiny_bert(folder / "model", WORDS)}
    on_base = {
        "a": ("pfeiffer", {}, ["x", "y"]),
        "b": ("pfeiffer", {}, ["u", "v", "w"]),
        "lora": ("lora", {"target_modules": [FFN_OUT]}, None),
        "ia3": ("ia3", {}, ["x", "y"]),
        "dora": ("dora", {"target_modules": [FFN_OUT]}, None),
        "houlsby": ("houlsby", {}, ["x", "y"]),
    }
    for seed, (name, (method, options, labels)) in enumerate(on_base.items(), start=1):
        found[name] = folder / name
        base = load_base(str(found["model"]))
        make_bundle(found[name], method, seed=seed, labels=labels, base=base, **options)
    found["foreign"] = folder / "foreign"  # the tiny BERT with every weight moved
    make_bundle(found["foreign"], "pfeiffer", seed=9, labels=["x", "y"], base=other_base())
    found["fused"] = folder / "fused"
    compose_bundles([found["a"], found["b"]], found["fused"], "average", head_from="1")
    found["data"] = folder / "data.csv"
    found["data"].write_text("text,label\n" + "good fun movie,pos\nbad dull plot,neg\n" * 10)
    return found


def _train(setup: dict[str, Path], out: Path, *args: str | Path) -> tuple[int, str, str]:
    common = ["--model", setup["model"], "--train", setup["data"], "--batch-size", "4"]
    return run("train", "--output", out, *common, "--report-to", "none", "--epochs", "1", *args)


def _parts_unchanged(record, tensors, setup, names: list[str]) -> None:
    """The bundle's first parts are ``names``' weights bit for bit, recorded as parents."""
    for place, name in enumerate(names):
        part, theirs = read_bundle(setup[name])
        sha = part["files"]["adapterkit.safetensors"]["sha256"]
        assert record["parents"][place] == {"name": "a", "sha256": sha, "relation": "part"}
        for key, tensor in theirs.items():
            if key.startswith("adapter."):
                assert torch.equal(tensors[composed_key(key, part["targets"], place)], tensor)


def test_fuse_trains_the_attention_and_a_head_and_leaves_the_parts_alone(setup, tmp_path) -> None:
    # Houlsby also adapts the attention output: there the fusion attends over it alone.
    parts = [setup[name] for name in ("a", "lora", "houlsby")]
    code, stdout, stderr = _train(setup, tmp_path / "run", "--fuse", *parts)
    assert code in FINISHED, stderr
    assert "fusion" in stdout
    record, tensors = read_bundle(tmp_path / "run" / "adapter")
    assert record["method"] == "composition" and record["config"]["mode"] == "fusion"
    assert record["task"]["labels"] == ["neg", "pos"]  # a new head for the data's task
    _parts_unchanged(record, tensors, setup, ["a", "lora", "houlsby"])
    assert len(record["targets"]) == 4  # the FFN and attention outputs of both layers
    # Where several parts meet, the keys (which start at 0) trained; over one part alone
    # the softmax is 1 whatever the keys say, so only its value matrix learns there.
    keys = [k for k in tensors if ".fusion.key.weight" in k and ".attention." not in k]
    assert len(keys) == 2 and all(tensors[k].abs().max() > 0 for k in keys)
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "lr: 5.0e-05" in config  # fusion's default rate
    _same_run_again(tmp_path)


def _same_run_again(tmp_path: Path) -> None:
    """The run's config.yaml, read back with --config, makes the same run."""
    again = tmp_path / "again"
    code, _, stderr = run("train", "--config", tmp_path / "run" / "config.yaml", "--output", again)
    assert code in FINISHED, stderr
    before, after = ((d / "config.yaml").read_text() for d in (tmp_path / "run", again))
    assert before.replace(str(tmp_path / "run"), str(again)) == after


def test_stack_on_trains_a_new_adapter_over_frozen_parts(setup, tmp_path) -> None:
    code, _, stderr = _train(setup, tmp_path / "run", "--stack-on", setup["a"], "--method", "lora",
                             "--target-modules", FFN_OUT)  # fmt: skip
    assert code in FINISHED, stderr
    record, tensors = read_bundle(tmp_path / "run" / "adapter")
    assert record["config"]["mode"] == "stack" and len(record["config"]["parts"]) == 2
    assert record["config"]["parts"][1]["sha256"] is None  # trained here: no bundle of its own
    _parts_unchanged(record, tensors, setup, ["a"])
    new = [v for k, v in tensors.items() if ".parts.1.lora_B." in k]
    assert new and all(t.abs().max() > 0 for t in new)  # LoRA's B starts at zero: it trained
    assert "lr: 0.001" in (tmp_path / "run" / "config.yaml").read_text()  # LoRA's rate
    _same_run_again(tmp_path)


def test_ia3_and_dora_parts_fuse_and_a_dora_adapter_stacks(setup, tmp_path) -> None:
    """IA3 rescales the FFN input and DoRA reads the frozen weight, inside a composition too."""
    code, _, stderr = _train(setup, tmp_path / "fused", "--fuse", setup["ia3"], setup["dora"])
    assert code in FINISHED, stderr
    record, tensors = read_bundle(tmp_path / "fused" / "adapter")
    _parts_unchanged(record, tensors, setup, ["ia3", "dora"])
    args = ["--stack-on", setup["lora"], "--method", "dora", "--target-modules", FFN_OUT]
    code, _, stderr = _train(setup, tmp_path / "stacked", *args)
    assert code in FINISHED, stderr
    record, tensors = read_bundle(tmp_path / "stacked" / "adapter")
    _parts_unchanged(record, tensors, setup, ["lora"])
    new = [v for k, v in tensors.items() if ".parts.1.lora_B." in k]
    assert new and all(t.abs().max() > 0 for t in new)  # DoRA's B starts at zero: it trained


PATHS = ("a", "b", "lora", "ia3", "dora", "houlsby", "foreign", "nowhere", "fused")
REFUSALS = {
    "another base": (["--fuse", "a", "foreign"], "made for base"),
    "not the run's base": (["--fuse", "foreign", "foreign"], "bundle 1"),
    "stack on other layers": (["--stack-on", "a", "houlsby"], "adapt the same layers"),
    "missing part": (["--fuse", "a", "nowhere"], "no bundle directory"),
    "one part": (["--fuse", "a"], "at least 2 bundles"),
    "with init-from": (["--fuse", "a", "b", "--init-from", "a"], "--init-from"),
    "with a method": (["--fuse", "a", "b", "--method", "lora"], "drop --method"),
    "with method options": (["--fuse", "a", "b", "--rank", "4"], "--rank"),
    "fuse and stack": (["--fuse", "a", "b", "--stack-on", "a"], "pick one"),
    "stack of a head": (["--stack-on", "a", "--method", "head"], "a stack takes"),
    "stack of an adalora": (["--stack-on", "a", "--method", "adalora"], "rank schedule runs"),
    "nested": (["--fuse", "a", "fused"], "compositions do not nest"),
    "stack elsewhere": (["--stack-on", "a", "--method", "houlsby"], "a stack adapts the same"),
    "fusion alone": (["--method", "fusion"], "composes bundles"),
    "continuing a composition": (["--init-from", "fused"], "continuing one is not supported"),
}


def test_a_run_folder_over_a_part_is_refused(setup, tmp_path) -> None:
    code, _, stderr = _train(setup, setup["a"].parent, "--fuse", setup["a"], setup["b"])
    assert code == 2 and "--fuse bundle 1" in stderr and setup["a"].is_dir()


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_bad_composition_runs_are_one_line_and_write_nothing(setup, tmp_path, case) -> None:
    args, message = REFUSALS[case]
    # Part names become their bundles' paths; "lora" after --method is the method.
    words = [
        (setup.get(w, tmp_path / w) if w in PATHS and before != "--method" else w)
        for before, w in zip(["", *args], args, strict=False)
    ]
    code, _, stderr = _train(setup, tmp_path / "run", *words)
    assert code == 2 and message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "run").exists()
