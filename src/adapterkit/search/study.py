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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from adapterkit.data import DataSplits, check_trainable
from adapterkit.errors import AdapterkitError
from adapterkit.files import atomic_write_bytes, check_writable_dir, staged_dir
from adapterkit.search.plots import plot_search
from adapterkit.search.space import Param, sample
from adapterkit.tasks import TASK_CLASSES
from adapterkit.train.options import JobSpec, RunHooks
from adapterkit.train.run import train_jobs
from adapterkit.train.run_setup import load_run_data

STUDY = "adapterkit-search"


@dataclass
class SearchRequest:
    """One search, as the command line hands it over."""

    base: JobSpec
    """The command's own job: model, data and every option the space does not vary."""
    params: list[Param]
    """The checked space."""
    trial_spec: Callable[[str, dict[str, Any]], JobSpec]
    """A trial's job from its name and sampled values (the base with those values over it)."""
    retrain: Callable[[dict[str, Any]], str]
    """The ``adapterkit train`` command that trains a trial's values alone."""
    output: Path
    resume: bool = False
    trials: int = 24
    parallel: int = 1
    prune_from: int = 1
    """The first epoch after which a trial may be pruned."""


def run_search(request: SearchRequest, log: Any = print) -> dict[str, Any]:
    """Run (or resume) a search; the best trial's record."""
    import optuna

    for flag, value in (
        ("--trials", request.trials),
        ("--parallel", request.parallel),
        ("--prune-from", request.prune_from),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AdapterkitError(f"{flag} must be a whole number >= 1, got {value!r}")
    if request.base.options.share_adapter:
        raise AdapterkitError(
            "--share-adapter ties the adapters of a multi-task run; search trains each trial "
            "its own"
        )
    base, params, out = request.base, request.params, request.output
    trials, parallel = request.trials, request.parallel
    splits = _checked_data(base, log)
    task = splits.task
    direction = "maximize" if getattr(TASK_CLASSES[task], "greater_is_better", True) else "minimize"
    metric = TASK_CLASSES[task].primary_metric
    identity = {"model": base.options.model, "data": base.options.data or base.options.train_file}
    identity["space"] = sorted(f"{p.dest}:{p.kind}:{p.low}:{p.high}:{p.choices}" for p in params)
    study = _open_study(out, request, direction, identity)
    log(
        f"search: {trials} trials of {task} on {identity['data']}, {parallel} at a time; "
        f"{metric}; a trial may be pruned from epoch {request.prune_from} on"
    )
    bar = tqdm(total=trials, initial=_counted(study), desc="trials", unit="trial", leave=False)

    def on_epoch(name: str, epoch: int, score: float) -> bool:
        trial = asked[name]
        trial.report(score, epoch)
        trial.set_user_attr(f"epoch_{epoch}", score)
        return trial.should_prune()

    def ask() -> JobSpec:
        trial = study.ask()
        name = f"trial-{trial.number:03d}"
        chosen = sample(trial, params, base.options.method)
        trial.set_user_attr("options", chosen)
        asked[name] = trial
        return request.trial_spec(name, chosen)

    def refill(pruned: str) -> JobSpec | None:
        """A pruned trial's slot goes to a new trial while the search wants more."""
        log(f"search: {pruned} pruned; a new trial takes its place")
        return ask() if done + len(asked) < trials else None

    while (done := _counted(study)) < trials:
        if _failed(study) > trials:
            raise AdapterkitError(f"{_failed(study)} trials failed; see {out / 'trials.csv'}")
        asked: dict[str, Any] = {}
        specs = [ask() for _ in range(min(parallel, trials - done))]
        started = time.perf_counter()
        try:
            finals = train_jobs(
                specs,
                out / "trials",
                log=lambda _: None,
                hooks=RunHooks(hold_out_test=True, nested=True, on_epoch=on_epoch, refill=refill),
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
            # The trial's own training seconds: a packed run holds several trials, and a
            # pruned trial's slot goes on with another one.
            trial.set_user_attr("seconds", round(final.get("train_seconds", seconds), 1))
            if final.get("diverged"):  # NaN weights before any epoch it could keep
                trial.set_user_attr("error", "training diverged (NaN or infinite weights)")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                log(f"search: {name} diverged {_brief(trial)}")
            elif final.get("pruned"):
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                log(f"search: {name} pruned after epoch {final['epochs_run']} {_brief(trial)}")
            else:
                study.tell(trial, float(final[metric]))
                log(f"search: {name} {metric} {final[metric]:.4f} {_brief(trial)}")
        write_trials(out, study, metric)
        bar.update(_counted(study) - bar.n)
    bar.close()
    best = study.best_trial
    record = finish(request, splits, best, metric, log)
    write_trials(out, study, metric)
    plot_search(study, metric, out / "plots")
    return record


def _checked_data(spec: JobSpec, log: Any) -> DataSplits:
    """The data, loaded once here (saying what loading did, such as carving a validation
    split). The test split stays unread until :func:`finish`."""
    splits = load_run_data(spec.options, spec.config, log=lambda text: log(f"search: {text}"))
    check_trainable(splits)
    return splits


def _open_study(out: Path, request: SearchRequest, direction: str, identity: dict[str, Any]) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = out / "study.db"
    if path.exists() and not request.resume:
        raise AdapterkitError(f"{out} holds a search already: pass --resume, or a new --output")
    check_writable_dir(out, "search folder")
    out.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=STUDY,
        storage=f"sqlite:///{path}",
        load_if_exists=True,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=request.base.config.seed),
        # Epochs are the steps: a step below n_warmup_steps is never pruned.
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=request.prune_from),
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


def finish(
    request: SearchRequest, splits: DataSplits, best: Any, metric: str, log: Any
) -> dict[str, Any]:
    """Copy the best trial's bundle to ``best/`` and score it on the test split, once."""
    from adapterkit.metrics import format_summary, write_metrics
    from adapterkit.predict import load_for_inference
    from adapterkit.train.run_report import evaluate_split

    out, name = request.output, f"trial-{best.number:03d}"
    source = out / "trials" / name / "adapter"
    with staged_dir(out / "best") as tmp:
        shutil.copytree(source, tmp / "adapter")
    record = {
        "trial": name,
        "validation": {metric: best.value},
        "options": best.user_attrs.get("options", {}),
        "retrain": request.retrain(best.user_attrs.get("options", {})),
    }
    if splits.test:
        bundle = out / "best" / "adapter"
        model, adapter, task = load_for_inference(bundle, request.base.options.model)
        # Generation is scored as train scores it: perplexity, then the decoded text.
        size = request.base.config.eval_batch_size or request.base.config.batch_size
        metrics, loss = evaluate_split(
            model, adapter, task, splits.test, size, precision=request.base.config.precision
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
    import optuna

    trials = study.get_trials(deepcopy=False)
    finished = optuna.trial.TrialState.COMPLETE
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
            [t.number, t.state.name, t.value if t.state == finished else ""]
            + [options.get(k, "") for k in names]
            + [t.user_attrs.get(k, "") for k in epochs]
            + [t.user_attrs.get("seconds", ""), t.user_attrs.get("error", "")]
        )
    atomic_write_bytes(out / "trials.csv", buffer.getvalue().encode())
    # A pruned trial carries the score of its last epoch as its value: rank finished ones.
    done = [t for t in trials if t.state == finished]
    reverse = study.direction.name == "MAXIMIZE"
    done.sort(key=lambda t: t.value, reverse=reverse)
    states = Counter(t.state.name.lower() for t in trials)
    lines = [
        "# Search",
        "",
        f"{len(trials)} trials ({', '.join(f'{n} {state}' for state, n in states.items())}); "
        f"the finished ones by validation {metric}, best first.",
        "",
        f"| trial | {metric} | " + " | ".join(names) + " |",
        "|---:|---:|" + "---|" * len(names),
    ]
    for t in done:
        options = t.user_attrs.get("options", {})
        cells = [_shown(options[k]) if k in options else "-" for k in names]
        lines.append(f"| {t.number} | {t.value:.4f} | " + " | ".join(cells) + " |")
    atomic_write_bytes(out / "report.md", ("\n".join(lines) + "\n").encode())
