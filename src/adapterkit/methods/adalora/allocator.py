"""AdaLoRA's rank allocator: importance scores, the budget schedule, the masks.

Follows Zhang et al. 2023 (§3.2-3.3) and peft's ``RankAllocator``. After every optimizer
step, with the gradients still present:

- each weight's sensitivity ``I = |w · ∂L/∂w|`` is smoothed, ``Ī ← β1 Ī + (1-β1) I``, and
  its uncertainty ``Ū ← β2 Ū + (1-β2) |I - Ī|``; a weight scores ``Ī · Ū``;
- a triplet (row i of P, λ_i, column i of Q) scores ``s(λ_i) + mean_j s(P_ij) + mean_j s(Q_ji)``;
- the budget (total ranks over all layers) stays at ``r · layers`` for the warm-up steps,
  falls on a cubic curve to ``target_r · layers`` at the start of the final phase, and
  stays there; every ``rank_interval`` steps while it falls, and once at the start of the
  final phase, the highest-scoring triplets of the whole model are kept, exactly the
  budget's number, and the rest masked (their λ zeroed, as peft does, so a triplet that
  comes back restarts from zero).

The schedule counts in the job's own optimizer steps: the trainer passes the total, so
there is no ``total_step`` to set by hand. Under several processes the gradients are
summed before the step, so every process scores and masks alike (``topk`` on equal
inputs). The smoothed scores and the step travel in checkpoints (:meth:`state_tensors`),
the masks with the weights, so a resumed run continues as if never stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from adapterkit.methods.base import TrainingController

if TYPE_CHECKING:
    from adapterkit.methods.adalora.config import AdaLoraConfig
    from adapterkit.methods.adalora.layer import AdaLoraAdapter


def budget_at(step: int, initial: int, target: int, warmup: int, final_start: int) -> int:
    """Total ranks allowed after optimizer step ``step``: ``initial`` up to ``warmup``,
    ``target`` from ``final_start`` on, a cubic fall between (peft's schedule)."""
    if step >= final_start:
        return target
    if step <= warmup:
        return initial
    left = 1 - (step - warmup) / (final_start - warmup)
    return int((initial - target) * left**3 + target)


class RankAllocator(TrainingController):
    """Drives one AdaLoRA adapter's ranks and orthogonality penalty through a job."""

    def __init__(
        self, config: AdaLoraConfig, layers: dict[str, AdaLoraAdapter], total_steps: int
    ) -> None:
        self.config = config
        self.layers = layers
        self.initial = sum(m.rank for m in layers.values())
        self.target = min(config.target_r * len(layers), self.initial)
        self.warmup = round(config.rank_warmup * total_steps)
        self.final_start = max(total_steps - round(config.rank_final * total_steps), 1)
        # A pattern already allocated (an adapter trained further) keeps its ranks.
        self.allocating = config.rank_pattern is None
        self.step = 0
        self.average: dict[int, torch.Tensor] = {}  # id(param) -> smoothed sensitivity
        self.uncertainty: dict[int, torch.Tensor] = {}

    def named_factors(self) -> dict[str, torch.Tensor]:
        """P, λ and Q of every layer, by ``<layer>.<lora_A|lora_E|lora_B>``."""
        return {
            f"{layer}.{name}": getattr(module, name)
            for layer, module in self.layers.items()
            for name in ("lora_A", "lora_E", "lora_B")
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The step and the smoothed scores, by factor name."""
        tensors = {"step": torch.tensor(self.step)}
        for name, param in self.named_factors().items():
            if id(param) in self.average:
                tensors[f"average.{name}"] = self.average[id(param)]
                tensors[f"uncertainty.{name}"] = self.uncertainty[id(param)]
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back the step and the scores of :meth:`state_tensors`."""
        self.step = int(tensors["step"]) if "step" in tensors else self.step
        for name, param in self.named_factors().items():
            if f"average.{name}" in tensors:
                self.average[id(param)] = tensors[f"average.{name}"].to(param.device)
                self.uncertainty[id(param)] = tensors[f"uncertainty.{name}"].to(param.device)

    def budget(self, step: int) -> int:
        """The schedule's total ranks after ``step``."""
        return budget_at(step, self.initial, self.target, self.warmup, self.final_start)

    @property
    def settled(self) -> bool:
        return not self.allocating or self.step >= self.final_start

    def kept_ranks(self) -> int:
        """Ranks not masked, over all layers."""
        return int(sum((m.rank_mask != 0).sum().item() for m in self.layers.values()))

    def extra_loss(self) -> torch.Tensor | None:
        """``orth_reg_weight`` × the mean over P's and Q's of ``‖P Pᵀ - I‖_F`` / ``‖Qᵀ Q - I‖_F``."""
        if self.config.orth_reg_weight == 0:
            return None
        terms = []
        for module in self.layers.values():
            if module.rank == 0:
                continue
            eye = torch.eye(module.rank, device=module.lora_A.device, dtype=module.lora_A.dtype)
            terms.append(torch.linalg.matrix_norm(module.lora_A @ module.lora_A.T - eye))
            terms.append(torch.linalg.matrix_norm(module.lora_B.T @ module.lora_B - eye))
        if not terms:
            return None
        return self.config.orth_reg_weight * torch.stack(terms).mean()

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """Update the scores, and mask to the budget when the schedule says so."""
        self.step = step
        if not self.allocating or step > self.final_start:
            return  # the final ranks are fixed
        self.update_scores()
        interval_due = step > self.warmup and step % self.config.rank_interval == 0
        if step == self.final_start or interval_due:
            self.mask_to_budget(self.budget(step))
        if step == self.final_start:
            self.average.clear()  # no longer needed
            self.uncertainty.clear()

    @torch.no_grad()
    def update_scores(self) -> None:
        """Smooth each weight's sensitivity and uncertainty with this step's gradients."""
        beta1, beta2 = self.config.importance_beta1, self.config.importance_beta2
        params = [p for m in self.layers.values() for p in (m.lora_A, m.lora_E, m.lora_B)]
        grads = [p.grad for p in params if p.grad is not None]
        if any(not torch.isfinite(g).all() for g in grads):
            return  # an fp16 step the loss scaler skipped
        for param in params:
            grad = param.grad if param.grad is not None else torch.zeros_like(param)
            sensitivity = (param * grad).abs().float()
            key = id(param)
            if key not in self.average:
                self.average[key] = torch.zeros_like(sensitivity)
                self.uncertainty[key] = torch.zeros_like(sensitivity)
            average = self.average[key].mul_(beta1).add_(sensitivity, alpha=1 - beta1)
            self.uncertainty[key].mul_(beta2).add_((sensitivity - average).abs(), alpha=1 - beta2)

    def score(self, param: torch.Tensor) -> torch.Tensor:
        """A weight's smoothed sensitivity times its uncertainty (zeros before any step)."""
        key = id(param)
        if key not in self.average:
            return torch.zeros(param.shape, device=param.device)
        return self.average[key] * self.uncertainty[key]

    def triplet_scores(self, module: AdaLoraAdapter) -> torch.Tensor:
        """One score per rank of ``module``: (r,)."""
        if module.rank == 0:
            return module.lora_E.new_zeros(0, dtype=torch.float32)
        return (
            self.score(module.lora_E)
            + self.score(module.lora_A).mean(dim=1)
            + self.score(module.lora_B).mean(dim=0)
        )

    @torch.no_grad()
    def mask_to_budget(self, budget: int) -> None:
        """Keep the ``budget`` best-scoring triplets of all layers, mask the others."""
        modules = list(self.layers.values())
        scores = torch.cat([self.triplet_scores(m).cpu() for m in modules])
        keep = torch.zeros_like(scores, dtype=torch.bool)
        keep[torch.topk(scores, budget).indices] = True  # exactly the budget, ties or not
        for module, kept in zip(modules, keep.split([m.rank for m in modules]), strict=True):
            kept = kept.to(module.rank_mask.device)
            module.rank_mask.copy_(kept.to(module.rank_mask.dtype))
            module.lora_E.masked_fill_(~kept, 0.0)

    def finish(self) -> str:
        """Drop the masked ranks from every layer and record the pattern in the config."""
        kept = self.kept_ranks()
        for module in self.layers.values():
            module.keep_ranks(module.rank_mask != 0)
        self.config.rank_pattern = {name: m.rank for name, m in self.layers.items()}
        ranks = self.config.rank_pattern.values()
        line = (
            f"adalora: final ranks {kept} in all over {len(self.layers)} layers "
            f"(per layer {min(ranks)} to {max(ranks)}; target {self.target} = "
            f"{self.config.target_r} x {len(self.layers)}, from {self.initial})"
        )
        if self.allocating and kept != self.target:
            line += f"; the schedule stopped at step {self.step} of {self.final_start}"
        return line
