"""Configuration of AdaLoRA (Zhang et al. 2023): LoRA in SVD form whose ranks move, during
training, to the layers that matter, on a shrinking budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import (
    AdapterModule,
    BaseWeights,
    LayerSpec,
    TrainingController,
)
from adapterkit.methods.lora.config import LoraConfig

if TYPE_CHECKING:
    from torch import nn

    from adapterkit.methods.adalora.layer import AdaLoraAdapter


@dataclass
class AdaLoraConfig(LoraConfig):
    """``ΔW = s · Q diag(λ ⊙ mask) P`` on frozen linear layers, with a rank budget.

    Every layer starts at rank ``r``; the trainer then keeps only the most important
    (P row, λ, Q column) triplets of the whole model, on a budget that falls from ``r``
    to ``target_r`` per layer on average (a cubic schedule between the warm-up and the
    final phase), and adds an orthogonality penalty on P and Q to the loss. The bundle
    keeps only the ranks left at the end (``rank_pattern``). ``alpha``, ``dropout`` and
    ``use_rslora`` are LoRA's (the scaling uses the initial rank, as peft's does).
    """

    r: int = field(default=12, metadata={"flag": "--rank", "dest": "rank", "min": 1})
    """Initial rank of every adapted layer (AdaLoRA's init_r)."""

    target_r: int = field(
        default=8, metadata={"flag": "--target-rank", "dest": "target_rank", "min": 1}
    )
    """Average rank per layer at the end: the run keeps target_r × (adapted layers) ranks
    in all, wherever the importance scores put them (a layer may end at 0 or at r)."""

    rank_warmup: float = field(default=0.1, metadata={"min": 0, "max": 1})
    """Share of the run's optimizer steps trained at full rank before ranks are cut."""

    rank_final: float = field(default=0.3, metadata={"min": 0, "max": 1})
    """Share of the run's optimizer steps, at the end, trained with the final ranks fixed.
    Only evaluations from then on can be the best checkpoint or count for early stopping."""

    rank_interval: int = field(default=1, metadata={"min": 1})
    """Optimizer steps between two re-allocations of the ranks while the budget falls."""

    importance_beta1: float = field(default=0.85, metadata={"min": 0, "below": 1})
    """Smoothing of the sensitivity |weight × gradient| (an exponential moving average)."""

    importance_beta2: float = field(default=0.85, metadata={"min": 0, "below": 1})
    """Smoothing of the sensitivity's uncertainty |sensitivity - its average|."""

    orth_reg_weight: float = field(default=0.5, metadata={"min": 0})
    """Weight of the penalty ‖P Pᵀ - I‖ + ‖Qᵀ Q - I‖ (mean over the layers) added to the loss."""

    rank_pattern: dict[str, int] | None = field(default=None, metadata={"flag": None})
    """The rank each layer kept, by layer name, written when training ends (a bundle's
    record); None while ranks are still to be allocated."""

    method: ClassVar[str] = "adalora"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target_r > self.r:
            raise AdapterkitError(
                f"adalora: --target-rank {self.target_r} is above the initial --rank {self.r}; "
                "the rank budget only shrinks, so give a target rank of at most the initial one"
            )
        if self.rank_warmup + self.rank_final > 1:
            raise AdapterkitError(
                f"adalora: --rank-warmup {self.rank_warmup} plus --rank-final {self.rank_final} "
                "is over 1 (they are shares of the same run's steps)"
            )
        for layer, rank in (self.rank_pattern or {}).items():
            if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank <= self.r:
                raise AdapterkitError(
                    f"adalora: rank_pattern gives layer '{layer}' rank {rank!r}; "
                    f"a rank is an integer from 0 to r={self.r}"
                )

    def roles(self) -> list[str]:
        return ["lora"]  # the same layers as LoRA

    def build(self, in_features: int, out_features: int, tap_features: int | None) -> AdapterModule:
        from adapterkit.methods.adalora.layer import AdaLoraAdapter

        self.check_rank(in_features, out_features)
        return AdaLoraAdapter(in_features, out_features, self.r, self.scaling, self.dropout)

    def build_layer(self, spec: LayerSpec, base: BaseWeights) -> AdapterModule:
        """The layer at its rank: ``r``, or its entry in ``rank_pattern`` once allocated
        (the scaling stays that of the initial rank, which the weights were trained with)."""
        if self.rank_pattern is None:
            return self.build(spec.in_features, spec.out_features, spec.tap_features)
        from adapterkit.methods.adalora.layer import AdaLoraAdapter

        if spec.name not in self.rank_pattern:
            raise AdapterkitError(
                f"adalora: rank_pattern names no rank for layer '{spec.name}' "
                f"(it names {len(self.rank_pattern)} layers)"
            )
        self.check_rank(spec.in_features, spec.out_features)
        rank = self.rank_pattern[spec.name]
        return AdaLoraAdapter(spec.in_features, spec.out_features, rank, self.scaling, self.dropout)

    def prepare_model(self, model: nn.Module, targets: list[str]) -> None:
        """Refuse a ``rank_pattern`` (a bundle's) that names layers this adapter does not
        adapt: a rank for no layer means the file is not the one its weights belong to."""
        unknown = sorted(set(self.rank_pattern or {}) - set(targets))
        if unknown:
            raise AdapterkitError(
                f"adalora: rank_pattern names {len(unknown)} layer(s) the adapter does not "
                f"adapt, such as '{unknown[0]}' (it adapts {len(targets)})"
            )

    def training_controller(
        self, modules: dict[str, AdapterModule], total_steps: int
    ) -> TrainingController | None:
        """The rank allocator (see :mod:`adapterkit.methods.adalora.allocator`)."""
        from adapterkit.methods.adalora.allocator import RankAllocator

        layers: dict[str, AdaLoraAdapter] = modules  # type: ignore[assignment]
        return RankAllocator(self, layers, total_steps)
