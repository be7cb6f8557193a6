"""``adapterkit search``: Optuna trials trained K at a time as the jobs of one packed run.

The study lives in ``<output>/study.db`` (SQLite), so ``--resume`` continues an
interrupted search, kill -9 included, without repeating finished trials (trials the
crash left running are marked failed). Each trial is a job in ``<output>/trials/<name>/``;
its validation score after each epoch feeds Optuna's median pruner, and a pruned trial
leaves its run at that epoch boundary. Only validation is searched: trials never
evaluate the test split, which is scored once, for the best trial, at the end
(``<output>/best/``). ``trials.csv`` and ``report.md`` list every trial, ``plots/``
draws them (:mod:`adapterkit.search.plots`).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from adapterkit.cli.flags import method_flags, option_keys
from adapterkit.cli.jobs import job_specs
from adapterkit.errors import AdapterkitError
from adapterkit.files import atomic_write_bytes, staged_dir
from adapterkit.methods import make_config
from adapterkit.search.plots import plot_search
from adapterkit.search.space import load_space, parse_space, sample
from adapterkit.tasks import GENERATION_TASKS, TASK_CLASSES
from adapterkit.train.options import JobSpec, RunHooks
from adapterkit.train.run import load_run_data, train_jobs

STUDY = "adapterkit-search"


def run_search(
    values: dict[str, Any],
    space_file: str | None,
    trials: int,
    parallel: int,
    log: Any = print,
) -> dict[str, Any]:
    """Run (or resume) a search over the merged ``train`` values; the best trial's record."""
    import optuna

    if trials < 1 or parallel < 1:
        raise AdapterkitError("--trials and --parallel must be >= 1")
    (base,) = _one_job(values)
    out = Path(values["output"])
    fields = {spec.dest: spec.name for spec in method_flags()}
    params = parse_space(load_space(space_file), option_keys(), fields, space_file or "space")
    task = _task_of(base, log)
    direction = "maximize" if getattr(TASK_CLASSES[task], "greater_is_better", True) else "minimize"
    metric = TASK_CLASSES[task].primary_metric
    identity = {"model": base.options.model, "data": base.options.data or base.options.train_file}
    identity["space"] = sorted(f"{p.dest}:{p.kind}:{p.low}:{p.high}:{p.choices}" for p in params)
    study = _open_study(out, bool(values.get("resume")), direction, identity, base.config.seed)
    log(f"search: {trials} trials of {task} on {identity['data']}, {parallel} at a time; {metric}")
    bar = tqdm(total=trials, initial=_counted(study), desc="trials", unit="trial", leave=False)

    def on_epoch(name: str, epoch: int, score: float) -> bool:
        trial = asked[name]
        trial.report(score, epoch)
        trial.set_user_attr(f"epoch_{epoch}", score)
        return trial.should_prune()

    while (done := _counted(study)) < trials:
        if _failed(study) > trials:
            raise AdapterkitError(f"{_failed(study)} trials failed; see {out / 'trials.csv'}")
        asked: dict[str, Any] = {}
        specs = []
        for _ in range(min(parallel, trials - done)):
            trial = study.ask()
            name = f"trial-{trial.number:03d}"
            chosen = sample(trial, params, base.options.method)
            trial.set_user_attr("options", chosen)
            asked[name] = trial
            specs.append(_trial_spec(values, name, chosen))
        started = time.perf_counter()
        try:
            finals = train_jobs(
                specs,
                out / "trials",
                log=lambda _: None,
                hooks=RunHooks(hold_out_test=True, nested=True, on_epoch=on_epoch),
            )
        except Exception as exc:  # a crashed batch of trials is recorded; the search goes on
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            for name, trial in asked.items():
                trial.set_user_attr("error", why)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                log(f"search: {name} failed ({why})")
            continue
        seconds = time.perf_counter() - started
        for name, trial in asked.items():
            final = finals[name]
            trial.set_user_attr("seconds", round(seconds, 1))
            if final.get("pruned"):
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                log(f"search: {name} pruned after epoch {final['epochs_run']} {_brief(trial)}")
            else:
                study.tell(trial, float(final[metric]))
                log(f"search: {name} {metric} {final[metric]:.4f} {_brief(trial)}")
        write_trials(out, study, metric)
        bar.update(_counted(study) - bar.n)
    bar.close()
    best = study.best_trial
    record = finish(out, values, best, metric, log)
    write_trials(out, study, metric)
    plot_search(study, metric, out / "plots")
    return record


def _one_job(values: dict[str, Any]) -> list[JobSpec]:
    specs = job_specs(values)
    if len(specs) != 1:
        raise AdapterkitError(
            "search runs one task: drop the jobs list and multi-valued options (the space "
            "says what varies)"
        )
    return specs


def _task_of(spec: JobSpec, log: Any) -> str:
    """The task the data is for (loaded once here, saying what loading did, such as carving
    a validation split; head tasks only for now)."""
    options = spec.options
    splits = load_run_data(options, spec.config, log=lambda text: log(f"search: {text}"))
    if splits.task in GENERATION_TASKS or options.task == "seq2seq":
        raise AdapterkitError("search supports tasks with a head for now, not text generation")
    return splits.task


def _open_study(
    out: Path, resume: bool, direction: str, identity: dict[str, Any], seed: int
) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = out / "study.db"
    if path.exists() and not resume:
        raise AdapterkitError(f"{out} holds a search already: pass --resume, or a new --output")
    out.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=STUDY,
        storage=f"sqlite:///{path}",
        load_if_exists=True,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
    )
    before = study.user_attrs.get("adapterkit")
    if before is None:
        study.set_user_attr("adapterkit", identity)
    elif before != identity:
        raise AdapterkitError(
            f"{path} is a study of another search ({before['model']} on {before['data']}, its own "
            "space); use a new --output"
        )
    for trial in study.get_trials(deepcopy=False):  # left running by a crash
        if trial.state == optuna.trial.TrialState.RUNNING:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return study


def _counted(study: Any) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _failed(study: Any) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))


def _brief(trial: Any) -> str:
    options = trial.user_attrs.get("options", {})
    return "(" + ", ".join(f"{k} {_shown(v)}" for k, v in options.items()) + ")"


def _shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _trial_spec(values: dict[str, Any], name: str, chosen: dict[str, Any]) -> JobSpec:
    """The job of one trial: the command's options with the trial's values over them.

    Method options the trial's method does not have (``--rank`` on a bottleneck trial)
    are left out, not an error.
    """
    merged = {**values, **chosen, "adapter_name": name, "report_to": ["none"]}
    config = make_config(chosen["method"])
    for spec in method_flags():
        if merged.get(spec.dest) is not None and not hasattr(config, spec.name):
            merged[spec.dest] = None
    (job,) = job_specs(merged)
    return job


def retrain_command(values: dict[str, Any], options: dict[str, Any]) -> str:
    """The ``adapterkit train`` command that trains the best trial alone."""
    parts = ["adapterkit train", f"--model {values.get('model')}"]
    source = values.get("data")
    parts.append(f"--data {source}" if source else f"--train {values.get('train_file')}")
    flags = {spec.dest: spec.flag for spec in method_flags()}
    for dest, value in options.items():
        flag = flags.get(dest) or "--" + dest.replace("_", "-")
        parts.append(f"{flag} {value}")
    return " ".join(parts)


def finish(out: Path, values: dict[str, Any], best: Any, metric: str, log: Any) -> dict[str, Any]:
    """Copy the best trial's bundle to ``best/`` and score it on the test split, once."""
    from adapterkit.metrics import format_summary, write_metrics
    from adapterkit.predict import load_for_inference
    from adapterkit.tasks.base import encode_examples
    from adapterkit.train.evaluate import evaluate_features

    name = f"trial-{best.number:03d}"
    source = out / "trials" / name / "adapter"
    with staged_dir(out / "best") as tmp:
        shutil.copytree(source, tmp / "adapter")
    record = {
        "trial": name,
        "validation": {metric: best.value},
        "options": best.user_attrs.get("options", {}),
        "retrain": retrain_command(values, best.user_attrs.get("options", {})),
    }
    (spec,) = _one_job(values)
    options = spec.options
    splits = load_run_data(options, spec.config, log=lambda _: None)
    if splits.test:
        model, adapter, task = load_for_inference(out / "best" / "adapter", options.model)
        features = encode_examples(task, splits.test)
        metrics, loss, _ = evaluate_features(
            model, adapter, task, features, task.references(splits.test)
        )
        metrics = {**metrics, "loss": loss}
        write_metrics(
            out / "best", metrics, split="test", title=f"best trial ({name})", extra=record
        )
        record["test"] = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        log(f"search: best {name}, test:\n{format_summary({**metrics, 'split': 'test'})}")
    else:
        log(f"search: best {name}; the data has no test split")
    atomic_write_bytes(out / "best" / "search_best.json", json.dumps(record, indent=1).encode())
    log(f"search: retrain it alone with: {record['retrain']}")
    return record


def write_trials(out: Path, study: Any, metric: str) -> None:
    """``trials.csv`` (every trial) and ``report.md`` (trials ranked by their score)."""
    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.user_attrs.get("options", {})})
    epochs = sorted(
        {k for t in trials for k in t.user_attrs if k.startswith("epoch_")},
        key=lambda k: int(k.split("_")[1]),
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial", "state", metric, *names, *epochs, "seconds", "error"])
    for t in trials:
        options = t.user_attrs.get("options", {})
        writer.writerow(
            [t.number, t.state.name, "" if t.value is None else t.value]
            + [options.get(k, "") for k in names]
            + [t.user_attrs.get(k, "") for k in epochs]
            + [t.user_attrs.get("seconds", ""), t.user_attrs.get("error", "")]
        )
    atomic_write_bytes(out / "trials.csv", buffer.getvalue().encode())
    done = [t for t in trials if t.value is not None]
    reverse = study.direction.name == "MAXIMIZE"
    done.sort(key=lambda t: t.value, reverse=reverse)
    lines = [
        "# Search",
        "",
        f"{len(trials)} trials ({len(done)} complete); validation {metric}, best first.",
        "",
        f"| trial | {metric} | " + " | ".join(names) + " |",
        "|---:|---:|" + "---|" * len(names),
    ]
    for t in done:
        options = t.user_attrs.get("options", {})
        cells = [_shown(options[k]) if k in options else "-" for k in names]
        lines.append(f"| {t.number} | {t.value:.4f} | " + " | ".join(cells) + " |")
    atomic_write_bytes(out / "report.md", ("\n".join(lines) + "\n").encode())
