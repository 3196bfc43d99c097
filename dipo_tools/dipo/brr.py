"""Bidirectional Reward Reallocation (spec §5) and the per-response DiPO advantage.

``A = A_GRPO(R) + alpha * A_GRPO(R_r)``: the verifier reward R is never altered; R_r is a separate, sparse
reward that exists only in qualifying extreme groups:
- a hard group (all wrong) gets ``R_r = 1`` on its max-PPL response (reward the most exploratory attempt);
- an easy group (all right) gets ``R_r = 0`` on its max-PPL response and 1 elsewhere (penalise the least
  confident success).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from .config import DiPOConfig
from .groups import Groups, group_codes, grpo_advantages, segment_first_argmax, segment_sum
from .psd import ThresholdFit, fit_threshold
from .state import DiPOState


def _as_1d(x: Any, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    if t.dim() != 1:
        raise ValueError(f"{name} must be a 1-D tensor of length B, got shape {tuple(t.shape)}")
    return t.to(dtype) if dtype is not None else t


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


def compute_dipo_advantages(
    scores: torch.Tensor,
    success: torch.Tensor,
    log_ppl: torch.Tensor,
    group_ids: Sequence[Any] | np.ndarray | torch.Tensor,
    state: DiPOState,
    config: DiPOConfig | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """DiPO per-response advantages for one batch, and the statistics of spec §7.

    Args:
        scores: ``[B]`` float, the verifier or shaped reward R (never altered).
        success: ``[B]`` bool or 0/1, the binary verdict used for extremeness and PSD.
        log_ppl: ``[B]`` float, from :func:`response_log_ppl` on the old-policy log-probs. A non-finite
            value (a response without generated tokens, or a -inf/NaN token log-prob) marks a response whose
            perplexity is undefined: it is left out of the queue and of the max-PPL choice, and its advantage
            is GRPO's alone.
        group_ids: length-B uids (verl's strings, any hashables) or an int tensor.
        state: the PPL queue; this batch's valid responses are pushed into it.
        config: :class:`DiPOConfig`; defaults when ``None``.
    Returns:
        ``(advantages [B], stats)``. With ``config.enabled=False`` the advantages equal verl's GRPO exactly.
    """
    config = config or DiPOConfig()
    scores = _as_1d(scores, "scores")
    if not torch.is_floating_point(scores):
        scores = scores.to(torch.float32)
    success = _as_1d(success, "success").to(device=scores.device) != 0
    log_ppl = _as_1d(log_ppl, "log_ppl").to(device=scores.device, dtype=torch.float64)
    valid = torch.isfinite(log_ppl)
    groups = group_codes(group_ids, scores.device)
    b = scores.numel()
    if not (success.numel() == log_ppl.numel() == groups.codes.numel() == b):
        raise ValueError(
            f"batch sizes differ: scores {b}, success {success.numel()}, log_ppl {log_ppl.numel()}, "
            f"group_ids {groups.codes.numel()}"
        )

    state.push(log_ppl[valid], success[valid], config.queue_batches)
    q_lp, q_success = state.queue()
    fit = fit_threshold(q_lp, q_success, z=config.z, min_side=config.min_side)

    hard, easy = classify_groups(scores, success, groups, config.extreme_by)
    r_r, hard_q, easy_q = reallocated_rewards(log_ppl, groups, hard, easy, fit, config, valid)

    adv_main = grpo_advantages(scores, groups, eps=config.eps, norm_by_std=config.norm_by_std)
    if config.enabled:
        # the side term lives among valid responses only (group statistics of R_r included)
        adv_side = torch.zeros_like(adv_main)
        adv_side[valid] = grpo_advantages(r_r[valid].to(scores.dtype), group_codes(groups.codes[valid], scores.device),
                                          eps=config.eps, norm_by_std=config.norm_by_std)
        advantages = adv_main + config.alpha * adv_side
    else:
        advantages = adv_main

    stats = _stats(success, log_ppl, valid, groups, hard, easy, hard_q, easy_q, fit, adv_main, advantages, state)
    return advantages, stats


def _stats(success, log_ppl, valid, groups, hard, easy, hard_q, easy_q, fit, adv_main, advantages, state):
    g = float(groups.num_groups)
    b = float(success.numel())
    nan = float("nan")
    right, wrong = success & valid, ~success & valid
    stats: dict[str, Any] = {
        "frac_hard": float(hard.sum()) / g,
        "frac_easy": float(easy.sum()) / g,
        "frac_normal": float((~hard & ~easy).sum()) / g,
        "disentangled": fit.disentangled,
        "tau": fit.tau,
        "tau_ppl": fit.tau_ppl,
        "p_low": fit.p_low,
        "p_high": fit.p_high,
        "p_low_lower": fit.p_low_lower,
        "p_high_upper": fit.p_high_upper,
        "n_low": fit.n_low,
        "n_high": fit.n_high,
        "psd_error_rate": fit.error_rate,
        "n_realloc_hard": int(hard_q.sum()),
        "n_realloc_easy": int(easy_q.sum()),
        "frac_nonzero_adv": float((advantages != 0).sum()) / b,
        "frac_nonzero_adv_grpo": float((adv_main != 0).sum()) / b,
        "mean_log_ppl_right": float(log_ppl[right].mean()) if bool(right.any()) else nan,
        "mean_log_ppl_wrong": float(log_ppl[wrong].mean()) if bool(wrong.any()) else nan,
        "success_rate": float(success.float().mean()),
        "queue_size": len(state),
        "n_undefined_ppl": int((~valid).sum()),
    }
    if fit.tau is not None:
        low = log_ppl < fit.tau  # quadrant shares among responses with a defined perplexity
        n = max(float(valid.sum()), 1.0)
        stats.update(
            quadrant_cl=float((right & low).sum()) / n,
            quadrant_ch=float((right & ~low).sum()) / n,
            quadrant_el=float((wrong & low).sum()) / n,
            quadrant_eh=float((wrong & ~low).sum()) / n,
        )
    else:  # quadrants are undefined without a threshold
        stats.update(quadrant_cl=nan, quadrant_ch=nan, quadrant_el=nan, quadrant_eh=nan)
    return stats
