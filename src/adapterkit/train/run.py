"""One call from a model name and data sets to trained, evaluated bundles.

``train_jobs`` is what ``adapterkit train`` runs, as a sequence of named steps: load
every job's data, load the one base they share, add each job's adapter and head (those
setup steps live in :mod:`adapterkit.train.run_setup`), write ``config.yaml``, encode,
train all jobs together (:mod:`adapterkit.train.engine`), then
save each bundle and evaluate its best checkpoint on validation and test
(:mod:`adapterkit.train.run_report`). ``train_adapter_run`` is a run of one job, whose
run directory is its own::

    run_dir/config.yaml  metrics.json  report.md  validation_metrics.json
    run_dir/curves.png   tensorboard/  checkpoints/{last,best}/  adapter/

Several jobs each get that layout in ``run_dir/<job>/``, beside the job list
(``run_dir/config.yaml``) and ``summary.{json,md}``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import torch

from adapterkit.checkpointing import enable_activation_checkpointing
from adapterkit.data import DataSplits, check_trainable
from adapterkit.files import check_writable_dir
from adapterkit.train.compose import check_parts_fit, rate_method
from adapterkit.train.config import DEFAULT_EPOCHS, TrainConfig
from adapterkit.train.continual import (
    Anchor,
    Lineage,
    load_lineage,
    replay_count,
)
from adapterkit.train.default_method import with_default_method
from adapterkit.train.divergence import diverged_error
from adapterkit.train.engine import fit_jobs
from adapterkit.train.fast_dropout import use_fast_dropout
from adapterkit.train.job import TrainJob
from adapterkit.train.job_list import check_job_specs, record_job_list, spec_of, write_job_table
from adapterkit.train.options import JobSpec, RunHooks, RunOptions
from adapterkit.train.processes import Processes
from adapterkit.train.run_config import check_resume_matches, write_run_config
from adapterkit.train.run_report import RunModel, finish_job, score_parent
from adapterkit.train.run_setup import (
    Log,
    add_job_adapter,
    base_kind_of,
    default_adapter_name,
    encode_rows,
    encode_splits,
    load_run_base,
    load_run_data,
)
from adapterkit.train.sharding import check_shardable, shard_base, sharding_asked
from adapterkit.train.shared import check_shared, sampled_batch_sizes, tie_adapters
from adapterkit.train.tracking import Trackers, check_report_to


def train_adapter_run(options: RunOptions, config: TrainConfig, log: Log = print) -> dict[str, Any]:
    """Train, evaluate and save one adapter; returns the final metrics dict (test split when
    there is one). The run directory is the job's own: ``<output>/adapter``, ``metrics.json`` ..."""
    name = options.adapter_name or default_adapter_name(options)
    return train_jobs([JobSpec(name, options, config)], options.output, options.resume, log)[name]


def train_jobs(
    specs: list[JobSpec],
    output: str | Path,
    resume: bool = False,
    log: Log = print,
    hooks: RunHooks | None = None,
) -> dict[str, dict[str, Any]]:
    """Train every job on one frozen base, their rows in the same batches; evaluate and save each.

    One job writes its files into ``output`` itself; several write into ``output/<name>/``,
    with the job list (``config.yaml``) and a summary table (``summary.md``) beside them.
    ``hooks`` let a driving program (the search) hold out the test split, nest even one
    job, and stop jobs after an epoch.

    Returns:
        Each job's final metrics (test split when there is one), by job name.
    """
    hooks = hooks or RunHooks()
    check_job_specs(specs)
    check_report_to(spec_of(specs, "report_to"))
    processes = Processes.start(spec_of(specs, "device"))
    if not processes.main:  # one process speaks for the run
        log = _quiet
    if processes.main:
        check_writable_dir(output, "run folder")
    run_dir = Path(output)
    single = len(specs) == 1 and not hooks.nested
    job_log = (lambda spec: log) if single else (lambda spec: _prefixed(log, spec.name))
    # All data first: a bad file in any job stops the run before anything is written.
    splits = {spec.name: load_run_data(spec.options, spec.config, job_log(spec)) for spec in specs}
    specs = [with_default_method(spec, splits[spec.name].task, job_log(spec)) for spec in specs]
    lineages = {
        spec.name: load_lineage(spec.options, splits[spec.name], spec.config.seed, job_log(spec))
        for spec in specs
    }
    for split in splits.values():
        check_trainable(split)  # after a continued job's labels were widened to its parent's
    if hooks.hold_out_test:
        for split in splits.values():
            split.test = None  # never evaluated here: the driver tests its pick once, later
    shared = spec_of(specs, "share_adapter")
    if shared:  # one adapter for every job: checked, and the batch split by task sampling
        check_shared(specs, {name: split.task for name, split in splits.items()})
        specs = sampled_batch_sizes(specs, {name: len(s.train) for name, s in splits.items()})
        log(
            "shared adapter: rows per batch "
            + ", ".join(f"{spec.name} {spec.config.batch_size}" for spec in specs)
        )
    asked = sharding_asked(specs)
    sharding = asked and processes.world > 1
    if asked and not sharding:
        log("--shard-base: one process, so the base stays whole (launch several to shard it)")
    if sharding:
        check_shardable(specs)
    kind = base_kind_of(specs, splits)
    # A base to shard stays on the CPU until sharded: whole, it may not fit one device.
    load_device = torch.device("cpu") if sharding else processes.device
    model, tokenizer = load_run_base(specs[0], kind, load_device)
    for lineage in lineages.values():
        if lineage is not None:  # a parent of another base: refused before anything is written
            model.check_bundle_base(lineage.record, lineage.path)
    for spec in specs:  # a composition's parts: the same, before anything is written
        check_parts_fit(model, spec.options)
    built = {  # a method option the layers refuse (a rank above their width) stops it here too
        spec.name: add_job_adapter(
            model, tokenizer, spec, splits[spec.name], job_log(spec), lineages[spec.name]
        )
        for spec in specs
    }
    if shared:
        tie_adapters(model, specs[0].name, [spec.name for spec in specs[1:]])
    if processes.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not single and not hooks.nested:
            record_job_list(run_dir, specs, resume)
    jobs = []
    for spec in specs:
        job_dir = run_dir if single else run_dir / spec.name
        lineage = lineages[spec.name]
        job = make_job(
            spec,
            built[spec.name],
            splits[spec.name],
            lineage,
            job_dir,
            resume,
            job_log(spec),
            processes.main,
        )
        # Scored before the base is sharded; with a sharded base every process scores the old
        # data, since every process runs the final evaluations (forgetting among them).
        scores_old = processes.main or sharding
        if lineage is not None and lineage.old is not None and scores_old:
            built[spec.name].old = lineage.old
            built[spec.name].old_before = score_parent(
                model, tokenizer, lineage, spec.config.eval_batch_size, spec.config.precision
            )
        if hooks.on_epoch is not None:
            job.on_epoch = lambda epoch, score, name=spec.name: hooks.on_epoch(name, epoch, score)
        jobs.append(job)
    if shared:  # the leader steps the adapter and validates for the group
        jobs[0].followers = jobs[1:]
        for job in jobs[1:]:
            job.leader = jobs[0]
    if processes.device.type == "cpu":  # torch's CPU dropout is mostly its random draws
        use_fast_dropout(model)
    if spec_of(specs, "activation_checkpointing"):
        enable_activation_checkpointing(model.base)
    if sharding:
        log(shard_base(model, processes))
    trackers = Trackers([])
    if processes.main:  # one process reports for the run
        trackers = Trackers.open(
            spec_of(specs, "report_to"),
            run_dir,
            {job.name: job.out_dir for job in jobs},
            spec_of(specs, "mlflow_uri"),
            resume,
        )
        for spec, job in zip(specs, jobs, strict=True):
            trackers.params(job.name, job_params(spec, job.config, job.lr))

    def refill(pruned: TrainJob) -> TrainJob | None:
        """A new job in a pruned one's place, built as the run's own were."""
        spec = hooks.refill(pruned.name) if hooks.refill is not None else None
        if spec is None:
            return None
        check_job_specs([*specs, spec])
        split = load_run_data(spec.options, spec.config, job_log(spec))
        check_trainable(split)
        if hooks.hold_out_test:
            split.test = None
        built[spec.name] = add_job_adapter(model, tokenizer, spec, split, job_log(spec), None)
        job = make_job(
            spec, built[spec.name], split, None, run_dir / spec.name, False, job_log(spec), True
        )
        if hooks.on_epoch is not None:
            job.on_epoch = lambda epoch, score, name=spec.name: hooks.on_epoch(name, epoch, score)
        specs.append(spec)
        splits[spec.name] = split
        jobs.append(job)  # here too: finals and summaries walk jobs beside specs
        return job

    specs = list(specs)  # refill adds to them
    try:
        results = fit_jobs(
            model,
            jobs[:],
            resume=resume,
            log=log,
            processes=processes,
            trackers=trackers,
            refill=refill if hooks.refill is not None and processes.world == 1 else None,
        )
        processes.wait()
        if not processes.main and not sharding:
            return {}  # the main process holds the same weights and writes the bundles
        # With a sharded base the others evaluate beside the main process (each forward
        # pass takes them all), writing into a folder that is then thrown away.
        scratch = None if processes.main else tempfile.TemporaryDirectory(prefix="shard-")
        finals, lost = {}, []
        for spec, job in zip(specs, jobs, strict=True):
            if job.state.diverged and results[spec.name].best_path is None:
                lost.append(job)  # its weights are NaN: no bundle, no scores
                continue
            if scratch is not None:
                job.out_dir = Path(scratch.name) / spec.name
            finals[spec.name] = finish_job(
                spec, built[spec.name], job, results[spec.name], splits[spec.name], job_log(spec)
            )
            trackers.metrics(job.name, _split_metrics(finals[spec.name]), job.state.global_step)
            files = ("adapter", "report.md", "metrics.json")
            trackers.files(job.name, [job.out_dir / name for name in files])
        if scratch is not None:
            scratch.cleanup()
            return {}
    except BaseException:
        trackers.close(finished=False)  # tracked runs say they did not finish (Ctrl-C too)
        raise
    trackers.close()
    if not single and not hooks.nested:
        kept = [spec for spec in specs if spec.name in finals]
        metrics = {spec.name: built[spec.name].task.primary_metric for spec in kept}
        write_job_table(run_dir, kept, finals, metrics)
    if lost and hooks.nested:  # a search records the trial as failed and goes on
        finals |= {job.name: {"diverged": True} for job in lost}
    elif lost:  # after the other jobs' bundles and table: they lose nothing
        raise diverged_error([job.name for job in lost], [job.lr for job in lost])
    return finals


def make_job(
    spec: JobSpec,
    built: RunModel,
    splits: DataSplits,
    lineage: Lineage | None,
    job_dir: Path,
    resume: bool,
    log: Log,
    main: bool,
) -> TrainJob:
    """The job of ``spec`` ready to train: its data encoded (with the replayed old rows of a
    continued job), its epochs and learning rate decided, its ``config.yaml`` written."""
    task = built.task
    features, validation = encode_splits(task, splits, spec.options.packing, log)
    fresh, replayed = len(features), 0
    if lineage is not None and lineage.replay:
        features += encode_rows(task, lineage.replay, spec.options.packing)
        replayed = replay_count(fresh, len(features) - fresh, spec.options.replay_ratio or 0.0)
        log(f"replay: {replayed} of {len(features) - fresh} old rows join each epoch")
    config = budgeted(spec.config, fresh + replayed, log)
    lr = config.learning_rate(rate_method(spec.options))
    if resume:
        train = {**config.to_dict(), "lr": lr}
        check_resume_matches(job_dir / "config.yaml", train, spec.options.method)
    if main:
        job_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(job_dir, spec.options, config, built.adapter_config, lr)
    job = TrainJob(spec.name, task, features, validation, config, lr, job_dir, built.full)
    if replayed:
        job.fresh_rows, job.replay_per_epoch = fresh, replayed
    if lineage is not None and spec.options.anchor_weight:
        model = built.model
        own = {**model.adapter_parameters(spec.name), **model.head_parameters(spec.name)}
        job.anchor = Anchor.of(spec.options.anchor_weight, lineage, own)
    return job


def budgeted(config: TrainConfig, rows: int, log: Log) -> TrainConfig:
    """``config`` with its epochs decided for ``rows`` training rows (see
    :meth:`TrainConfig.epochs_for`); the log says when a small data set gets more."""
    epochs = config.epochs_for(rows)
    if config.epochs is None and epochs > DEFAULT_EPOCHS:
        log(
            f"small data: {config.steps_per_epoch(rows)} optimizer step(s) an epoch, so {epochs} epochs rather "
            f"than {DEFAULT_EPOCHS}, for at least {config.min_steps} steps (--min-steps; "
            "--epochs sets them)"
        )
    return dataclasses.replace(config, epochs=epochs)


def job_params(spec: JobSpec, config: TrainConfig, lr: float) -> dict[str, Any]:
    """A job's options as experiment trackers record them (flat, method options prefixed)."""
    options = spec.options
    values: dict[str, Any] = {**config.to_dict(), "lr": lr}
    values.update({f"method_{k}": v for k, v in options.method_options.items()})
    for key in ("model", "data", "train_file", "task", "method", "max_length"):
        values[key] = getattr(options, key)
    return {k: v for k, v in values.items() if v is not None}


def _split_metrics(final: dict[str, Any]) -> dict[str, Any]:
    """The final metrics keyed ``<split>/<metric>`` (test, or validation without a test split)."""
    split = final.get("split", "test")
    return {f"{split}/{k}": v for k, v in final.items() if k != "split"}


def _prefixed(log: Log, name: str) -> Log:
    return lambda text: log(f"[{name}] {text}")


def _quiet(text: str) -> None:
    """The log of processes other than the main one."""
