"""PSD: the threshold fit against a brute-force reference, Wald admissibility at its edges, ties."""
import math

import pytest
import torch

from dipo_tools.dipo import fit_threshold


def brute_force(lp: list[float], ok: list[int], z: float, min_side: int):
    """Loop over every candidate τ exactly as docs/algorithm.md ("PSD") states it."""
    values = sorted(set(lp))
    best = None
    for a, b in zip(values, values[1:]):
        tau = (a + b) / 2
        low = [r for p, r in zip(lp, ok) if p < tau]
        high = [r for p, r in zip(lp, ok) if p >= tau]
        pl, ph = sum(low) / len(low), sum(high) / len(high)
        lb = pl - z * math.sqrt(pl * (1 - pl) / len(low))
        ub = ph + z * math.sqrt(ph * (1 - ph) / len(high))
        admissible = len(low) >= min_side and len(high) >= min_side and lb > 0.5 and ub < 0.5
        err = sum(abs(r - (1 if p < tau else 0)) for p, r in zip(lp, ok)) / len(lp)
        if admissible and (best is None or err < best[1]):  # strict: ties keep the smallest τ
            best = (tau, err, pl, ph, len(low), len(high))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(20, 120, (1,), generator=g))
    # Rounded values create ties; success correlates with low PPL at a seed-dependent strength.
    lp = torch.round(torch.rand(n, generator=g) * 40) / 10
    p_right = torch.sigmoid((2.0 - lp) * (seed % 5))
    ok = (torch.rand(n, generator=g) < p_right).int()
    min_side = [1, 5, 10][seed % 3]
    fit = fit_threshold(lp, ok, z=1.96, min_side=min_side)
    ref = brute_force(lp.tolist(), ok.tolist(), 1.96, min_side)
    if ref is None:
        assert fit.tau is None and not fit.disentangled
    else:
        tau, err, pl, ph, nl, nh = ref
        assert fit.tau == pytest.approx(tau, abs=1e-12)
        assert (fit.error_rate, fit.p_low, fit.p_high) == pytest.approx((err, pl, ph))
        assert (fit.n_low, fit.n_high) == (nl, nh)
        assert fit.tau_ppl == pytest.approx(math.exp(tau))


def _queue(right_low: int, n_low: int, right_high: int, n_high: int):
    lp = [0.1 * (i + 1) for i in range(n_low)] + [10 + 0.1 * i for i in range(n_high)]
    ok = [1] * right_low + [0] * (n_low - right_low) + [1] * right_high + [0] * (n_high - right_high)
    return torch.tensor(lp), torch.tensor(ok)


def test_wald_edges_pure_sides_with_exactly_min_side():
    # p_L = 1 and p_H = 0 have zero-width Wald intervals: admissible once both sides hold min_side.
    lp, ok = _queue(10, 10, 0, 10)
    assert fit_threshold(lp, ok, min_side=10).tau == pytest.approx((1.0 + 10.0) / 2)
    assert fit_threshold(lp, ok, min_side=11).tau is None


def test_wald_lower_bound_decides_admissibility():
    # Right responses fill the lowest-PPL slots, so every split below n_low has p_L = 1 but too few
    # samples, and the split at n_low is the only one with 10 per side.
    # p_L = 0.8 on 10: 0.8 - 1.96*sqrt(0.016) = 0.552 > 0.5 -> admissible.
    lp, ok = _queue(8, 10, 0, 10)
    fit = fit_threshold(lp, ok, min_side=10)
    assert fit.tau is not None and fit.p_low_lower == pytest.approx(0.8 - 1.96 * math.sqrt(0.016))
    # p_L = 0.7 on 10: 0.7 - 1.96*sqrt(0.021) = 0.416 -> not admissible; reported for diagnosis.
    lp, ok = _queue(7, 10, 0, 10)
    fit = fit_threshold(lp, ok, min_side=10)
    assert fit.tau is None and fit.num_admissible == 0
    # The diagnostic fields then describe the lowest-error split overall (the pure one at 7, too small).
    assert (fit.n_low, fit.p_low) == (7, 1.0)


def test_wald_upper_bound_on_the_high_side():
    lp, ok = _queue(10, 10, 2, 10)  # p_H = 0.2 on 10: 0.2 + 0.248 = 0.448 < 0.5
    assert fit_threshold(lp, ok, min_side=10).tau is not None
    lp, ok = _queue(10, 10, 3, 10)  # p_H = 0.3 on 10: 0.3 + 0.284 = 0.584
    assert fit_threshold(lp, ok, min_side=10).tau is None


def test_ties_in_values_are_never_split():
    lp = torch.tensor([1.0] * 12 + [2.0] * 12)
    ok = torch.tensor([1] * 12 + [0] * 12)
    fit = fit_threshold(lp, ok, min_side=10)
    assert fit.num_candidates == 1 and fit.tau == 1.5


def test_ties_in_error_go_to_the_smallest_tau():
    # Right on [0,1)x10, then a gap [1,2) of nothing, wrong at 2.x and 3.x: candidates inside the
    # wrong block all have more error; two splits with equal error -> the smaller τ wins.
    lp = torch.tensor([0.1 * i for i in range(10)] + [5.0] + [6.0 + 0.1 * i for i in range(10)])
    ok = torch.tensor([1] * 10 + [1] + [0] * 10)  # the 5.0 response is right: splitting before or after it costs 1
    fit = fit_threshold(lp, ok, min_side=1)
    assert fit.error_rate == pytest.approx(0.0)  # splitting after 5.0 is perfect
    lp2 = torch.tensor([0.1 * i for i in range(10)] + [5.0, 5.5] + [6.0 + 0.1 * i for i in range(10)])
    ok2 = torch.tensor([1] * 10 + [0, 1] + [0] * 10)  # either side of the pair costs exactly one error
    fit2 = fit_threshold(lp2, ok2, min_side=1)
    assert fit2.error_rate == pytest.approx(1 / 22)
    assert fit2.tau == pytest.approx((0.9 + 5.0) / 2)


def test_degenerate_queues():
    assert fit_threshold(torch.tensor([]), torch.tensor([])).tau is None
    assert fit_threshold(torch.tensor([1.0] * 30), torch.tensor([1, 0] * 15)).num_candidates == 0
    with pytest.raises(ValueError):
        fit_threshold(torch.zeros(3), torch.zeros(4))


def test_rounding_guard_keeps_the_lower_value_below_tau():
    lo = torch.tensor(1.0, dtype=torch.float64)
    hi = torch.nextafter(lo, torch.tensor(2.0, dtype=torch.float64))
    lp = torch.cat([lo.repeat(10), hi.repeat(10)])
    ok = torch.tensor([1] * 10 + [0] * 10)
    fit = fit_threshold(lp, ok, min_side=10)
    assert fit.tau is not None and float(lo) < fit.tau and not float(hi) < fit.tau
