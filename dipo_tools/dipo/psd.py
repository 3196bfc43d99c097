"""Perplexity Space Disentangling (docs/algorithm.md, "PSD"): the threshold τ* that separates confident from unconfident.

Candidates are the midpoints between consecutive distinct sorted log-PPL values. A candidate is admissible
when both sides hold at least ``min_side`` samples and the Wald intervals say ``p_L > 0.5`` and
``p_H < 0.5``. τ* minimises the error of "predict right iff PPL is low" over admissible candidates, ties to
the smallest τ. One sort and cumulative sums: O(|Q| log |Q|), no loop over candidates.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class ThresholdFit:
    """Result of :func:`fit_threshold`.

    ``tau`` is the admissible threshold in log-PPL, or ``None`` ("not disentangled"). When no candidate is
    admissible, the other fields describe the lowest-error candidate overall, for diagnosis (NaN and 0 when
    Q has fewer than two distinct values).
    """

    tau: float | None
    p_low: float
    p_high: float
    p_low_lower: float  # Wald lower bound of p_L
    p_high_upper: float  # Wald upper bound of p_H
    n_low: int
    n_high: int
    error_rate: float  # misclassification rate of the classifier on Q
    num_candidates: int
    num_admissible: int

    @property
    def disentangled(self) -> bool:
        return self.tau is not None

    @property
    def tau_ppl(self) -> float | None:
        return None if self.tau is None else math.exp(self.tau)

    def as_dict(self) -> dict:
        return asdict(self)


def _empty_fit() -> ThresholdFit:
    nan = float("nan")
    return ThresholdFit(None, nan, nan, nan, nan, 0, 0, nan, 0, 0)


def fit_threshold(
    log_ppl: torch.Tensor, success: torch.Tensor, z: float = 1.96, min_side: int = 10
) -> ThresholdFit:
    """Fit τ* on the queue ``(log_ppl, success)`` (both ``[N]``)."""
    lp = log_ppl.detach().to("cpu", torch.float64).reshape(-1)
    r = success.detach().to("cpu", torch.float64).reshape(-1)
    n = lp.numel()
    if r.numel() != n:
        raise ValueError(f"log_ppl has {n} values but success has {r.numel()}")
    if n < 2:
        return _empty_fit()
    sorted_lp, order = torch.sort(lp, stable=True)
    sorted_r = r[order]
    # Candidate k splits the sorted queue into [0, k) and [k, n); valid where the values differ.
    k = torch.nonzero(sorted_lp[1:] > sorted_lp[:-1], as_tuple=True)[0] + 1
    if k.numel() == 0:
        return _empty_fit()
    cum_right = torch.cumsum(sorted_r, 0)
    total_right = cum_right[-1]
    right_low = cum_right[k - 1]
    n_low = k.to(torch.float64)
    n_high = n - n_low
    p_low = right_low / n_low
    p_high = (total_right - right_low) / n_high
    p_low_lower = p_low - z * torch.sqrt(p_low * (1 - p_low) / n_low)
    p_high_upper = p_high + z * torch.sqrt(p_high * (1 - p_high) / n_high)
    # Errors: wrong answers below τ (EL) plus right answers at or above τ (CH).
    errors = (n_low - right_low) + (total_right - right_low)
    admissible = (n_low >= min_side) & (n_high >= min_side) & (p_low_lower > 0.5) & (p_high_upper < 0.5)
    num_admissible = int(admissible.sum())
    masked = torch.where(admissible, errors, torch.full_like(errors, math.inf)) if num_admissible else errors
    best = int(torch.argmin(masked))  # first minimum = smallest τ
    lo, hi = sorted_lp[k[best] - 1], sorted_lp[k[best]]
    mid = (lo + hi) / 2
    tau = float(mid if mid > lo else hi)  # guard against rounding onto the lower value
    return ThresholdFit(
        tau=tau if num_admissible else None,
        p_low=float(p_low[best]),
        p_high=float(p_high[best]),
        p_low_lower=float(p_low_lower[best]),
        p_high_upper=float(p_high_upper[best]),
        n_low=int(n_low[best]),
        n_high=int(n_high[best]),
        error_rate=float(errors[best]) / n,
        num_candidates=int(k.numel()),
        num_admissible=num_admissible,
    )
