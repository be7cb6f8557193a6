"""The training loop of a run: many jobs on one frozen base, their rows in the same batches.

Each step takes every live job's next batch (each job walks its own seeded, shuffled
epochs at its own batch size), runs the base ONCE over all those rows with one adapter
per row, and gives each job's head and task only that job's rows. The step's loss is the
sum of the jobs' losses, each a mean over its own rows or tokens, so a job's gradient
is the one it would get alone: its parameters reach no other job's loss, and the base
is frozen. Each job then steps its own optimizer, schedule and clipping, and at the end
of each of its epochs validates, early-stops and checkpoints on its own; a finished job
leaves the batches, and the run ends when every job is done.

Equal batches make equal training: a job trained packed matches the same job trained
alone (same seed, fp32, dropout off: dropout masks are drawn for the whole batch) to
float rounding. A run of one job is exactly the single-adapter loop it replaced.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from adapterkit import bundle
from adapterkit.errors import AdapterkitError
from adapterkit.model import AdaptedModel
from adapterkit.precision import resolve_precision
from adapterkit.tasks.base import merge_windows
from adapterkit.train.checkpoint import TrainerState, rng_tensors
from adapterkit.train.divergence import check_weights, stop_if_diverged
from adapterkit.train.early_stopping import MIN_STEPS_BEFORE_STOPPING, judge
from adapterkit.train.evaluate import evaluate_features, predict_features, task_forward
from adapterkit.train.job import TrainJob
from adapterkit.train.last_checkpoints import recover_last, save_last
from adapterkit.train.optim import autocast_context
from adapterkit.train.packed import packed_losses
from adapterkit.train.processes import Processes
from adapterkit.train.tracking import Trackers

LOG_EVERY = 20  # optimizer steps between reports of the training loss and learning rate


@dataclass
class FitResult:
    """What training one job produced."""

    state: TrainerState
    train_seconds: float
    best_path: Path | None


def fit_jobs(
    model: AdaptedModel,
    jobs: list[TrainJob],
    resume: bool = False,
    log: Callable[[str], None] = print,
    processes: Processes | None = None,
    trackers: Trackers | None = None,
    refill: Callable[[TrainJob], TrainJob | None] | None = None,
) -> dict[str, FitResult]:
    """Train every job (adapters already trainable) and keep each one's best checkpoint.

    With several ``processes`` each takes its share of every batch (see
    :mod:`adapterkit.train.processes`); every process ends with the same weights.
    ``refill`` (one process only) is told of each job pruned after an epoch and may hand
    back a new job to take its place in the batches (a search's next trial).

    Returns:
        Each job's :class:`FitResult`, by job name.
    """
    device = next(model.parameters()).device
    processes = processes or Processes(0, 1, device)
    trackers = trackers or Trackers([])
    single = len(jobs) == 1
    say = log if single else None
    for job in jobs:
        job.main, job.rank = processes.main, processes.rank
    if resume:
        recover_last(jobs)  # a commit of last checkpoints that a crash cut in two
        processes.wait()
    for job in jobs:
        job.start(model, resume, say or (lambda text, job=job: log(f"[{job.name}] {text}")))
        _check_world(job, processes)
    # One loss scaler for the run (fp16 only; a no-op otherwise), updated once per step.
    precision = resolve_precision(jobs[0].config.precision, device)
    if jobs[0].config.precision == "auto" and precision != "fp32" and processes.main:
        log(
            f"--precision auto: {precision} autocast on this {device.type} (--precision fp32 to turn it off)"
        )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    started = last = time.perf_counter()
    bar = _progress_bar(jobs) if processes.main else None
    while live := [job for job in jobs if not job.done]:
        model.train()
        rows = [[job.train_features[i] for i in processes.share(job.next_rows())] for job in live]
        mine = [k for k, r in enumerate(rows) if r]  # a batch smaller than the world skips some
        idle = processes.sharded and not mine
        if idle:  # each forward of a sharded base takes every process: one row, weighed 0
            mine, rows[0] = [0], live[0].train_features[:1]
        # An idle row draws its dropout from a forked generator, so the process's own
        # stream goes on as if it had sat the step out (as it does unsharded).
        with fork_rng(device, idle), autocast_context(live[0].config, device):
            losses, counts = packed_losses(
                model, [live[k] for k in mine], [rows[k] for k in mine], device
            )
        if idle:
            losses, counts = [loss * 0.0 for loss in losses], [0]
        # Each job's loss, weighted by this process's share of its rows or tokens, so the
        # gradients summed over processes are those of the whole batch's mean loss (or,
        # weighting items evenly, of its summed loss over the job's mean items per batch).
        local = torch.zeros(2, len(live), dtype=torch.float64)
        for k, loss, count in zip(mine, losses, counts, strict=True):
            local[0, k], local[1, k] = count, loss.item() * count
        total_counts, total_losses = processes.sum(local)
        objective = sum(
            loss
            * (count / _loss_divisor(live[k], float(total_counts[k])))
            / live[k].config.grad_accumulation
            for k, loss, count in zip(mine, losses, counts, strict=True)
        )
        for job in live:  # once per step over all processes, whose gradients are summed
            share = processes.world * job.config.grad_accumulation
            if job.anchor is not None:
                objective = objective + job.anchor.penalty() / share
            extra = None if job.controller is None else job.controller.extra_loss()
            if extra is not None:  # a method's regulariser (AdaLoRA's orthogonality)
                objective = objective + extra / share
        if isinstance(objective, torch.Tensor):
            scaler.scale(objective).backward()
        step_losses = [
            float(total_losses[k] / max(float(total_counts[k]), 1.0)) for k in range(len(live))
        ]
        stepping = [
            job for job, loss in zip(live, step_losses, strict=True) if job.count_batch(loss)
        ]
        for job in stepping:
            processes.sum_gradients(job.params)
            job.optimizer_step(scaler)
        if len(stepping) == len(live):  # no job holds gradients accumulated at the old scale
            scaler.update()
        for job, loss in zip(live, step_losses, strict=True):
            stop_if_diverged(job, loss, log if single else _prefixed(log, job.name))
        ended = [job for job in live if job.epoch_ended and not job.state.diverged]
        for job, loss in zip(live, step_losses, strict=True):
            _log_step(job, loss, trackers)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{step_losses[0]:.3f}", refresh=False)
        for job in ended:
            say_job = log if single else _prefixed(log, job.name)
            end_epoch(model, job, say_job, processes, trackers, since=last)
            new = refill(job) if refill is not None and job.state.pruned else None
            if new is not None:  # takes the pruned job's place from the next batch on
                new.main, new.rank = processes.main, processes.rank
                new.start(model, False, say or (lambda text, j=new: log(f"[{j.name}] {text}")))
                _check_world(new, processes)
                jobs.append(new)
        now = time.perf_counter()
        for job in live:  # before the checkpoint, so a resumed run's clock goes on from it
            job.state.train_seconds += now - last
        last = now
        saving = [job for job in live if _save_due(job)]
        if ended or saving:
            # Every live job is checkpointed at the same step, as one commit, so a resumed
            # run continues from one moment (the random state is the run's, not a job's;
            # each process's own, since each draws its own rows' dropout).
            rng = processes.gather([rng_tensors()]) if processes.world > 1 else None
            save_last(model, live, rng)
        if bar is not None and single and ended:
            bar.close()
            bar = _progress_bar(jobs)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    results = {}
    if processes.sharded:  # all evaluate the best weights together: wait until written
        processes.wait()
    for job in jobs:
        # The main process wrote the checkpoints and writes the bundles; with a sharded
        # base every process runs the final evaluations beside it, so all restore.
        if processes.main or processes.sharded:
            restore_best(model, job, log if single else _prefixed(log, job.name))
        if job.controller is not None:  # every process: all keep the same weights
            line = job.controller.finish()
            if line and processes.main:
                (log if single else _prefixed(log, job.name))(line)
        best = job.best_path if job.best_path.exists() else None
        results[job.name] = FitResult(job.state, seconds, best)
    return results


def _loss_divisor(job: TrainJob, batch_items: float) -> float:
    """What a job's summed batch loss is divided by: the batch's own item count, or with
    ``--loss-weighting even`` the job's mean per batch, so every item weighs the same."""
    if job.config.loss_weighting == "even":
        return job.items_per_batch
    return max(batch_items, 1.0)


def _check_world(job: TrainJob, processes: Processes) -> None:
    """A resumed job must run on as many processes as it started on (its batches' split)."""
    if job.state.global_step and job.state.world_size != processes.world:
        raise AdapterkitError(
            f"--resume: {job.out_dir} was trained on {job.state.world_size} process(es), "
            f"not {processes.world}; resume with the same number"
        )
    job.state.world_size = processes.world


def validate(
    model: AdaptedModel, job: TrainJob, processes: Processes
) -> tuple[dict[str, Any], float | None]:
    """(metrics, mean loss) of the job on its validation split.

    Several processes each score every ``world``-th example (all windows of a long QA
    context stay together) and gather the predictions, so every example is scored once
    and every process computes the same metrics, hence the same early-stopping decision.
    """
    assert job.validation is not None
    features, references = job.validation
    size = job.config.eval_batch_size
    if processes.world == 1:
        metrics, loss, _ = evaluate_features(
            model, job.name, job.task, features, references, size, job.config.precision
        )
        return metrics, loss
    spans = _example_rows(features)
    mine = list(range(processes.rank, len(spans), processes.world))
    rows = [features[r] for e in mine for r in range(*spans[e])]
    # With a sharded base every process runs as many forward passes as the busiest one
    # (agreed before any of them: the agreement is a collective too).
    batches = -(-len(rows) // size)
    idle = processes.most(batches) - batches if processes.sharded else 0
    predictions, loss = (
        predict_features(model, job.name, job.task, rows, size, job.config.precision)
        if rows
        else ([], None)
    )
    idle_forwards(model, job, features[:1], idle)
    merged = merge_windows(job.task, rows, predictions)
    by_example = dict(processes.gather(list(zip(mine, merged, strict=True))))
    ordered = [by_example[e] for e in range(len(spans))]
    share = torch.tensor([(loss or 0.0) * len(rows), len(rows) if loss is not None else 0])
    total, counted = processes.sum(share.double()).tolist()
    return job.task.metrics(references, ordered), (total / counted if counted else None)


@torch.no_grad()
def idle_forwards(
    model: AdaptedModel, job: TrainJob, rows: list[dict[str, Any]], count: int
) -> None:
    """``count`` forward passes over ``rows`` whose outputs are dropped: a process's share
    of the forward passes every process of a sharded base takes part in."""
    if count <= 0:
        return
    device = next(model.parameters()).device
    model.eval()  # no dropout: a process with no rows of its own still draws nothing
    batch = {k: v.to(device) for k, v in job.task.collate(rows).items()}
    for _ in range(count):
        task_forward(model, job.name, job.task, batch)


def fork_rng(device: torch.device, fork: bool) -> contextlib.AbstractContextManager:
    """A context whose random draws leave the process's generators (CPU, and ``device``'s
    when it is a GPU) as they were, when ``fork``; else one that changes nothing."""
    if not fork:
        return contextlib.nullcontext()
    gpus = [device] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=gpus, device_type=device.type)


def _example_rows(features: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(first row, end row) of each example (a long QA context has several windows)."""
    spans, start = [], 0
    while start < len(features):
        count = features[start].get("window", [0, 1])[1]
        spans.append((start, start + count))
        start += count
    return spans


def end_epoch(
    model: AdaptedModel,
    job: TrainJob,
    log: Callable[[str], None],
    processes: Processes,
    trackers: Trackers,
    since: float,
) -> None:
    """Validate, update early stopping, keep the best checkpoint, record the epoch (with
    the job's training seconds as of its validation; ``since``: when they were last added
    to its state)."""
    state, task, config = job.state, job.task, job.config
    row: dict[str, Any] = {
        "epoch": state.epoch + 1,
        "step": state.global_step,
        "train_loss": job.epoch_loss(),
    }
    state.epoch += 1
    state.batches_done = 0
    diverged = check_weights(job, log)  # NaN weights: never validated into the best
    if not diverged and job.validation is not None and job.leader is None:  # else the leader's
        metrics, eval_loss = validate(model, job, processes)
        row["eval_loss"] = eval_loss
        row.update({f"eval_{k}": v for k, v in metrics.items() if isinstance(v, int | float)})
        score = float(metrics[task.primary_metric])
        floor, members = job.floor, {}
        if job.followers:  # a shared adapter: the group's mean decides
            score, eval_loss, floor, members = group_score(
                model, job, score, eval_loss, processes, log
            )
            row["eval_group_score"] = score
        verdict = judge(
            score,
            eval_loss,
            state.best_metric,
            state.best_loss,
            floor,
            # Perplexity-like metrics improve downwards (the task says so).
            getattr(task, "greater_is_better", True),
        )
        # While the adapter's shape still changes (AdaLoRA's ranks), an evaluation is neither
        # a candidate for the best checkpoint nor a miss: the bundle gets the final shape.
        settled = job.controller is None or job.controller.settled
        improved = verdict.improved and settled
        if improved:
            state.best_metric, state.best_loss = score, eval_loss
            state.best_epoch, state.bad_evals = state.epoch, 0
            job.save(model, job.best_path)
            for member in job.followers:  # the shared adapter's best, with each one's head
                member.state.best_metric, member.state.best_loss = members.get(
                    member.name, (None, None)
                )
                member.state.best_epoch = member.state.epoch
                member.save(model, member.best_path)
        elif verdict.counts and settled:
            state.bad_evals += 1
            out_of_patience = state.bad_evals >= config.patience
            state.stopped_early = out_of_patience and state.global_step >= job.patience_from_step
        if job.on_epoch is not None and not state.stopped_early:
            prune = job.on_epoch(state.epoch, score)
            # A job that has run all its epochs is finished, not pruned: its score is final.
            if prune and state.epoch < job.epochs:
                state.stopped_early = state.pruned = True
        log(
            f"epoch {state.epoch}: train loss {row['train_loss']:.4f}, validation "
            f"{'group mean' if job.followers else task.primary_metric} {score:.4f}"
            f"{' (best)' if improved else ''}"
            + ("" if settled else " (adapter shape not final yet: not a best candidate)")
        )
        if verdict.counts and state.bad_evals >= config.patience and not state.stopped_early:
            log(
                f"  out of patience, but early stopping waits for step {job.patience_from_step} "
                f"(min({MIN_STEPS_BEFORE_STOPPING}, half the run))"
            )
        if verdict.at_floor:
            log(
                f"  no better than the trivial predictor's {job.floor:.4f} yet: early stopping "
                "waits until the model learns"
            )
    elif not diverged:
        log(f"epoch {state.epoch}: train loss {row['train_loss']:.4f}")
    row["train_seconds"] = round(state.train_seconds + time.perf_counter() - since, 2)
    epoch_row = {k.replace("_", "/", 1): v for k, v in row.items() if k not in ("epoch", "step")}
    trackers.metrics(job.name, epoch_row, state.global_step)
    state.history.append(row)
    if state.pruned:
        log(f"pruned after epoch {state.epoch}")
    elif state.stopped_early:
        log(f"early stopping: no improvement in {config.patience} evaluations")
    model.train()


def group_score(
    model: AdaptedModel,
    leader: TrainJob,
    score: float,
    loss: float | None,
    processes: Processes,
    log: Callable[[str], None],
) -> tuple[float, float | None, float | None, dict[str, tuple[float, float | None]]]:
    """A shared adapter's validation: the mean over the leader and its followers of their
    primary scores, losses and trivial-predictor floors (see :mod:`adapterkit.train.shared`),
    and each follower's own (score, loss) by name."""
    scores, losses, floors = [score], [loss], [leader.floor]
    members: dict[str, tuple[float, float | None]] = {}
    for member in leader.followers:
        if member.validation is None:
            continue
        metrics, member_loss = validate(model, member, processes)
        members[member.name] = (float(metrics[member.task.primary_metric]), member_loss)
        scores.append(members[member.name][0])
        losses.append(member_loss)
        floors.append(member.floor)
        log(f"  {member.name}: validation {member.task.primary_metric} {scores[-1]:.4f}")
    mean_loss = None if None in losses else sum(losses) / len(losses)  # type: ignore[arg-type]
    mean_floor = None if None in floors else sum(floors) / len(floors)  # type: ignore[arg-type]
    return sum(scores) / len(scores), mean_loss, mean_floor, members


def restore_best(model: AdaptedModel, job: TrainJob, log: Callable[[str], None]) -> None:
    """Load the job's best checkpoint back into its adapter and head (when it validated)."""
    if job.validation is None or not job.best_path.exists():
        return
    _, weights = bundle.read_bundle(job.best_path)
    model.load_weights(job.name, weights, job.best_path)
    log(
        f"restored the best checkpoint (epoch {job.state.best_epoch}, "
        f"{'group mean' if job.followers else job.task.primary_metric} "
        f"{job.state.best_metric:.4f})"
    )


def _save_due(job: TrainJob) -> bool:
    """Whether ``save_steps`` asks for a checkpoint after the step just taken."""
    steps = job.config.save_steps
    return bool(steps) and job.stepped and job.state.global_step % steps == 0


def _log_step(job: TrainJob, loss: float, trackers: Trackers) -> None:
    """The training loss and learning rate every LOG_EVERY optimizer steps."""
    if not job.stepped or job.state.global_step % LOG_EVERY or job.scheduler is None:
        return
    job.state.step_losses.append([job.state.global_step, loss])
    values = {"train/loss": loss, "train/lr": job.scheduler.get_last_lr()[0]}
    trackers.metrics(job.name, values, job.state.global_step)


def _prefixed(log: Callable[[str], None], name: str) -> Callable[[str], None]:
    return lambda text: log(f"[{name}] {text}")


def _progress_bar(jobs: list[TrainJob]) -> tqdm | None:
    """One epoch's bar for a single job; for several, one bar over the run's packed steps."""
    live = [job for job in jobs if not job.done]
    if not live:
        return None
    if len(jobs) == 1:
        job = jobs[0]
        total = -(-job.rows_per_epoch // job.config.batch_size)
        return tqdm(
            total=total,
            initial=job.state.batches_done,
            desc=f"epoch {job.state.epoch + 1}/{job.epochs}",
            unit="batch",
            mininterval=2.0,
            leave=False,
        )
    longest = max(
        (job.epochs - job.state.epoch) * -(-job.rows_per_epoch // job.config.batch_size)
        for job in live
    )
    return tqdm(total=longest, desc=f"{len(live)} jobs", unit="step", mininterval=2.0, leave=False)
