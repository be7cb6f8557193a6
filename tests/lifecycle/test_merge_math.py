"""The merge arithmetic on small tensors, against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from adapterkit.errors import AdapterkitError
from adapterkit.lifecycle.merge import (
    LowRankDelta,
    dare,
    drop_and_rescale,
    merge_lora_layer,
    merged_rank,
    ties,
    trim,
    weighted_average,
)


def test_weighted_average_normalises_the_weights() -> None:
    a, b = torch.tensor([1.0, 4.0]), torch.tensor([4.0, -2.0])
    torch.testing.assert_close(
        weighted_average([a, b], [2.0, 1.0]), torch.tensor([2.0, 2.0]).double()
    )
    with pytest.raises(AdapterkitError, match="sum to 0"):
        weighted_average([a, b], [1.0, -1.0])


def test_trim_keeps_the_largest_magnitudes() -> None:
    delta = torch.tensor([[3.0, -1.0], [0.5, -2.0]])
    assert trim(delta, 0.5).tolist() == [[3.0, 0.0], [0.0, -2.0]]
    assert trim(delta, 1.0).tolist() == delta.tolist()
    assert trim(delta, 0.01).tolist() == [[3.0, 0.0], [0.0, 0.0]]  # at least one entry


def test_ties_trims_elects_by_mass_and_takes_the_disjoint_mean() -> None:
    d1 = torch.tensor([[3.0, -1.0], [0.5, 2.0]])  # trimmed: [[3, 0], [0, 2]]
    d2 = torch.tensor([[2.0, -4.0], [1.0, 0.2]])  # trimmed: [[2, -4], [0, 0]]
    merged = ties([d1, d2], [1.0, 0.5], density=0.5)
    # (0,0): both agree on +: (1*3 + 0.5*2) / 2; (0,1): only d2: 0.5*-4 / 1;
    # (1,0): trimmed away by both; (1,1): only d1.
    assert merged.tolist() == [[2.0, -2.0], [0.0, 2.0]]


def test_ties_elects_the_sign_by_total_mass_not_by_count() -> None:
    deltas = [torch.tensor([4.0, 1.0]), torch.tensor([-1.0, 3.0]), torch.tensor([-2.0, -5.0])]
    # entry 0: two negatives, but the sum 1 is positive, so only 4 survives;
    # entry 1: the sum -1 elects -, so only -5 survives.
    assert ties(deltas, [1.0, 1.0, 1.0], density=1.0).tolist() == [4.0, -5.0]


def test_dare_drops_rescales_and_is_reproducible_with_a_seed() -> None:
    delta = torch.full((200, 300), 2.0)
    dropped = drop_and_rescale(delta, 0.25, torch.Generator().manual_seed(3))
    kept = dropped != 0
    assert set(dropped.unique().tolist()) == {0.0, 8.0}  # kept entries divided by density
    assert abs(kept.double().mean().item() - 0.25) < 0.01
    assert abs(dropped.mean().item() - 2.0) < 0.05  # the mean is preserved
    again = drop_and_rescale(delta, 0.25, torch.Generator().manual_seed(3))
    other = drop_and_rescale(delta, 0.25, torch.Generator().manual_seed(4))
    assert torch.equal(dropped, again) and not torch.equal(dropped, other)


def test_dare_at_density_one_is_the_weighted_sum() -> None:
    d1, d2 = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 5.0])
    merged = dare([d1, d2], [0.5, 2.0], 1.0, torch.Generator().manual_seed(0))
    assert merged.tolist() == [6.5, 9.0]


def _part(out: int, inp: int, r: int, scaling: float, seed: int) -> LowRankDelta:
    generator = torch.Generator().manual_seed(seed)
    return LowRankDelta(
        torch.randn(r, inp, generator=generator), torch.randn(out, r, generator=generator), scaling
    )


def test_linear_merge_at_the_summed_rank_is_exact() -> None:
    parts = [_part(12, 9, 2, 4.0, 1), _part(12, 9, 3, 0.5, 2)]
    merged = merge_lora_layer(parts, [0.7, -0.3], "linear", rank=5)
    expected = 0.7 * parts[0].dense() - 0.3 * parts[1].dense()
    torch.testing.assert_close(merged.b @ merged.a, expected, rtol=1e-10, atol=1e-10)
    assert merged.a.shape == (5, 9) and merged.b.shape == (12, 5)
    assert merged.relative_error < 1e-12


def test_a_lower_rank_reports_the_truncation_error() -> None:
    parts = [_part(12, 9, 2, 1.0, 1), _part(12, 9, 3, 1.0, 2)]
    merged = merge_lora_layer(parts, [0.5, 0.5], "linear", rank=2)
    delta = 0.5 * parts[0].dense() + 0.5 * parts[1].dense()
    actual = (torch.linalg.norm(delta - merged.b @ merged.a) / torch.linalg.norm(delta)).item()
    assert merged.relative_error == pytest.approx(actual, rel=1e-9) and actual > 0.05
    # Eckart–Young: nothing of rank 2 is closer than the SVD's truncation.
    s = torch.linalg.svdvals(delta)
    assert actual == pytest.approx((s[2:].square().sum() / s.square().sum()).sqrt().item())


def test_a_rank_above_the_delta_pads_with_zeros_and_ties_at_full_rank_is_exact() -> None:
    parts = [_part(4, 6, 3, 1.0, 1), _part(4, 6, 3, 2.0, 2)]
    merged = merge_lora_layer(parts, [1.0, 1.0], "ties", rank=6, density=0.5)
    expected = ties([p.dense() for p in parts], [1.0, 1.0], 0.5)
    torch.testing.assert_close(merged.b @ merged.a, expected, rtol=1e-10, atol=1e-10)
    assert merged.b[:, 4:].abs().max() == 0 and merged.a[4:].abs().max() == 0  # min(4, 6) = 4


def test_merged_rank_defaults_to_the_sum_capped_by_the_layers() -> None:
    assert merged_rank(None, [4, 8], [(32, 32), (64, 32)]) == 12
    assert merged_rank(None, [16, 32], [(32, 32), (64, 32)]) == 32
    assert merged_rank(3, [16, 32], [(32, 32)]) == 3
    assert merged_rank(100, [4], [(8, 64), (64, 8)]) == 8
