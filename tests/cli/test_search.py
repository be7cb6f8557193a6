"""``adapterkit search`` on a tiny model: trials end to end, resume after kill -9, the test
split scored once at the end, bad spaces refused in one line."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.tiny import save_tiny_bert

from adapterkit.cli import main
from adapterkit.search.space import DEFAULT_SPACE, parse_space, sample

WORDS = ["good", "bad", "movie", "plot", "fun", "dull"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("m") / "model", WORDS)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    rows = "good fun movie,pos\nbad dull plot,neg\ngood movie,pos\ndull plot,neg\n"
    for split, copies in (("train", 6), ("validation", 2), ("test", 2)):
        (folder / f"{split}.csv").write_text("text,label\n" + rows * copies)
    return folder


def _search(model_dir: Path, data: Path, out: Path, *extra: str) -> int:
    argv = ["search", "--model", str(model_dir), "--data", str(data), "--output", str(out)]
    return main([*argv, "--epochs", "2", "--batch-size", "4", *extra])


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "trials.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_search_runs_its_trials_and_scores_the_best_on_test_once(model_dir, data, tmp_path):
    out = tmp_path / "search"
    assert _search(model_dir, data, out, "--trials", "5", "--parallel", "2") == 0
    rows = _rows(out)
    assert len(rows) == 5 and {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"}
    assert all(r["method"] in ("pfeiffer", "houlsby", "lora") for r in rows)
    for row in rows:  # method options only where the method has them
        assert (row["rank"] != "") == (row["method"] == "lora")
        assert (row["reduction_factor"] != "") == (row["method"] != "lora")
    # Trials looked at validation only; the test split was scored once, for the best.
    for trial in (out / "trials").iterdir():
        metrics = json.loads((trial / "metrics.json").read_text())
        assert metrics["split"] == "validation" and not (trial / "validation_metrics.json").exists()
    best = json.loads((out / "best" / "search_best.json").read_text())
    assert (out / "best" / "adapter" / "adapterkit.safetensors").is_file()
    test = json.loads((out / "best" / "metrics.json").read_text())
    assert test["split"] == "test" and test["trial"] == best["trial"]
    # The retrain command trains this trial: the options the search held fixed included.
    retrain = best["retrain"].split()
    assert retrain[:3] == ["adapterkit", "train", "--model"]
    assert " --epochs 2 " in best["retrain"] and " --batch-size 4" in best["retrain"]
    for name, value in best["options"].items():
        flag = "--" + name.replace("_", "-")
        assert retrain[retrain.index(flag) + 1] == str(value)
    assert "--output" not in retrain and "--name" not in retrain
    assert "| trial | accuracy |" in (out / "report.md").read_text()
    plots = {p.name for p in (out / "plots").iterdir()}
    assert {"score_by_trial.png", "score_by_parameter.png"} <= plots


def test_a_crashed_trial_is_recorded_and_the_search_goes_on(
    model_dir, data, tmp_path, monkeypatch
) -> None:
    from adapterkit.search import study

    real, calls = study.train_jobs, []

    def crash_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)\nmore")
        return real(*args, **kwargs)

    monkeypatch.setattr(study, "train_jobs", crash_once)
    out = tmp_path / "search"
    assert _search(model_dir, data, out, "--trials", "2", "--parallel", "1") == 0
    rows = _rows(out)
    assert [r["state"] for r in rows].count("FAIL") == 1
    failed = next(r for r in rows if r["state"] == "FAIL")
    assert failed["error"] == "RuntimeError: CUDA out of memory (simulated)"
    assert sum(r["state"] in ("COMPLETE", "PRUNED") for r in rows) == 2


def test_resume_after_kill_9_does_not_repeat_finished_trials(model_dir, data, tmp_path):
    out = tmp_path / "search"
    argv = [sys.executable, "-m", "adapterkit", "search", "--model", str(model_dir)]
    argv += ["--data", str(data), "--output", str(out), "--epochs", "3", "--batch-size", "2"]
    argv += ["--trials", "4", "--parallel", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "trials" / "trial-000" / "metrics.json"
    second = out / "trials" / "trial-001" / "checkpoints" / "last"
    deadline = time.monotonic() + 120
    while not second.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.is_file() and not (out / "best").exists()  # killed after one finished trial
    stamp = first.stat().st_mtime_ns
    again = ("--epochs", "3", "--batch-size", "2", "--trials", "4", "--parallel", "1")
    assert _search(model_dir, data, out, *again) == 2  # a search is there: --resume or not
    assert _search(model_dir, data, out, *again, "--resume") == 0
    states = [r["state"] for r in _rows(out)]
    assert states.count("FAIL") == 1  # the trial the kill cut short
    assert states.count("COMPLETE") + states.count("PRUNED") == 4
    assert first.stat().st_mtime_ns == stamp  # trial 0 was not run again
    assert (out / "best" / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("lr_typo: {type: uniform, low: 0, high: 1}\n", "unknown option 'lr_typo'"),
        ("lr: {type: uniform, low: 0.1, high: 0.1}\n", "lr has an empty range [0.1, 0.1]"),
        ("lr: {type: loguniform, low: 0, high: 0.1}\n", "log-uniform, so low must be > 0"),
        ("lr: {type: normal, low: 0, high: 1}\n", "lr needs a type"),
        ("method: {type: categorical, choices: []}\n", "non-empty list of choices"),
        ("- lr\n", "expected 'option: {type: ..., ...}' pairs"),
    ],
)
def test_bad_spaces_are_one_line(model_dir, data, tmp_path, capsys, space, message) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(space)
    out = tmp_path / "search"
    assert _search(model_dir, data, out, "--space", str(path), "--trials", "2") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_zero_trials_and_a_study_of_another_search_are_refused(model_dir, data, tmp_path, capsys):
    out = tmp_path / "search"
    assert _search(model_dir, data, out, "--trials", "0") == 2
    assert "--trials must be a whole number >= 1, got 0" in capsys.readouterr().err
    assert _search(model_dir, data, out, "--prune-from", "0") == 2
    assert "--prune-from must be a whole number >= 1, got 0" in capsys.readouterr().err
    config = tmp_path / "search.yaml"
    config.write_text("trials: lots\n")  # a config file's value is no argparse int
    assert _search(model_dir, data, out, "--config", str(config)) == 2
    assert "--trials must be a whole number >= 1, got 'lots'" in capsys.readouterr().err
    assert not (out / "study.db").exists()
    assert _search(model_dir, data, out, "--trials", "1") == 0
    other = tmp_path / "space.yaml"
    other.write_text("lr: {type: loguniform, low: 1.0e-4, high: 1.0e-3}\n")
    capsys.readouterr()
    assert _search(model_dir, data, out, "--trials", "2", "--space", str(other), "--resume") == 2
    assert "is a study of another search" in capsys.readouterr().err


def test_without_a_validation_split_one_is_carved_and_the_log_says_so(
    model_dir, data, tmp_path, capsys
) -> None:
    argv = ["search", "--model", str(model_dir), "--train", str(data / "train.csv")]
    argv += ["--output", str(tmp_path / "s"), "--epochs", "1", "--trials", "1"]
    assert main(argv) == 0
    assert "search: data: no validation split: carved 10% of train" in capsys.readouterr().out


def test_search_options_come_from_the_yaml_config_too(model_dir, data, tmp_path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("lr: {type: loguniform, low: 1.0e-3, high: 1.0e-2}\n")
    config = tmp_path / "search.yaml"
    config.write_text(f"space: {space}\ntrials: 2\nparallel: 2\nmethod: lora\n")
    out = tmp_path / "search"
    assert _search(model_dir, data, out, "--config", str(config)) == 0
    rows = _rows(out)
    assert len(rows) == 2 and {r["method"] for r in rows} == {"lora"}
    assert all(1e-3 <= float(r["lr"]) <= 1e-2 for r in rows)


def test_sampling_leaves_out_options_the_method_does_not_have() -> None:
    params = parse_space(
        DEFAULT_SPACE,
        {k: k for k in DEFAULT_SPACE},
        {"rank": "r", "reduction_factor": "reduction_factor"},
    )

    class Trial:  # Optuna's suggest_* contract, with fixed picks
        def suggest_categorical(self, name, choices):
            return "lora" if name == "method" else choices[0]

        def suggest_float(self, name, low, high, log=False):
            return low

    values = sample(Trial(), params, "pfeiffer")
    assert values["method"] == "lora" and values["rank"] == 4
    assert "reduction_factor" not in values and values["lr"] == 3e-4


def test_a_search_on_text_generation_minimises_validation_perplexity(tmp_path: Path) -> None:
    from tests.generation.test_cli_generation import PAIRS, _write_jsonl, save_lm

    lm = save_lm(tmp_path / "llama")
    rows = [{"prompt": f"translate to spanish : {en}", "response": es} for en, es in PAIRS]
    data = tmp_path / "data"
    data.mkdir()
    for split, part in (("train", rows * 2), ("validation", rows[:4]), ("test", rows[4:])):
        _write_jsonl(data / f"{split}.jsonl", part)
    out = tmp_path / "search"
    space = tmp_path / "space.yaml"
    space.write_text("lr: {type: loguniform, low: 1.0e-3, high: 1.0e-1}\n")
    code = _search(lm, data, out, "--trials", "2", "--parallel", "2", "--space", str(space))
    assert code == 0
    rows_out = _rows(out)
    scores = {r["trial"]: float(r["perplexity"]) for r in rows_out if r["state"] == "COMPLETE"}
    best = json.loads((out / "best" / "search_best.json").read_text())
    assert best["trial"] == f"trial-{int(min(scores, key=scores.get)):03d}"  # lowest perplexity
    test = json.loads((out / "best" / "metrics.json").read_text())
    assert test["split"] == "test" and test["perplexity"] > 1 and "chrf" in test


def test_a_pruned_trial_leaves_its_slot_to_a_new_one_in_the_same_run(
    model_dir, data, tmp_path, monkeypatch, capsys
) -> None:
    import optuna

    def prune_trial_zero(trial: optuna.trial.Trial) -> bool:
        return trial.number == 0

    from adapterkit.search import study

    monkeypatch.setattr(optuna.trial.Trial, "should_prune", prune_trial_zero)
    real, runs = study.train_jobs, []
    monkeypatch.setattr(study, "train_jobs", lambda *a, **k: runs.append(1) or real(*a, **k))
    out = tmp_path / "search"
    assert _search(model_dir, data, out, "--trials", "3", "--parallel", "2") == 0
    rows = {row["trial"]: row for row in _rows(out)}
    assert [rows[n]["state"] for n in ("0", "1", "2")] == ["PRUNED", "COMPLETE", "COMPLETE"]
    assert rows["0"]["epoch_1"] and not rows["0"]["epoch_2"]  # it left after epoch 1
    # Trial 2 took trial 0's place in the first packed run: no second run was needed.
    assert len(runs) == 1
    assert all(float(rows[n]["seconds"]) > 0 for n in ("0", "1", "2"))  # each its own
    # A pruned trial's value is its last epoch's score: not a final score to rank.
    assert rows["0"]["accuracy"] == "" and rows["1"]["accuracy"] != ""
    report = (out / "report.md").read_text()
    assert "3 trials (1 pruned, 2 complete)" in report
    ranked = [
        line.split(" | ")[0] for line in report.splitlines() if line[:3] in ("| 0", "| 1", "| 2")
    ]
    assert ranked and "| 0" not in ranked
    assert "trial-000 pruned; a new trial takes its place" in capsys.readouterr().out


def test_prune_from_sets_the_first_epoch_a_trial_may_be_pruned(
    model_dir, data, tmp_path, monkeypatch
) -> None:
    import optuna

    seen, real = {}, optuna.pruners.MedianPruner
    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **kw: seen.update(kw) or real(**kw))
    out = tmp_path / "search"
    assert _search(model_dir, data, out, "--trials", "1", "--prune-from", "3") == 0
    assert seen["n_warmup_steps"] == 3  # Optuna never prunes a step below this


def test_a_trial_at_its_last_epoch_finishes_instead_of_being_pruned(
    model_dir, data, tmp_path, monkeypatch
) -> None:
    import optuna

    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda trial: True)
    out = tmp_path / "search"
    assert _search(model_dir, data, out, "--trials", "2", "--epochs", "1") == 0
    assert [row["state"] for row in _rows(out)] == ["COMPLETE", "COMPLETE"]
