"""``adapterkit merge`` end to end on the tiny BERT: what the merged bundle holds, that it
loads and serves as any bundle, and that it records its parents."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.lifecycle.helpers import LABELS, deltas, logits, make_bundle, run
from tests.tiny import tiny_inputs, tiny_model

from adapterkit.bundle import read_bundle
from adapterkit.model import AdaptedModel
from adapterkit.train.job import adapter_modules


def load(path: Path) -> AdaptedModel:
    model = AdaptedModel(tiny_model("bert"))
    model.load_adapter(path, name="m")
    return model


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"r": 8, "alpha": 16}, {"r": 8, "alpha": 16}),
        ({"r": 2, "alpha": 4}, {"r": 6, "alpha": 3, "use_rslora": True}),  # ranks may differ
    ],
)
def test_lora_linear_merge_is_the_weighted_sum_of_the_deltas(
    first: dict, second: dict, tmp_path: Path
) -> None:
    one = make_bundle(tmp_path / "one", seed=1, labels=LABELS, **first)
    two = make_bundle(tmp_path / "two", seed=2, labels=LABELS, **second)
    out = tmp_path / "merged"
    code, stdout, err = run(
        "merge", tmp_path / "one", tmp_path / "two", "--weights", "0.7", "0.3", "--out", out
    )
    assert code == 0, err
    summary = json.loads(stdout)
    rank = first["r"] + second["r"]
    assert summary["rank"] == rank and summary["svd_relative_error"] < 1e-6
    merged = load(out)
    assert merged.configs["m"].r == rank and merged.configs["m"].scaling == 1.0
    d1, d2, dm = deltas(one, "a"), deltas(two, "a"), deltas(merged, "m")
    assert set(dm) == set(d1) and len(dm) == 10
    for layer, delta in dm.items():
        torch.testing.assert_close(delta, 0.7 * d1[layer] + 0.3 * d2[layer], rtol=1e-5, atol=1e-5)
    # The heads (same labels) are averaged with the same weights.
    head = load_file(out / "adapterkit.safetensors")["head.out.weight"]
    expected = 0.7 * one.heads["a"].out.weight + 0.3 * two.heads["a"].out.weight
    torch.testing.assert_close(head, expected.detach())


def test_averaging_two_identical_bundles_gives_back_the_same_logits(tmp_path: Path) -> None:
    parent = make_bundle(tmp_path / "one", seed=1, labels=LABELS)
    make_bundle(tmp_path / "two", seed=1, labels=LABELS)
    code, _, err = run("merge", tmp_path / "one", tmp_path / "two", "--out", tmp_path / "m")
    assert code == 0, err
    merged = load(tmp_path / "m")
    torch.testing.assert_close(logits(merged, "m"), logits(parent, "a"), rtol=1e-5, atol=1e-5)
    inputs = tiny_inputs("bert")
    with torch.no_grad():  # the adapter matters, so equal logits say something
        hidden = parent(**inputs, adapter=None).last_hidden_state
        base = parent.head_logits("a", hidden, inputs["attention_mask"])
    assert (logits(parent, "a") - base).abs().max() > 1e-3


def test_merged_bundle_serves_beside_its_parents_in_one_batch(tmp_path: Path) -> None:
    make_bundle(tmp_path / "one", seed=1, labels=LABELS)
    make_bundle(tmp_path / "two", seed=2, labels=LABELS)
    code, _, err = run("merge", tmp_path / "one", tmp_path / "two", "--out", tmp_path / "m")
    assert code == 0, err
    model = load(tmp_path / "m")
    model.load_adapter(tmp_path / "one", name="one")
    inputs = tiny_inputs("bert")
    routes = ["m", "one", "m"]
    with torch.no_grad():
        mixed = model(**inputs, adapter=routes).last_hidden_state
        for row, name in enumerate(routes):
            alone = model(**{k: v[row : row + 1] for k, v in inputs.items()}, adapter=name)
            torch.testing.assert_close(
                mixed[row : row + 1], alone.last_hidden_state, rtol=1e-5, atol=1e-5
            )
    assert (mixed[0] - mixed[1]).abs().max() > 1e-3


def test_a_lower_rank_is_lossy_and_says_how_much(tmp_path: Path) -> None:
    make_bundle(tmp_path / "one", seed=1)
    make_bundle(tmp_path / "two", seed=2)
    code, stdout, err = run(
        "merge", tmp_path / "one", tmp_path / "two", "--rank", "4", "--out", tmp_path / "m"
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["rank"] == 4 and 0.05 < summary["svd_relative_error"] < 1
    assert load(tmp_path / "m").configs["m"].r == 4


@pytest.mark.parametrize("combine", ["ties", "dare"])
def test_ties_and_dare_merge_and_record_how(combine: str, tmp_path: Path) -> None:
    make_bundle(tmp_path / "one", seed=1)
    make_bundle(tmp_path / "two", seed=2)
    argv = ["merge", tmp_path / "one", tmp_path / "two", "--combine", combine, "--density", "0.3"]
    code, _, err = run(*argv, "--rank", "32", "--out", tmp_path / "m")
    assert code == 0, err
    record, _ = read_bundle(tmp_path / "m")
    assert record["merge"]["combine"] == combine and record["merge"]["density"] == 0.3
    assert record["merge"]["svd_relative_error"] < 1e-6  # rank min(out, in): exact
    assert [p["weight"] for p in record["parents"]] == (
        [1.0, 1.0] if combine == "ties" else [0.5, 0.5]
    )
    if combine == "dare":  # seeded: the same command writes the same weights
        code, _, err = run(*argv, "--rank", "32", "--out", tmp_path / "again")
        assert code == 0, err
        assert record["files"] == read_bundle(tmp_path / "again")[0]["files"]
    load(tmp_path / "m")


def pruned_adalora(out: Path, seed: int, kept: Callable[[int], int]) -> AdaptedModel:
    """An AdaLoRA bundle (rank 4) whose layer ``i`` kept ``kept(i)`` ranks, as training
    leaves one: the masked ranks dropped and the pattern recorded."""
    model = make_bundle(out, "adalora", seed=seed, labels=LABELS, r=4, target_r=2)
    modules = adapter_modules(model, "a")
    with torch.no_grad():
        for index, module in enumerate(modules.values()):
            module.rank_mask.copy_((torch.arange(4) < kept(index)).float())
    model.configs["a"].training_controller(modules, total_steps=10).finish()
    model.save_adapter("a", out)
    return model


@pytest.mark.parametrize("partner", ["adalora", "lora"])
def test_adalora_parents_merge_as_their_lora_deltas(partner: str, tmp_path: Path) -> None:
    # Layer ranks 0, 1, 2, 3, 4, 0, ...: a layer pruned away, the others at their own rank.
    one = pruned_adalora(tmp_path / "one", 1, lambda i: i % 5)
    if partner == "adalora":
        two = pruned_adalora(tmp_path / "two", 2, lambda i: (3 * i + 1) % 5)
    else:
        two = make_bundle(tmp_path / "two", seed=2, labels=LABELS, r=2, alpha=4)
    code, stdout, err = run(
        "merge",
        tmp_path / "one",
        tmp_path / "two",
        "--weights",
        "0.7",
        "0.3",
        "--out",
        tmp_path / "m",
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["method"] == "lora" and summary["rank"] == (8 if partner == "adalora" else 6)
    merged = load(tmp_path / "m")
    d1, d2, dm = deltas(one, "a"), deltas(two, "a"), deltas(merged, "m")
    assert set(dm) == set(d1) == set(d2) and len(dm) == 10
    assert d1["encoder.layer.0.attention.self.query"].abs().max() == 0  # pruned to rank 0
    for layer, delta in dm.items():
        torch.testing.assert_close(delta, 0.7 * d1[layer] + 0.3 * d2[layer], rtol=1e-5, atol=1e-5)
    record, _ = read_bundle(tmp_path / "m")
    assert record["method"] == "lora" and [p["name"] for p in record["parents"]] == ["a", "a"]


@pytest.mark.parametrize(("method", "options"), [("pfeiffer", {}), ("ia3", {})])
def test_other_methods_merge_as_weighted_averages(
    method: str, options: dict, tmp_path: Path
) -> None:
    make_bundle(tmp_path / "one", method, seed=1, **options)
    make_bundle(tmp_path / "two", method, seed=2, **options)
    code, _, err = run(
        "merge", tmp_path / "one", tmp_path / "two", "--weights", "2", "1", "--out", tmp_path / "m"
    )
    assert code == 0, err
    _, t1 = read_bundle(tmp_path / "one")
    _, t2 = read_bundle(tmp_path / "two")
    record, merged = read_bundle(tmp_path / "m")
    assert set(merged) == set(t1) and record["method"] == read_bundle(tmp_path / "one")[0]["method"]
    for key, tensor in merged.items():
        torch.testing.assert_close(tensor, (2 * t1[key] + t2[key]) / 3)
    model = load(tmp_path / "m")
    with torch.no_grad():
        out = model(**tiny_inputs("bert"), adapter="m").last_hidden_state
    assert torch.isfinite(out).all()


def test_head_from_keeps_one_bundles_head_and_task(tmp_path: Path) -> None:
    make_bundle(tmp_path / "one", seed=1, labels=LABELS)
    make_bundle(tmp_path / "two", seed=2, labels=["a", "b", "c"])
    code, _, err = run("merge", tmp_path / "one", tmp_path / "two", "--out", tmp_path / "m")
    assert code == 2 and err.count("\n") == 1 and "--head-from" in err
    assert not (tmp_path / "m").exists()
    for pick in ("2", str(tmp_path / "two")):
        code, _, err = run(
            "merge",
            tmp_path / "one",
            tmp_path / "two",
            "--head-from",
            pick,
            "--out",
            tmp_path / "m",
        )
        assert code == 0, err
        record, tensors = read_bundle(tmp_path / "m")
        parent_record, parent = read_bundle(tmp_path / "two")
        assert record["task"] == parent_record["task"] and record["head"] == parent_record["head"]
        for key in ("head.out.weight", "head.dense.bias"):
            assert torch.equal(tensors[key], parent[key])
        assert load(tmp_path / "m").task_info["m"]["labels"] == ["a", "b", "c"]


def test_headless_bundles_merge_without_a_head(tmp_path: Path) -> None:
    make_bundle(tmp_path / "one", seed=1)
    make_bundle(tmp_path / "two", seed=2)
    code, stdout, err = run("merge", tmp_path / "one", tmp_path / "two", "--out", tmp_path / "m")
    assert code == 0, err
    assert json.loads(stdout)["head"] is None
    record, tensors = read_bundle(tmp_path / "m")
    assert record["head"] is None and not any(k.startswith("head.") for k in tensors)


def test_info_shows_the_parents(tmp_path: Path) -> None:
    make_bundle(tmp_path / "one", seed=1, labels=LABELS)
    make_bundle(tmp_path / "two", seed=2, labels=LABELS)
    code, _, err = run(
        "merge", tmp_path / "one", tmp_path / "two", "--weights", "0.25", "0.75",
        "--out", tmp_path / "m", "--name", "blend",
    )  # fmt: skip
    assert code == 0, err
    code, stdout, err = run("info", tmp_path / "m")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["name"] == "blend" and info["labels"] == LABELS
    checksums = [
        read_bundle(tmp_path / n)[0]["files"]["adapterkit.safetensors"]["sha256"]
        for n in ("one", "two")
    ]
    assert info["parents"] == [
        {"name": "a", "sha256": checksums[0], "relation": "merge", "weight": 0.25},
        {"name": "a", "sha256": checksums[1], "relation": "merge", "weight": 0.75},
    ]
