"""verl's custom reward entry point: dispatch, float-only outputs, and loading through verl's own loader."""
from __future__ import annotations

import pytest

from reward import compute_score, dispatch_kind
from reward.toolrl import GroundTruthError

GT = '<think> t </think>\n<tool_call>\n{"name": "a", "parameters": {"x": 1}}\n</tool_call>'


def _all_floats(d: dict) -> bool:
    return all(isinstance(v, float) for v in d.values())


def test_real_rows_through_compute_score(rlla_rows):
    accs = []
    for row in rlla_rows:
        out = compute_score(row["data_source"], row["ground_truth"], row["ground_truth"], row["extra_info"])
        assert _all_floats(out) and {"score", "acc", "format", "correctness"} <= set(out)
        accs.append(out["acc"])
    assert accs == [1.0] * len(rlla_rows)


def test_dispatch():
    assert dispatch_kind("rlla") == "toolrl"
    assert dispatch_kind("ToolRL-4k") == "toolrl"
    assert dispatch_kind("math_dapo") == "math"
    assert dispatch_kind("DigitalLearningGmbH/MATH-lighteval") == "math"
    assert dispatch_kind("tool_env:calculator") == "episode"
    assert dispatch_kind("bfcl_multi_turn_base") == "episode"
    with pytest.raises(ValueError, match="unknown data_source 'openai/gsm9k-typo'"):
        dispatch_kind("openai/gsm9k-typo")


def test_toolrl_variant_and_step_from_kwargs():
    # MAX1STEP30MAX3: before step 30 the exact answer scores 1 + 1, after it 0.5 + 3.
    kw = {"toolrl": {"scale_schedule": "two_stage"}}
    assert compute_score("rlla", GT, GT, {"index": 0}, **kw)["score"] == 2.0
    assert compute_score("rlla", GT, GT, {"index": 0, "global_step": 30}, **kw)["score"] == 3.5
    assert compute_score("rlla", GT, GT, {"index": 0}, step=31, **kw)["score"] == 3.5


def test_toolrl_bad_ground_truth_names_sample():
    with pytest.raises(GroundTruthError, match="sample 17"):
        compute_score("rlla", GT, GT.replace("}}", "}"), {"index": 17})


def test_toolrl_bad_output_scores_minimum():
    out = compute_score("rlla", "garbage", GT, {"index": 1})
    assert out["score"] == -3.0 and out["acc"] == 0.0


def test_math_source():
    out = compute_score("math_dapo", "Answer: 0.5", "\\frac{1}{2}", {"index": 2})
    assert out["score"] == 1.0 and out["acc"] == 1.0 and _all_floats(out)
    assert compute_score("math_dapo", "Answer: 2", "1/2", {})["score"] == -1.0
    assert compute_score("x", "Answer: 2", "2", {}, data_kind="math")["acc"] == 1.0


def test_episode_source_reads_precomputed_reward():
    info = {"index": 3, "episode_reward": {"score": 0.75, "success": False, "state_ok": 1.0, "turns_passed": 2}}
    out = compute_score("tool_env", "", "", info)
    assert out["score"] == 0.75 and out["acc"] == 0.0 and out["state_ok"] == 1.0 and _all_floats(out)
    nested = {"rollout_reward_scores": {"episode_reward": {"score": 1.0, "acc": 1.0}}}
    assert compute_score("multi_turn", "", "", nested)["acc"] == 1.0
    with pytest.raises(ValueError, match="extra_fields\\['episode_reward'\\]"):
        compute_score("tool_env", "", "", {"index": 4})


def test_loads_through_verls_custom_reward_loader():
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cfg = OmegaConf.create(
        {"reward": {"custom_reward_function": {"path": "pkg://reward", "name": "compute_score",
                                               "reward_kwargs": {"toolrl": {"granularity": "coarse"}}}}}
    )
    fn = get_custom_reward_fn(cfg)
    # coarse: a wrong value gives the minimum correctness; fine-grained would give 6*2/3-3 = 1
    wrong = GT.replace('"x": 1', '"x": 2')
    out = fn(data_source="rlla", solution_str=wrong, ground_truth=GT, extra_info={"index": 0},
             reward_router_address=None)
    assert out["correctness"] == -3.0 and out["format"] == 1.0
    assert compute_score("rlla", wrong, GT, {})["correctness"] == 1.0
