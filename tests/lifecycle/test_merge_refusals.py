"""Every input ``adapterkit merge`` refuses: exit 2, one line, and no --out folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.lifecycle.helpers import LABELS, make_bundle, other_base, run

from adapterkit.bundle import read_bundle

BUNDLES = {
    "lora1": ("lora", {"seed": 1, "labels": LABELS}),
    "lora2": ("lora", {"seed": 2, "labels": LABELS}),
    "lora_other_labels": ("lora", {"seed": 3, "labels": ["x", "y", "z"]}),
    "lora_query": ("lora", {"seed": 4, "target_modules": ["query"]}),
    "pfeiffer1": ("pfeiffer", {"seed": 1}),
    "pfeiffer2": ("pfeiffer", {"seed": 2}),
    "pfeiffer_wide": ("pfeiffer", {"seed": 3, "bottleneck_size": 8}),
    "dora1": ("dora", {"seed": 1}),
    "dora2": ("dora", {"seed": 2}),
    "full1": ("full", {"seed": 1, "labels": LABELS}),
    "full2": ("full", {"seed": 2, "labels": LABELS}),
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundles")
    for name, (method, options) in BUNDLES.items():
        make_bundle(folder / name, method, **options)
    make_bundle(folder / "lora_other_base", seed=1, labels=LABELS, base=other_base())
    return folder


CASES = {
    "one bundle": (["lora1"], [], "at least 2 bundles"),
    "methods": (["lora1", "pfeiffer1"], [], "one method"),
    "bases": (["lora1", "lora_other_base"], [], "one base"),
    "bottleneck shapes": (["pfeiffer1", "pfeiffer_wide"], [], "bottleneck_size"),
    "lora targets": (["lora1", "lora_query"], [], "target_modules"),
    "weights length": (["lora1", "lora2"], ["--weights", "1"], "one per bundle"),
    "nan weight": (["lora1", "lora2"], ["--weights", "nan", "1"], "finite"),
    "weights not numbers": (["lora1", "lora2"], ["--weights", "a", "1"], "invalid float"),
    "density 0": (["lora1", "lora2"], ["--combine", "ties", "--density", "0"], "(0, 1]"),
    "density over 1": (["lora1", "lora2"], ["--combine", "dare", "--density", "1.5"], "(0, 1]"),
    "density with linear": (["lora1", "lora2"], ["--density", "0.5"], "ties or dare"),
    "rank 0": (["lora1", "lora2"], ["--rank", "0"], "at least 1"),
    "rank on bottleneck": (["pfeiffer1", "pfeiffer2"], ["--rank", "4"], "LoRA"),
    "ties on bottleneck": (["pfeiffer1", "pfeiffer2"], ["--combine", "ties"], "linear"),
    "dora": (["dora1", "dora2"], [], "DoRA"),
    "full fine-tuning": (["full1", "full2"], [], "full fine-tuning"),
    "heads differ": (["lora1", "lora_other_labels"], [], "--head-from"),
    "head-from out of range": (["lora1", "lora2"], ["--head-from", "3"], "1 to 2"),
    "head-from unknown path": (["lora1", "lora2"], ["--head-from", "nowhere"], "--head-from"),
    "missing bundle": (["lora1", "nowhere"], [], "nowhere"),
    "bad name": (["lora1", "lora2"], ["--name", "a.b"], "adapter name 'a.b'"),
    "zero-sum weights on heads": (["lora1", "lora2"], ["--weights", "1", "-1"], "--head-from"),
    "zero-sum weights on bottlenecks": (
        ["pfeiffer1", "pfeiffer2"],
        ["--weights", "1", "-1"],
        "sum to 0",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_in_one_line_leaving_no_out_folder(
    case: str, bundles: Path, tmp_path: Path
) -> None:
    names, flags, expected = CASES[case]
    out = tmp_path / "merged"
    code, stdout, err = run("merge", *[bundles / n for n in names], *flags, "--out", out)
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert stdout == "" and not out.exists()
    assert not list(tmp_path.iterdir())  # no staging folder left either


@pytest.mark.parametrize("out", ["lora1", "."])
def test_out_may_not_be_or_hold_an_input(out: str, bundles: Path) -> None:
    before = read_bundle(bundles / "lora1")[0]["files"]
    code, _, err = run("merge", bundles / "lora1", bundles / "lora2", "--out", bundles / out)
    assert code == 2 and err.count("\n") == 1 and "replace it" in err, err
    assert read_bundle(bundles / "lora1")[0]["files"] == before


def test_out_may_not_replace_a_folder_that_is_no_bundle(bundles: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    code, _, err = run("merge", bundles / "lora1", bundles / "lora2", "--out", tmp_path)
    assert code == 2 and err.count("\n") == 1 and "no bundle" in err, err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_an_out_folder_whose_name_is_no_adapter_name_asks_for_name(
    bundles: Path, tmp_path: Path
) -> None:
    out = tmp_path / "merged.v2"
    code, _, err = run("merge", bundles / "lora1", bundles / "lora2", "--out", out)
    assert code == 2 and err.count("\n") == 1 and "pass --name" in err, err
    assert not out.exists()
    code, _, err = run("merge", bundles / "lora1", bundles / "lora2", "--out", out, "--name", "v2")
    assert code == 0 and read_bundle(out)[0]["name"] == "v2", err
