"""Seed-level statistics of a sweep: means with Student-t intervals and paired t-tests.

The unit of replication is the seed: one number per run (e.g. final held-out success), n runs per variant.

* Interval of a variant's mean: ``mean ± t_{(1+c)/2, n-1} · sd / sqrt(n)`` (sd with n-1).
* Paired comparison of variant A with B: the per-seed differences ``d_s = A_s - B_s`` over the seeds both
  finished (same seed = same warmed-up weights, task order and evaluation set), then the same interval on
  ``mean(d)`` and the two-sided paired t-test ``t = mean(d) / (sd(d) / sqrt(n))`` with n-1 degrees of
  freedom. Pairing removes the seed-to-seed variation the variants share, which is most of it here.
* Holm's step-down adjustment of the p-values of one family (one task and one column, all comparisons).

The Student-t distribution comes from SciPy when it is installed, otherwise from mpmath (a dependency
of math-verify's sympy), with the exact regularised incomplete beta function: both give the same values
to many digits, so results never depend on which one was used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import mpmath  # always there (sympy's dependency, through math-verify)

try:
    from scipy.stats import t as student_t
except ImportError:  # SciPy is optional: mpmath gives the same values
    student_t = None


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"t_cdf: df={df} must be > 0")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if student_t is None:
        x = df / (df + t * t)
        tail = 0.5 * float(mpmath.betainc(df / 2, 0.5, 0, x, regularized=True))
        return 1.0 - tail if t >= 0 else tail
    return float(student_t.cdf(t, df))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (e.g. 0.975 -> 2.776 for df=4)."""
    if not 0 < p < 1:
        raise ValueError(f"t_quantile: p={p} must be in (0, 1)")
    if student_t is None:
        if p < 0.5:
            return -t_quantile(1 - p, df)
        if p == 0.5:
            return 0.0
        lo, hi = 0.0, 1.0
        while t_cdf(hi, df) < p:  # bracket, then bisect the monotone cdf
            lo, hi = hi, hi * 2
        for _ in range(200):
            mid = (lo + hi) / 2
            if t_cdf(mid, df) < p:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-12 * max(1.0, hi):
                break
        return (lo + hi) / 2
    return float(student_t.ppf(p, df))


@dataclass(frozen=True)
class Summary:
    """Mean and interval of one column over seeds (``n`` finished runs)."""

    n: int
    mean: float
    sd: float
    low: float
    high: float


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(vals)
    if n == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan)
    mean = sum(vals) / n
    if n == 1:
        return Summary(1, mean, float("nan"), float("nan"), float("nan"))
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = t_quantile((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class Paired:
    """A paired comparison ``a - b`` over ``n`` seeds both finished."""

    n: int
    mean: float
    sd: float
    low: float
    high: float
    t: float
    p: float
    wins: int  # seeds where a > b
    losses: int  # seeds where a < b


def paired(a: dict, b: dict, confidence: float = 0.95) -> Paired:
    """Paired t-test of ``a[seed] - b[seed]`` over the seeds present (and finite) in both mappings."""
    seeds = sorted(s for s in a if s in b and _finite(a[s]) and _finite(b[s]))
    d = [float(a[s]) - float(b[s]) for s in seeds]
    s = summarize(d, confidence)
    if s.n < 2:
        return Paired(s.n, s.mean, s.sd, s.low, s.high, float("nan"), float("nan"), _count(d, 1), _count(d, -1))
    if s.sd == 0:  # identical differences: no spread to test against
        t, p = (0.0, 1.0) if s.mean == 0 else (math.copysign(math.inf, s.mean), 0.0)
    else:
        t = s.mean / (s.sd / math.sqrt(s.n))
        p = 2 * (1 - t_cdf(abs(t), s.n - 1))
    return Paired(s.n, s.mean, s.sd, s.low, s.high, t, min(max(p, 0.0), 1.0), _count(d, 1), _count(d, -1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (family-wise error), same order as given; NaN stays NaN."""
    idx = [i for i, p in enumerate(pvalues) if _finite(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    m = len(order)
    out = [float("nan")] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _count(d: list[float], sign: int) -> int:
    return sum(1 for x in d if (x > 0 if sign > 0 else x < 0))


def moving_average(ys: Sequence[float], window: int) -> list[float]:
    """Trailing mean over ``window`` steps, skipping non-finite values (NaN where a window has none)."""
    out = []
    for i in range(len(ys)):
        win = [y for y in ys[max(0, i - window + 1): i + 1] if math.isfinite(y)]
        out.append(sum(win) / len(win) if win else float("nan"))
    return out
