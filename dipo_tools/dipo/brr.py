"""Bidirectional Reward Reallocation (docs/algorithm.md, "BRR"): which groups are extreme, and the side
reward R_r of the qualifying ones.

The verifier reward R is never altered; R_r is a separate, sparse reward that exists only in qualifying
extreme groups (the advantage ``A = A_GRPO(R) + alpha * A_GRPO(R_r)`` is formed in ``advantages.py``):
- a hard group (all wrong) gets ``R_r = 1`` on its max-PPL response (reward the most exploratory attempt);
- an easy group (all right) gets ``R_r = 0`` on its max-PPL response and 1 elsewhere (penalise the least
  confident success).
"""
from __future__ import annotations

import math

import torch

from .config import DiPOConfig
from .groups import Groups, segment_first_argmax, segment_sum
from .psd import ThresholdFit


def classify_groups(
    scores: torch.Tensor, success: torch.Tensor, groups: Groups, extreme_by: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(hard [G] bool, easy [G] bool)`` per group."""
    n_right = segment_sum(success.to(torch.float64), groups)
    sizes = groups.sizes.to(torch.float64)
    if extreme_by == "success":
        return n_right == 0, n_right == sizes
    # extreme_by == "score": zero variance of the score, decided by exact equality (not a float std).
    gmax = torch.full((groups.num_groups,), -math.inf, dtype=scores.dtype, device=scores.device)
    gmin = torch.full((groups.num_groups,), math.inf, dtype=scores.dtype, device=scores.device)
    gmax = gmax.scatter_reduce(0, groups.codes, scores, reduce="amax")
    gmin = gmin.scatter_reduce(0, groups.codes, scores, reduce="amin")
    flat = gmax == gmin
    mostly_right = n_right / sizes >= 0.5
    return flat & ~mostly_right, flat & mostly_right


def reallocated_rewards(
    log_ppl: torch.Tensor,
    groups: Groups,
    hard: torch.Tensor,
    easy: torch.Tensor,
    fit: ThresholdFit,
    config: DiPOConfig,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``R_r [B]`` plus the masks of reallocated hard and easy groups ``[G]``.

    Only ``valid`` responses (default: all) take part: the max-PPL choice, the group-mean gate and the
    "at least 2 members" rule count them alone, and an invalid response always gets ``R_r = 0``.
    """
    if valid is None:
        valid = torch.ones_like(log_ppl, dtype=torch.bool)
    argmax = segment_first_argmax(torch.where(valid, log_ppl, torch.full_like(log_ppl, -math.inf)), groups)
    n_valid = segment_sum(valid.to(log_ppl.dtype), groups)
    qualifies = n_valid >= 2
    if config.gate == "none":
        hard_q, easy_q = hard & qualifies, easy & qualifies
    elif fit.tau is None:
        hard_q = easy_q = torch.zeros_like(hard)
    else:
        if config.gate == "max_sample":
            probe = log_ppl[argmax.clamp(max=log_ppl.numel() - 1)]
        else:  # group_mean
            probe = segment_sum(torch.where(valid, log_ppl, torch.zeros_like(log_ppl)), groups) / n_valid.clamp(min=1)
        below = probe < fit.tau
        hard_q = hard & qualifies & below
        easy_q = easy & qualifies & ~below
    if config.reallocate == "hard":
        easy_q = torch.zeros_like(easy_q)
    elif config.reallocate == "easy":
        hard_q = torch.zeros_like(hard_q)
    r_r = (easy_q[groups.codes] & valid).to(torch.float32)  # easy groups: 1 for every valid member ...
    picked = hard_q | easy_q
    # ... and the max-PPL member of each reallocated group: 1 in a hard group, 0 in an easy one.
    r_r[argmax[picked]] = hard_q[picked].to(r_r.dtype)
    return r_r, hard_q, easy_q
