"""The sweep's curves: a run that skips a step's update does not cut the other runs' curve short."""
from __future__ import annotations

import pytest

from dipo_tools.sweep.plots import _curve_band
from dipo_tools.sweep.spec import SweepSpec


def _run(values: dict[int, float]) -> dict:
    """A run record whose metrics log ``actor/entropy`` only at the given steps (others skipped the update)."""
    rows = [{"step": s, **({"actor/entropy": values[s]} if s in values else {"actor/skipped_empty": 1.0})}
            for s in range(1, 9)]
    return {"rows": rows}


def test_curve_uses_the_runs_that_logged_each_step():
    spec = SweepSpec(smooth=1)
    full = _run({s: float(s) for s in range(1, 9)})
    gappy = _run({1: 3.0, 2: 4.0, 7: 9.0})      # e.g. DAPO: no update (no actor/*) at steps 3-6 and 8
    xs, mean, low, high = _curve_band(spec, [full, full, gappy], "actor/entropy")
    assert xs == list(range(1, 9))              # every step that two or more runs logged, not only 1, 2, 7
    assert mean[0] == pytest.approx((1 + 1 + 3) / 3) and mean[3] == pytest.approx(4.0)
    assert low[3] == high[3] == pytest.approx(4.0)  # two equal values: a zero-width band
    assert low[0] < mean[0] < high[0]


def test_a_step_logged_by_one_run_only_is_not_drawn():
    spec = SweepSpec(smooth=1)
    xs, *_ = _curve_band(spec, [_run({1: 1.0, 2: 2.0}), _run({1: 1.5})], "actor/entropy")
    assert xs == [1]
