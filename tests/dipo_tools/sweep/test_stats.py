"""Seed-level statistics: Student-t values from tables, paired tests, Holm's adjustment."""
from __future__ import annotations

import math

import pytest

from dipo_tools.sweep import stats


@pytest.mark.parametrize("p, df, expected", [  # printed t tables
    (0.975, 1, 12.706), (0.975, 4, 2.776), (0.975, 9, 2.262), (0.95, 4, 2.132), (0.995, 4, 4.604), (0.025, 4, -2.776),
])
def test_t_quantile_matches_tables(p, df, expected):
    assert stats.t_quantile(p, df) == pytest.approx(expected, abs=1e-3)
    assert stats.t_cdf(stats.t_quantile(p, df), df) == pytest.approx(p, abs=1e-9)


def test_summary_interval_is_mean_plus_minus_t_se():
    s = stats.summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert (s.n, s.mean) == (5, 3.0) and s.low == pytest.approx(3 - half, rel=1e-6) and s.high == pytest.approx(3 + half, rel=1e-6)
    assert math.isnan(stats.summarize([1.0]).low) and stats.summarize([]).n == 0
    assert stats.summarize([1.0, float("nan"), 3.0]).n == 2  # a missing value is not a zero


def test_paired_uses_only_common_seeds_and_the_differences():
    a = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 6.0, 9: 100.0}
    b = {0: 0.0, 1: 1.5, 2: 2.0, 3: 3.9, 4: 5.0, 7: -5.0}
    p = stats.paired(a, b)
    d = [1.0, 0.5, 1.0, 0.1, 1.0]
    sd = math.sqrt(sum((x - 0.72) ** 2 for x in d) / 4)
    assert p.n == 5 and p.mean == pytest.approx(0.72) and p.t == pytest.approx(0.72 / (sd / math.sqrt(5)))
    assert p.p == pytest.approx(0.01696, abs=1e-4) and (p.wins, p.losses) == (5, 0)
    # a shared offset between seeds does not matter to a paired test
    shifted = stats.paired({s: v + 10 * s for s, v in a.items()}, {s: v + 10 * s for s, v in b.items()})
    assert shifted.t == pytest.approx(p.t) and shifted.p == pytest.approx(p.p)
    same = stats.paired({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    assert (same.t, same.p) == (0.0, 1.0)


def test_holm_is_monotone_and_caps_at_one():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adj = stats.holm([0.5, float("nan"), 0.001])
    assert adj[0] == pytest.approx(0.5) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.002)
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]  # 2 x 0.8 caps at 1, and adjusted values never decrease


def test_steps_to_reach_absolute_and_relative_levels():
    from dipo_tools.sweep.report import steps_to_reach
    from dipo_tools.sweep.spec import ReachSpec

    rows = [{"step": s, "train/success": v} for s, v in enumerate([0.5, 0.5, 0.6, 0.7, 0.8, 0.9], start=1)]
    assert steps_to_reach(rows, ReachSpec("train/success", 0.7, window=1), 6) == (4.0, True)
    assert steps_to_reach(rows, ReachSpec("train/success", 0.7, window=2), 6) == (5.0, True)  # (0.6+0.8)/2
    assert steps_to_reach(rows, ReachSpec("train/success", 0.3, window=2, relative=True), 6) == (6.0, True)  # 0.5 + 0.3
    assert steps_to_reach(rows, ReachSpec("train/success", 0.95, window=1), 6) == (6.0, False)  # a lower bound
    assert ReachSpec("train/success", 0.1, relative=True).column == "steps_to[train/success>=start+0.1]"
