"""Group bookkeeping and GRPO normalisation with segment ops (no Python loop over groups).

verl's ``compute_grpo_outcome_advantage`` reduces each group with ``torch.mean``/``torch.std`` over the
group's scores in batch order. Here the groups of each distinct size are gathered into one ``[n, size]``
matrix (members in batch order) and reduced along rows, which gives bit-identical results; the only
Python loop is over the few distinct group sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch


@dataclass(frozen=True)
class Groups:
    """Dense group codes of a batch.

    Attributes:
        codes: ``[B]`` long, group index of each response in ``0..num_groups-1``.
        sizes: ``[num_groups]`` long, members per group.
        order: ``[B]`` long, a stable sort of the batch by group (members keep batch order).
        starts: ``[num_groups]`` long, where each group begins in ``order``.
    """

    codes: torch.Tensor
    sizes: torch.Tensor
    order: torch.Tensor
    starts: torch.Tensor

    @property
    def num_groups(self) -> int:
        return int(self.sizes.numel())


def _object_array(items: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    arr[:] = list(items)
    return arr


def group_codes(group_ids: Sequence[Any] | np.ndarray | torch.Tensor, device: torch.device | None = None) -> Groups:
    """Turn verl-style uids (strings or any hashables) or an int tensor into dense group codes."""
    if isinstance(group_ids, torch.Tensor):
        if group_ids.dim() != 1:
            raise ValueError(f"group_ids must be 1-D, got shape {tuple(group_ids.shape)}")
        _, codes = torch.unique(group_ids, return_inverse=True)
        codes = codes.to(device or group_ids.device)
    else:
        # Hash-based factorisation: O(B), unlike sorting B Python strings (verl's uids are strings).
        values = group_ids if isinstance(group_ids, np.ndarray) and group_ids.ndim == 1 else _object_array(group_ids)
        inverse, _ = pd.factorize(values, sort=False)
        if (inverse < 0).any():
            raise ValueError("group_ids contain missing values (None/NaN); every response needs a group id")
        codes = torch.as_tensor(inverse, dtype=torch.long, device=device)
    sizes = torch.bincount(codes)
    order = torch.sort(codes, stable=True).indices
    starts = torch.cumsum(sizes, 0) - sizes
    return Groups(codes=codes, sizes=sizes, order=order, starts=starts)


def _size_buckets(groups: Groups):
    """Yield ``(group_idx [n], member_idx [n, size])`` for each distinct group size."""
    for size in torch.unique(groups.sizes).tolist():
        g_idx = torch.nonzero(groups.sizes == size, as_tuple=True)[0]
        offsets = groups.starts[g_idx].unsqueeze(1) + torch.arange(size, device=g_idx.device)
        yield size, g_idx, groups.order[offsets]


def group_mean_std(values: torch.Tensor, groups: Groups) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group mean and unbiased std, with verl's convention mean 0 / std 1 for size-1 groups."""
    mean = torch.zeros(groups.num_groups, dtype=values.dtype, device=values.device)
    std = torch.ones(groups.num_groups, dtype=values.dtype, device=values.device)
    for size, g_idx, members in _size_buckets(groups):
        if size == 1:
            continue
        mat = values[members]
        mean[g_idx] = torch.mean(mat, dim=1)
        std[g_idx] = torch.std(mat, dim=1)
    return mean, std


def grpo_advantages(
    scores: torch.Tensor,
    group_ids: Sequence[Any] | np.ndarray | torch.Tensor | Groups,
    eps: float = 1e-6,
    norm_by_std: bool = True,
) -> torch.Tensor:
    """GRPO outcome advantage per response, ``(x - mean_g) / (std_g + eps)`` (or ``x - mean_g``).

    Bit-identical to verl's ``compute_grpo_outcome_advantage`` before its broadcast over the mask.
    """
    groups = group_ids if isinstance(group_ids, Groups) else group_codes(group_ids, scores.device)
    if groups.codes.numel() != scores.numel():
        raise ValueError(f"{scores.numel()} scores but {groups.codes.numel()} group ids")
    with torch.no_grad():
        mean, std = group_mean_std(scores, groups)
        centred = scores - mean[groups.codes]
        return centred / (std[groups.codes] + eps) if norm_by_std else centred


def segment_first_argmax(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Batch index of each group's maximum; ties go to the first (lowest batch index) member."""
    n = values.numel()
    gmax = torch.full((groups.num_groups,), float("-inf"), dtype=values.dtype, device=values.device)
    gmax = gmax.scatter_reduce(0, groups.codes, values, reduce="amax", include_self=True)
    positions = torch.arange(n, device=values.device)
    candidate = torch.where(values == gmax[groups.codes], positions, torch.full_like(positions, n))
    first = torch.full((groups.num_groups,), n, dtype=torch.long, device=values.device)
    return first.scatter_reduce(0, groups.codes, candidate, reduce="amin", include_self=True)


def segment_sum(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    out = torch.zeros(groups.num_groups, dtype=values.dtype, device=values.device)
    return out.index_add(0, groups.codes, values)
