"""``adapterkit compose``: the bundle it writes, loading it back, `info`, mixed batches
beside plain adapters, and refusals in one line with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.compose.helpers import composed, composed_key, hosts_of, layer_input, model_with, parts
from tests.lifecycle.helpers import LABELS, make_bundle, other_base, run
from tests.tiny import assert_mixed_equals_rows_alone, main_output, tiny_inputs, tiny_model

from adapterkit.bundle import read_bundle
from adapterkit.model import AdaptedModel


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("parts")
    found = parts(folder)
    found["houlsby"], found["foreign"] = folder / "houlsby", folder / "foreign"
    make_bundle(found["houlsby"], "houlsby", seed=6, labels=LABELS)
    make_bundle(found["foreign"], "pfeiffer", seed=7, labels=LABELS, base=other_base())
    found["average"] = composed(folder, "average", ["a", "b"], found)
    return found


@pytest.fixture(scope="module")
def average(bundles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "ensemble"
    code, stdout, stderr = run(
        "compose", bundles["a"], bundles["b"], bundles["lora"], "--mode", "average",
        "--out", out, "--head-from", "2",
    )  # fmt: skip
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["mode"] == "average" and summary["parts"] == ["a", "a", "a"]
    return out


def test_the_bundle_names_its_parts_by_sha256_and_holds_their_weights(bundles, average) -> None:
    record, tensors = read_bundle(average)
    assert record["method"] == "composition" and record["config"]["mode"] == "average"
    for place, name in enumerate(["a", "b", "lora"]):
        part, theirs = read_bundle(bundles[name])
        sha = part["files"]["adapterkit.safetensors"]["sha256"]
        assert record["parents"][place] == {"name": "a", "sha256": sha, "relation": "part"}
        assert record["config"]["parts"][place]["sha256"] == sha
        for key, tensor in theirs.items():
            if key.startswith("adapter."):
                assert torch.equal(tensors[composed_key(key, part["targets"], place)], tensor)
    part_b, theirs_b = read_bundle(bundles["b"])  # --head-from 2: b's head and labels
    assert record["task"]["labels"] == ["x", "y", "z"] and record["head"] == part_b["head"]
    assert torch.equal(tensors["head.out.weight"], theirs_b["head.out.weight"])


def test_a_saved_composition_reloads_with_identical_logits(average, tmp_path: Path) -> None:
    first = AdaptedModel(tiny_model("bert")).eval()
    first.load_adapter(average, "ens")
    first.save_adapter("ens", tmp_path / "again")
    second = AdaptedModel(tiny_model("bert")).eval()
    second.load_adapter(tmp_path / "again", "ens")
    inputs = tiny_inputs("bert")
    with torch.no_grad():
        logits = [
            m.head_logits("ens", main_output(m(**inputs, adapter="ens")), inputs["attention_mask"])
            for m in (first, second)
        ]
        plain = main_output(first(**inputs, adapter=None))
    assert torch.equal(logits[0], logits[1]) and logits[0].shape == (3, 3)
    assert (main_output(first(**inputs, adapter="ens")) - plain).abs().max() > 1e-3


def test_a_mixed_batch_of_compositions_and_plain_adapters_equals_each_alone(
    bundles, average, tmp_path: Path
) -> None:
    stack = tmp_path / "stack"
    assert run("compose", bundles["lora"], bundles["a"], "--mode", "stack", "--out", stack,
               "--head-from", "2")[0] == 0  # fmt: skip
    model = model_with({"ens": average, "stack": stack, "a": bundles["a"], "lora": bundles["lora"]})
    routes = ["ens", "a", None, "stack", "ens", "lora"]
    assert_mixed_equals_rows_alone(model, tiny_inputs("bert", batch=6, length=7), routes)


@torch.no_grad()
def test_parts_on_other_layers_compose_where_they_are(bundles, tmp_path: Path) -> None:
    out = tmp_path / "mixed"
    assert run("compose", bundles["houlsby"], bundles["a"], "--mode", "average", "--out", out,
               "--head-from", "1")[0] == 0  # fmt: skip
    model = model_with({"mixed": out, "a": bundles["a"], "houlsby": bundles["houlsby"]})
    layers = hosts_of(model, "mixed")
    assert len(layers) == 4 and read_bundle(out)[0]["targets"] == list(layers)
    for name, host in layers.items():
        x, base = layer_input(host)
        both = "a" in host.adapters  # Pfeiffer adapts the FFN outputs only
        assert both == name.endswith("layer.0.output.dense") or name.endswith(
            "layer.1.output.dense"
        )
        other = host.adapters["a"](x, base, None) if both else base  # absent: unchanged
        expected = torch.stack([host.adapters["houlsby"](x, base, None), other]).mean(0)
        assert torch.equal(host.adapters["mixed"](x, base, None), expected)


@torch.no_grad()
def test_a_weighted_average_weighs_each_part(bundles, tmp_path: Path) -> None:
    out = tmp_path / "weighted"
    assert run("compose", bundles["a"], bundles["houlsby"], "--mode", "average", "--out", out,
               "--head-from", "1", "--weights", "3", "1")[0] == 0  # fmt: skip
    model = model_with({"w": out, "a": bundles["a"], "houlsby": bundles["houlsby"]})
    for host in hosts_of(model, "w").values():
        x, base = layer_input(host)
        a = host.adapters["a"](x, base, None) if "a" in host.adapters else base
        expected = 0.75 * a + 0.25 * host.adapters["houlsby"](x, base, None)
        torch.testing.assert_close(host.adapters["w"](x, base, None), expected)


def test_compositions_do_not_merge(average, tmp_path: Path) -> None:
    code, _, stderr = run("merge", average, average, "--out", tmp_path / "merged")
    assert code == 2 and "compositions do not merge" in stderr
    assert not (tmp_path / "merged").exists()


def test_info_shows_the_parts(average) -> None:
    code, stdout, _ = run("info", average)
    shown = json.loads(stdout)
    assert code == 0 and shown["method"] == "composition"
    assert shown["composition"]["mode"] == "average"
    assert [p["method"] for p in shown["composition"]["parts"]] == ["bottleneck"] * 2 + ["lora"]
    assert [p["relation"] for p in shown["parents"]] == ["part"] * 3


REFUSALS = {
    "another base": (["a", "foreign"], [], "made for base"),
    "missing part": (["a", "nowhere"], [], "no bundle directory"),
    "one part": (["a"], [], "at least 2 bundles"),
    "no head chosen": (["a", "b"], [], "pass --head-from"),
    "head out of range": (["a", "b"], ["--head-from", "3"], "give 1 to 2"),
    "fusion untrained": (["a", "b"], ["--mode", "fusion"], "invalid choice"),
    "weights of a stack": (["a", "b"], ["--mode", "stack", "--weights", "1", "2"], "average"),
    "one weight short": (["a", "b"], ["--head-from", "1", "--weights", "1"], "one per bundle"),
    "weights summing to 0": (["a", "b"], ["--head-from", "1", "--weights", "1", "-1"], "sum"),
    "nested": (["a", "average"], ["--head-from", "1"], "compositions do not nest"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_bad_compositions_are_one_line_and_write_nothing(bundles, tmp_path, case) -> None:
    names, extra, message = REFUSALS[case]
    paths = [bundles.get(n, tmp_path / n) for n in names]
    mode = [] if "--mode" in extra else ["--mode", "average"]
    code, _, stderr = run("compose", *paths, *mode, "--out", tmp_path / "out", *extra)
    assert code == 2 and message in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "out").exists()


def test_a_composition_serves_over_http_beside_plain_adapters(tmp_path: Path) -> None:
    """In-process server (batched path): answers equal the in-process ones, whatever the mix."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient
    from tests.serve.conftest import WORDS, add_random_adapter, close
    from tests.tiny import save_tiny_bert

    from adapterkit.lifecycle.compose_bundles import compose_bundles
    from adapterkit.models import load_base, load_tokenizer
    from adapterkit.predict import predict_raw
    from adapterkit.serve import ServeSettings, create_app
    from adapterkit.tasks import make_task, task_from_info

    model_dir = save_tiny_bert(tmp_path / "bert", WORDS)
    tokenizer = load_tokenizer(str(model_dir))
    writer = AdaptedModel(load_base(str(model_dir)), name_or_path=str(model_dir))
    parts_dir, served = tmp_path / "parts", tmp_path / "served"
    task = make_task("sequence-classification", tokenizer, ["sport", "food"], 48)
    for seed, name in enumerate(["p", "q"], start=1):
        add_random_adapter(writer, name, "pfeiffer", task, seed, parts_dir)
    add_random_adapter(writer, "plain", "lora", task, 3, served)
    compose_bundles([parts_dir / "p", parts_dir / "q"], served / "ens", "average", head_from="1")
    model = AdaptedModel(load_base(str(model_dir)), name_or_path=str(model_dir)).eval()
    texts = {"ens": ["the ball was great", "my bread"], "plain": ["apple code", "the team"]}
    want = {}
    for name in texts:
        model.load_adapter(served / name, name)
        info = task_from_info(model.task_info[name], tokenizer)
        want[name] = predict_raw(model, name, info, texts[name])
    settings = ServeSettings(model=str(model_dir), adapters=served, max_wait_ms=20.0)
    with TestClient(create_app(settings)) as client:

        def ask(name: str) -> bool:
            answer = client.post("/v1/predict", json={"adapter": name, "inputs": texts[name]})
            return close(answer.json()["predictions"], want[name])

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(ask, ["ens", "plain"] * 4))
