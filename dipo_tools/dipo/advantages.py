"""The DiPO entry point: per-response advantages of one batch, and its statistics (:class:`DiPOStats`).

One call runs the whole algorithm (docs/algorithm.md, "The advantage"): push the batch into the PPL queue,
fit the threshold on the queue (PSD), classify the groups, reallocate the side reward in qualifying extreme
groups (BRR), and add the two GRPO terms ``A = A_GRPO(R) + alpha * A_GRPO(R_r)``.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, Sequence

import numpy as np
import torch

from .brr import classify_groups, reallocated_rewards
from .config import DiPOConfig
from .groups import group_codes, grpo_advantages
from .psd import fit_threshold
from .state import DiPOState


@dataclass(frozen=True)
class DiPOStats(Mapping[str, Any]):
    """What one call of :func:`compute_dipo_advantages` saw and did; logged as ``dipo/<field>`` metrics.

    Also a read-only mapping of its field names to values (``stats["tau"]``, ``dict(stats)``,
    ``stats.items()``), so metric loggers and user code that read the statistics like a dict keep working.
    Shares are fractions in [0, 1]. NaN means "undefined for this batch" (e.g. no wrong response).

    Attributes:
        frac_hard: Share of groups in which every response failed (extreme, zero GRPO advantage).
        frac_easy: Share of groups in which every response succeeded.
        frac_normal: Share of the remaining groups (mixed outcomes), where GRPO alone has a signal.
        disentangled: Whether PSD found an admissible threshold on the queue this step; without it no group
            is reallocated (unless ``gate="none"``).
        tau: The threshold τ* in log-PPL, or ``None`` when not disentangled.
        tau_ppl: τ* as a perplexity (``exp(tau)``), or ``None``.
        p_low: Success rate of queued responses below the threshold (of the best candidate when none is
            admissible).
        p_high: Success rate of queued responses at or above the threshold.
        p_low_lower: Wald lower bound of ``p_low``; admissible thresholds have it above 0.5.
        p_high_upper: Wald upper bound of ``p_high``; admissible thresholds have it below 0.5.
        n_low: Queued responses below the threshold.
        n_high: Queued responses at or above the threshold.
        psd_error_rate: Error of the classifier "right iff low perplexity" on the queue.
        n_realloc_hard: Hard groups that received the side reward (their max-PPL response rewarded).
        n_realloc_easy: Easy groups that received the side reward (their max-PPL response penalised).
        frac_nonzero_adv: Share of responses with a non-zero DiPO advantage (the ones that carry gradient).
        frac_nonzero_adv_grpo: The same share under the GRPO term alone, for comparison.
        mean_log_ppl_right: Mean log-PPL of the batch's successful responses (defined perplexity only).
        mean_log_ppl_wrong: Mean log-PPL of the batch's failed responses.
        success_rate: Share of the batch's responses that succeeded.
        queue_size: Responses in the PPL queue after this batch was pushed.
        n_undefined_ppl: Responses with a non-finite log-PPL, left out of the queue and of BRR.
        quadrant_cl: Share of responses that are right with low perplexity (confident, right); NaN without
            a threshold. The four quadrants count responses with a defined perplexity and sum to 1.
        quadrant_ch: Right with high perplexity (lucky successes).
        quadrant_el: Wrong with low perplexity (confident errors).
        quadrant_eh: Wrong with high perplexity.
    """

    frac_hard: float
    frac_easy: float
    frac_normal: float
    disentangled: bool
    tau: float | None
    tau_ppl: float | None
    p_low: float
    p_high: float
    p_low_lower: float
    p_high_upper: float
    n_low: int
    n_high: int
    psd_error_rate: float
    n_realloc_hard: int
    n_realloc_easy: int
    frac_nonzero_adv: float
    frac_nonzero_adv_grpo: float
    mean_log_ppl_right: float
    mean_log_ppl_wrong: float
    success_rate: float
    queue_size: int
    n_undefined_ppl: int
    quadrant_cl: float
    quadrant_ch: float
    quadrant_el: float
    quadrant_eh: float

    def __getitem__(self, key: str) -> Any:
        if key not in _STAT_NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_STAT_NAMES)

    def __len__(self) -> int:
        return len(_STAT_NAMES)

    def as_metrics(self) -> dict[str, Any]:
        """A plain dict of every statistic, in field order (for JSON and metric loggers)."""
        return dict(self)


_STAT_NAMES = tuple(f.name for f in fields(DiPOStats))


def _as_1d(x: Any, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    if t.dim() != 1:
        raise ValueError(f"{name} must be a 1-D tensor of length B, got shape {tuple(t.shape)}")
    return t.to(dtype) if dtype is not None else t


def _mean_or_nan(values: torch.Tensor) -> float:
    return float(values.mean()) if values.numel() else float("nan")


def compute_dipo_advantages(
    scores: torch.Tensor,
    success: torch.Tensor,
    log_ppl: torch.Tensor,
    group_ids: Sequence[Any] | np.ndarray | torch.Tensor,
    state: DiPOState,
    config: DiPOConfig | None = None,
) -> tuple[torch.Tensor, DiPOStats]:
    """DiPO per-response advantages for one batch, and its :class:`DiPOStats`.

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

    right, wrong = success & valid, ~success & valid
    if fit.tau is not None:  # quadrant shares among responses with a defined perplexity
        low = log_ppl < fit.tau
        n_valid = max(float(valid.sum()), 1.0)
        cl, ch, el, eh = (float(m.sum()) / n_valid for m in (right & low, right & ~low, wrong & low, wrong & ~low))
    else:  # quadrants are undefined without a threshold
        cl = ch = el = eh = float("nan")
    n_groups = float(groups.num_groups)
    stats = DiPOStats(
        frac_hard=float(hard.sum()) / n_groups,
        frac_easy=float(easy.sum()) / n_groups,
        frac_normal=float((~hard & ~easy).sum()) / n_groups,
        disentangled=fit.disentangled,
        tau=fit.tau,
        tau_ppl=fit.tau_ppl,
        p_low=fit.p_low,
        p_high=fit.p_high,
        p_low_lower=fit.p_low_lower,
        p_high_upper=fit.p_high_upper,
        n_low=fit.n_low,
        n_high=fit.n_high,
        psd_error_rate=fit.error_rate,
        n_realloc_hard=int(hard_q.sum()),
        n_realloc_easy=int(easy_q.sum()),
        frac_nonzero_adv=float((advantages != 0).sum()) / b,
        frac_nonzero_adv_grpo=float((adv_main != 0).sum()) / b,
        mean_log_ppl_right=_mean_or_nan(log_ppl[right]),
        mean_log_ppl_wrong=_mean_or_nan(log_ppl[wrong]),
        success_rate=float(success.float().mean()),
        queue_size=len(state),
        n_undefined_ppl=int((~valid).sum()),
        quadrant_cl=cl, quadrant_ch=ch, quadrant_el=el, quadrant_eh=eh,
    )
    return advantages, stats
