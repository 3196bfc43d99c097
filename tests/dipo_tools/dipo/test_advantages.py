"""compute_dipo_advantages: GRPO equality, the exact BRR values, gates, extremeness, queue, state, DiPOStats."""
import io
import math

import numpy as np
import pytest
import torch
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

from dipo_tools.dipo import DiPOConfig, DiPOState, DiPOStats, compute_dipo_advantages, grpo_advantages

# BRR (docs/algorithm.md, "BRR") for G = 8, alpha = 0.1: R_r is one-hot in the group, so A_GRPO(R_r) is ±(7/8)/sqrt(1/8) and
# ∓(1/8)/sqrt(1/8) (unbiased std of seven 0s and one 1 is sqrt(1/8)).
PICK = 0.1 * (7 / 8) / (math.sqrt(1 / 8) + 1e-6)
MATE = 0.1 * (1 / 8) / (math.sqrt(1 / 8) + 1e-6)


def verl_grpo(scores, uids, norm=True):
    rewards = torch.zeros(len(scores), 3)
    rewards[:, -1] = scores
    adv, _ = compute_grpo_outcome_advantage(rewards, torch.ones(len(scores), 3), np.array(uids, dtype=object),
                                            norm_adv_by_std_in_grpo=norm)
    return adv[:, 0]


def random_batch(seed: int, n_groups: int = 12):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 9, (n_groups,), generator=g).tolist()
    uids = [f"prompt-{i}" for i, s in enumerate(sizes) for _ in range(s)]
    perm = torch.randperm(len(uids), generator=g).tolist()
    uids = [uids[i] for i in perm]  # groups interleaved, as after verl's balancing
    b = len(uids)
    scores = torch.round(torch.randn(b, generator=g) * 4) / 2  # many ties and zero-variance groups
    success = scores > 0.5
    log_ppl = torch.rand(b, generator=g) * 3
    return scores, success, log_ppl, uids


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("norm", [True, False])
def test_disabled_equals_verl_grpo_exactly(seed, norm, primed):
    scores, success, log_ppl, uids = random_batch(seed)
    cfg = DiPOConfig(enabled=False, norm_by_std=norm)
    adv, stats = compute_dipo_advantages(scores, success, log_ppl, uids, primed(), cfg)
    assert torch.equal(adv, verl_grpo(scores, uids, norm))
    assert stats["frac_nonzero_adv"] == stats["frac_nonzero_adv_grpo"]


@pytest.mark.parametrize("seed", range(5))
def test_grpo_advantages_accepts_int_tensor_ids(seed):
    scores, _, _, uids = random_batch(seed)
    codes = torch.tensor([int(u.split("-")[1]) for u in uids])
    assert torch.equal(grpo_advantages(scores, codes), verl_grpo(scores, uids))


def test_normal_groups_are_plain_grpo_even_when_enabled(primed):
    g = torch.Generator().manual_seed(3)
    uids = [i // 8 for i in range(32)]
    success = torch.tensor([1, 0] * 16).bool()  # every group mixed: nothing extreme
    scores = success.float() + torch.rand(32, generator=g)
    adv, stats = compute_dipo_advantages(scores, success, torch.rand(32, generator=g), uids, primed(), DiPOConfig())
    assert torch.equal(adv, verl_grpo(scores, uids))
    assert stats["frac_normal"] == 1.0 and stats["n_realloc_hard"] == stats["n_realloc_easy"] == 0


def hard_and_easy_batch():
    # Hard group: all wrong, all log-PPL below τ* (≈1.5): a confident error -> reward its max-PPL response.
    # Easy group: all right, max log-PPL 2.9 >= τ*: a lucky success -> penalise its max-PPL response.
    lp = torch.tensor([0.1, 0.15, 0.2, 0.25, 0.45, 0.3, 0.35, 0.4] + [0.1, 0.2, 2.9, 0.4, 0.5, 0.6, 0.7, 0.3])
    success = torch.tensor([0] * 8 + [1] * 8)
    return success.float(), success, lp, ["h"] * 8 + ["e"] * 8


def test_exact_values_for_a_hard_group_below_tau_and_an_easy_group_above(primed):
    scores, success, lp, uids = hard_and_easy_batch()
    adv, stats = compute_dipo_advantages(scores, success, lp, uids, primed(), DiPOConfig())
    expected = torch.tensor([-MATE] * 4 + [PICK] + [-MATE] * 3 + [MATE] * 2 + [-PICK] + [MATE] * 5)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-6)
    assert adv[4] == pytest.approx(0.2475, abs=5e-5) and adv[10] == pytest.approx(-0.2475, abs=5e-5)
    assert adv[0] == pytest.approx(-0.0354, abs=5e-5)
    assert stats["disentangled"] and stats["n_realloc_hard"] == 1 and stats["n_realloc_easy"] == 1
    assert stats["frac_nonzero_adv"] == 1.0 and stats["frac_nonzero_adv_grpo"] == 0.0
    assert stats["frac_hard"] == stats["frac_easy"] == 0.5
    assert 1.0 < stats["tau"] < 2.0 and stats["tau_ppl"] == pytest.approx(math.exp(stats["tau"]))


def test_alpha_scales_the_side_term_only(primed):
    scores, success, lp, uids = hard_and_easy_batch()
    a1, _ = compute_dipo_advantages(scores, success, lp, uids, primed(), DiPOConfig(alpha=0.1))
    a2, _ = compute_dipo_advantages(scores, success, lp, uids, primed(), DiPOConfig(alpha=0.3))
    torch.testing.assert_close(a2, 3 * a1)


@pytest.mark.parametrize("side", ["hard", "easy"])
@pytest.mark.parametrize("gate", ["max_sample", "none"])
def test_reallocate_one_side_keeps_that_side_exactly_and_leaves_the_other_plain_grpo(primed, side, gate):
    scores, success, lp, uids = hard_and_easy_batch()
    both, s_both = compute_dipo_advantages(scores, success, lp, uids, primed(), DiPOConfig(gate=gate))
    one, s_one = compute_dipo_advantages(scores, success, lp, uids, primed(), DiPOConfig(gate=gate, reallocate=side))
    kept, dropped = (slice(0, 8), slice(8, 16)) if side == "hard" else (slice(8, 16), slice(0, 8))
    assert torch.equal(one[kept], both[kept])
    assert torch.count_nonzero(one[dropped]) == 0  # all-equal scores: GRPO alone gives exactly zero
    assert (s_one["n_realloc_hard"], s_one["n_realloc_easy"]) == ((1, 0) if side == "hard" else (0, 1))
    assert s_one["frac_nonzero_adv"] == 0.5 and s_both["frac_nonzero_adv"] == 1.0
    assert s_one["tau"] == s_both["tau"]  # PSD is unaffected by the switch


def test_not_disentangled_means_no_reallocation():
    state = DiPOState()
    g = torch.Generator().manual_seed(0)
    state.push(torch.rand(40, generator=g), torch.tensor([1, 0] * 20), 2)  # PPL says nothing about success
    scores, success, lp, uids = hard_and_easy_batch()
    adv, stats = compute_dipo_advantages(scores, success, lp, uids, state, DiPOConfig())
    assert not stats["disentangled"] and stats["tau_ppl"] is None
    assert torch.count_nonzero(adv) == 0
    assert math.isnan(stats["quadrant_cl"])


def gate_batch():
    # Hard group whose max-PPL sample (2.5) is above τ but whose mean (≈0.56) is below;
    # easy group whose max (2.5) is above τ but whose mean (≈0.56) is below.
    lp_group = [0.1, 0.2, 0.3, 2.5, 0.1, 0.2, 0.3, 0.8]
    lp = torch.tensor(lp_group * 2)
    success = torch.tensor([0] * 8 + [1] * 8)
    return success.float(), success, lp, ["h"] * 8 + ["e"] * 8


def test_gate_max_sample(primed):
    adv, stats = compute_dipo_advantages(*gate_batch(), primed(), DiPOConfig(gate="max_sample"))
    assert (stats["n_realloc_hard"], stats["n_realloc_easy"]) == (0, 1)
    assert adv[11] == pytest.approx(-PICK, abs=1e-6) and torch.count_nonzero(adv[:8]) == 0


def test_gate_group_mean(primed):
    adv, stats = compute_dipo_advantages(*gate_batch(), primed(), DiPOConfig(gate="group_mean"))
    assert (stats["n_realloc_hard"], stats["n_realloc_easy"]) == (1, 0)
    assert adv[3] == pytest.approx(PICK, abs=1e-6) and torch.count_nonzero(adv[8:]) == 0


def test_gate_none_reallocates_every_extreme_group_even_without_psd():
    adv, stats = compute_dipo_advantages(*gate_batch(), DiPOState(), DiPOConfig(gate="none", min_side=1000))
    assert not stats["disentangled"]
    assert (stats["n_realloc_hard"], stats["n_realloc_easy"]) == (1, 1)
    assert adv[3] == pytest.approx(PICK, abs=1e-6) and adv[11] == pytest.approx(-PICK, abs=1e-6)


def test_argmax_ties_go_to_the_first_member(primed):
    lp = torch.tensor([0.1, 0.4, 0.4, 0.2, 0.1, 0.1, 0.1, 0.1])
    adv, _ = compute_dipo_advantages(torch.zeros(8), torch.zeros(8), lp, [0] * 8, primed(), DiPOConfig())
    assert adv[1] == pytest.approx(PICK, abs=1e-6) and adv[2] == pytest.approx(-MATE, abs=1e-6)


def test_extreme_by_success_vs_score_with_a_shaped_reward(primed):
    # All wrong (success 0) but the shaped score varies: extreme by success, not by score.
    lp = torch.tensor([0.1, 0.15, 0.2, 0.25, 0.45, 0.3, 0.35, 0.4])
    scores = torch.tensor([-3.0, -1.0, 0.5, -3.0, 1.0, -2.0, 0.0, -3.0])
    success = torch.zeros(8)
    by_success, s1 = compute_dipo_advantages(scores, success, lp, [0] * 8, primed(), DiPOConfig())
    by_score, s2 = compute_dipo_advantages(scores, success, lp, [0] * 8, primed(), DiPOConfig(extreme_by="score"))
    grpo = verl_grpo(scores, [0] * 8)
    assert s1["frac_hard"] == 1.0 and s1["n_realloc_hard"] == 1
    assert s2["frac_hard"] == 0.0 and s2["frac_normal"] == 1.0 and s2["n_realloc_hard"] == 0
    assert torch.equal(by_score, grpo)
    side = by_success - grpo  # the main term is untouched; only the side term is added
    assert side[4] == pytest.approx(PICK, abs=1e-5) and side[0] == pytest.approx(-MATE, abs=1e-5)


def test_extreme_by_score_flat_group_is_hard_when_mostly_wrong(primed):
    lp = torch.tensor([0.1, 0.15, 0.2, 0.25, 0.45, 0.3, 0.35, 0.4])
    _, stats = compute_dipo_advantages(torch.full((8,), -3.0), torch.zeros(8), lp, [0] * 8, primed(),
                                       DiPOConfig(extreme_by="score"))
    assert stats["frac_hard"] == 1.0 and stats["n_realloc_hard"] == 1


def test_size_one_groups_never_qualify(primed):
    lp = torch.tensor([0.1, 2.9])
    adv, stats = compute_dipo_advantages(torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), lp, ["a", "b"],
                                         primed(), DiPOConfig(gate="none"))
    assert stats["n_realloc_hard"] == stats["n_realloc_easy"] == 0
    # verl's convention for a lone response: mean 0, std 1 -> the score / (1 + eps)
    assert torch.equal(adv, verl_grpo(torch.tensor([0.0, 1.0]), ["a", "b"]))


def test_queue_keeps_only_the_last_batches():
    state = DiPOState()
    cfg = DiPOConfig(queue_batches=2)
    for i in range(3):
        compute_dipo_advantages(torch.zeros(4), torch.zeros(4), torch.full((4,), float(i)), [0] * 4, state, cfg)
    lp, _ = state.queue()
    assert lp.tolist() == [1.0] * 4 + [2.0] * 4 and state.num_pushed == 3
    compute_dipo_advantages(torch.zeros(2), torch.zeros(2), torch.full((2,), 7.0), [0] * 2, state,
                            DiPOConfig(queue_batches=1))
    assert state.queue()[0].tolist() == [7.0, 7.0]


def test_the_queue_decides_tau_not_the_batch_alone(primed):
    # The separable history makes PSD disentangled although the current batch alone could not.
    scores, success, lp, uids = hard_and_easy_batch()
    _, alone = compute_dipo_advantages(scores, success, lp, uids, DiPOState(), DiPOConfig())
    _, with_q = compute_dipo_advantages(scores, success, lp, uids, primed(), DiPOConfig())
    assert not alone["disentangled"] and with_q["disentangled"]
    assert with_q["queue_size"] == 56


def test_state_round_trip_reproduces_identical_advantages(primed):
    state = primed()
    s2, ok2, lp2, u2 = random_batch(7)
    compute_dipo_advantages(s2, ok2, lp2, u2, state, DiPOConfig())
    buf = io.BytesIO()
    torch.save(state.state_dict(), buf)
    buf.seek(0)
    restored = DiPOState()
    restored.load_state_dict(torch.load(buf))
    assert repr(restored) == repr(state)
    scores, success, lp, uids = hard_and_easy_batch()
    a, s_a = compute_dipo_advantages(scores, success, lp, uids, state, DiPOConfig())
    b, s_b = compute_dipo_advantages(scores, success, lp, uids, restored, DiPOConfig())
    assert torch.equal(a, b) and s_a["tau"] == s_b["tau"]
    assert [t.tolist() for t in state.state_dict()["log_ppl"]] == [t.tolist() for t in restored.state_dict()["log_ppl"]]


def test_state_refuses_unknown_versions():
    with pytest.raises(ValueError, match="version"):
        DiPOState().load_state_dict({"version": 99})


def test_non_finite_log_ppl_does_not_poison_the_batch(primed):
    scores, success, lp, uids = hard_and_easy_batch()
    lp[3] = float("inf")
    lp[12] = float("nan")
    adv, stats = compute_dipo_advantages(scores, success, lp, uids, primed(), DiPOConfig())
    assert torch.isfinite(adv).all() and math.isfinite(stats["mean_log_ppl_right"])
    assert stats["n_undefined_ppl"] == 2


def test_undefined_ppl_is_left_out_of_queue_and_max_ppl_choice(primed):
    # An +inf log-PPL in the easy group used to be clipped to the batch maximum and then picked as the
    # group's max-PPL response; NaN (an empty response) entered the queue. Both must stay out.
    scores, success, lp, uids = hard_and_easy_batch()
    lp[11], lp[13] = float("inf"), float("nan")
    state = primed()
    before = len(state)
    adv, stats = compute_dipo_advantages(scores, success, lp, uids, state, DiPOConfig())
    assert len(state) == before + 14 and bool(torch.isfinite(state.queue()[0]).all())
    # the easy group's max-PPL response among valid ones is still row 10 (2.9): it is the one penalised
    assert stats["n_realloc_easy"] == 1 and adv[10] < 0 and adv[10] == adv.min()
    # invalid rows get GRPO's advantage alone (0 in an all-right group), not the side term
    assert adv[11] == 0.0 and adv[13] == 0.0
    # the side term's group statistics are over the 6 valid members: one 0 and five 1s
    valid_mates = torch.tensor([0.4, 0.6, 0.7, 0.3])
    side = 0.1 * (1 / 6) / (math.sqrt(1 / 6) + 1e-6)  # (1 - 5/6) / std of [0,1,1,1,1,1]
    torch.testing.assert_close(adv[[8, 9, 14, 15]], torch.full_like(valid_mates, side), rtol=0, atol=1e-6)


def test_group_with_one_valid_member_is_not_reallocated(primed):
    scores, success, lp, uids = hard_and_easy_batch()
    lp[8:16] = float("nan")
    lp[10] = 2.9
    adv, stats = compute_dipo_advantages(scores, success, lp, uids, primed(), DiPOConfig())
    assert stats["n_realloc_easy"] == 0 and bool((adv[8:16] == 0).all())


def test_quadrants_partition_the_batch(primed, separable):
    lp, ok = separable()
    state = primed()
    _, stats = compute_dipo_advantages(ok.float(), ok, lp, [i // 4 for i in range(40)], state, DiPOConfig())
    shares = [stats[f"quadrant_{q}"] for q in ("cl", "ch", "el", "eh")]
    assert sum(shares) == pytest.approx(1.0) and stats["quadrant_cl"] == 0.5 and stats["quadrant_eh"] == 0.5


# The metric names both engines log as dipo/<name>, in the order they are logged: renaming one breaks dashboards.
LOGGED_STATS = [
    "frac_hard", "frac_easy", "frac_normal", "disentangled", "tau", "tau_ppl", "p_low", "p_high", "p_low_lower",
    "p_high_upper", "n_low", "n_high", "psd_error_rate", "n_realloc_hard", "n_realloc_easy", "frac_nonzero_adv",
    "frac_nonzero_adv_grpo", "mean_log_ppl_right", "mean_log_ppl_wrong", "success_rate", "queue_size",
    "n_undefined_ppl", "quadrant_cl", "quadrant_ch", "quadrant_el", "quadrant_eh",
]


def test_stats_are_typed_and_read_like_a_mapping(primed):
    _, stats = compute_dipo_advantages(*hard_and_easy_batch(), primed(), DiPOConfig())
    assert isinstance(stats, DiPOStats)
    assert list(stats) == LOGGED_STATS and len(stats) == len(LOGGED_STATS)
    assert stats["n_realloc_hard"] == stats.n_realloc_hard == 1 and stats.get("tau") == stats.tau
    metrics = {}
    metrics.update(stats)  # what verl's trainer does with stats_out
    assert metrics == stats.as_metrics() and list(metrics) == LOGGED_STATS
    with pytest.raises(KeyError):
        stats["as_metrics"]  # only statistics are keys, not methods
    with pytest.raises(AttributeError):
        stats.tau = 0.0  # frozen: a logged statistic is never edited after the fact


def test_every_statistic_is_documented():
    doc = DiPOStats.__doc__
    assert all(f"\n        {name}: " in doc for name in LOGGED_STATS)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="batch sizes differ"):
        compute_dipo_advantages(torch.zeros(4), torch.zeros(3), torch.zeros(4), [0] * 4, DiPOState())
    with pytest.raises(ValueError, match="1-D"):
        compute_dipo_advantages(torch.zeros(4, 2), torch.zeros(4), torch.zeros(4), [0] * 4, DiPOState())


@pytest.mark.parametrize("bad, match", [
    (dict(gate="maxsample"), "gate"), (dict(reallocate="hrad"), "reallocate"), (dict(extreme_by="std"), "extreme_by"), (dict(queue_batches=0), "queue_batches"),
    (dict(min_side=0), "min_side"), (dict(z=0), "z"), (dict(alpha=-1), "alpha"), (dict(eps=0), "eps"),
])
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        DiPOConfig(**bad)


def test_config_from_mapping_refuses_unknown_keys():
    from omegaconf import OmegaConf

    assert DiPOConfig.from_mapping(OmegaConf.create({"alpha": 0.5})).alpha == 0.5
    with pytest.raises(ValueError, match="valid fields"):
        DiPOConfig.from_mapping({"alhpa": 0.5})


def test_missing_group_ids_are_refused():
    with pytest.raises(ValueError, match="group id"):
        compute_dipo_advantages(torch.zeros(3), torch.zeros(3), torch.zeros(3), ["a", None, "a"], DiPOState())


def test_group_ids_may_be_any_hashables():
    ids = [("p", 1), ("p", 2), ("p", 1), ("p", 2)]
    scores = torch.tensor([1.0, 0.0, 3.0, 2.0])
    assert torch.equal(grpo_advantages(scores, ids), verl_grpo(scores, ["a", "b", "a", "b"]))
